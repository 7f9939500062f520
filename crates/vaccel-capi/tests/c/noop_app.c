/* SPDX-License-Identifier: Apache-2.0 */
/* One session, one vaccel_noop() call with the plugins of VACCEL_PLUGINS. */
#include <stdio.h>
#include <vaccel.h>

int main(void)
{
	struct vaccel_session sess;
	int ret = vaccel_session_init(&sess, 0);

	if (ret != VACCEL_OK) {
		fprintf(stderr, "session init: %d\n", ret);
		return 1;
	}
	ret = vaccel_noop(&sess);
	printf("noop returned %d\n", ret);
	vaccel_session_release(&sess);
	return ret == VACCEL_OK ? 0 : 1;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Two sessions with the hints given (decimal), then a noop on the second: the plugin serving
 * it logs the session id it sees, which must be the id printed here. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <vaccel.h>

int main(int argc, char *argv[])
{
	struct vaccel_session a, b;
	int ret;

	if (argc != 3) {
		fprintf(stderr, "usage: %s <hint of the first> <hint of the second>\n", argv[0]);
		return 2;
	}
	ret = vaccel_session_init(&a, (uint32_t)strtoul(argv[1], NULL, 10));
	if (ret)
		return ret;
	ret = vaccel_session_init(&b, (uint32_t)strtoul(argv[2], NULL, 10));
	if (ret)
		return ret;
	printf("first session %" PRId64 " plugin %s\n", a.id, a.plugin->info->name);
	printf("second session %" PRId64 " plugin %s\n", b.id, b.plugin->info->name);
	ret = vaccel_noop(&b);
	printf("noop on session %" PRId64 ": %d\n", b.id, ret);
	vaccel_session_release(&b);
	vaccel_session_release(&a);
	return ret;
}

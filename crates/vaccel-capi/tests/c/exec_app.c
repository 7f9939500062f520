/* SPDX-License-Identifier: Apache-2.0 */
/* exec, exec_with_resource and genop exec against libmytestlib.so (argv[1]), and mbench:
 * the same program runs against a built-in plugin and its library twin. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <vaccel.h>

int main(int argc, char *argv[])
{
	struct vaccel_session sess;
	struct vaccel_resource lib;
	int32_t in = 10, out = 0;
	int ret;

	if (argc != 3) {
		fprintf(stderr, "usage: %s <libmytestlib.so> exec|mbench\n", argv[0]);
		return 2;
	}
	ret = vaccel_session_init(&sess, 0);
	if (ret)
		return ret;
	printf("Initialized session with id: %" PRId64 "\n", sess.id);

	if (strcmp(argv[2], "mbench") == 0) {
		char time_ms[] = "5";
		struct vaccel_arg read[2] = {
			{ .buf = time_ms, .size = sizeof(time_ms), .type = VACCEL_ARG_STRING },
			{ .buf = argv[1], .size = strlen(argv[1]), .type = VACCEL_ARG_RAW },
		};
		ret = vaccel_exec(&sess, "mbench", "mbench", read, 2, NULL, 0);
		printf("mbench: %d\n", ret);
		vaccel_session_release(&sess);
		return ret;
	}

	struct vaccel_arg read[1] = { { .buf = &in, .size = sizeof(in), .type = VACCEL_ARG_INT32 } };
	struct vaccel_arg write[1] = { { .buf = &out, .size = sizeof(out), .type = VACCEL_ARG_INT32 } };
	ret = vaccel_exec(&sess, argv[1], "mytestfunc", read, 1, write, 1);
	printf("exec: %d output: %d\n", ret, out);

	out = 0;
	ret = vaccel_resource_init(&lib, argv[1], VACCEL_RESOURCE_LIB);
	if (!ret)
		ret = vaccel_resource_register(&lib, &sess);
	if (!ret)
		ret = vaccel_exec_with_resource(&sess, &lib, "mytestfunc", read, 1, write, 1);
	printf("exec_with_resource: %d output: %d\n", ret, out);

	uint8_t op = VACCEL_OP_EXEC;
	out = 0;
	struct vaccel_arg_array g;
	vaccel_arg_array_init(&g, 4);
	vaccel_arg_array_add_uint8(&g, &op);
	vaccel_arg_array_add_string(&g, argv[1]);
	vaccel_arg_array_add_string(&g, "mytestfunc");
	vaccel_arg_array_add_int32(&g, &in);
	ret = vaccel_genop(&sess, g.args, (int)g.count, write, 1);
	printf("genop exec: %d output: %d\n", ret, out);
	vaccel_arg_array_release(&g);

	vaccel_resource_unregister(&lib, &sess);
	vaccel_resource_release(&lib);
	vaccel_session_release(&sess);
	return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Drives the `cplug` test plugin (loaded with VACCEL_PLUGINS) through the C API. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <vaccel.h>

static int failures;

#define CHECK(cond, ...)                                  \
	do {                                              \
		if (cond) {                               \
			printf("ok %s\n", #cond);         \
		} else {                                  \
			printf("FAIL %s: ", #cond);       \
			printf(__VA_ARGS__);              \
			printf("\n");                     \
			failures++;                       \
		}                                         \
	} while (0)

int main(int argc, char *argv[])
{
	struct vaccel_session sess;
	struct vaccel_resource lib, buf;
	int ret;

	if (argc != 2) {
		fprintf(stderr, "usage: %s <file>\n", argv[0]);
		return 2;
	}
	ret = vaccel_session_init(&sess, VACCEL_PLUGIN_CPU);
	CHECK(ret == VACCEL_OK, "session init: %d", ret);
	if (ret)
		return 1;
	CHECK(sess.plugin != NULL && sess.plugin->info != NULL &&
		      strcmp(sess.plugin->info->name, "cplug") == 0,
	      "sess->plugin is the library's descriptor");
	CHECK(sess.plugin->ops[VACCEL_OP_NOOP] != NULL, "ops registered");

	ret = vaccel_noop(&sess);
	CHECK(ret == VACCEL_OK, "noop: %d", ret);

	int32_t in = 7, out = 0;
	struct vaccel_arg read[] = { { .buf = &in, .size = sizeof(in), .type = VACCEL_ARG_INT32 } };
	struct vaccel_arg write[] = { { .buf = &out, .size = sizeof(out), .type = VACCEL_ARG_INT32 } };
	ret = vaccel_exec(&sess, "libwhatever.so", "triple", read, 1, write, 1);
	CHECK(ret == VACCEL_OK && out == 21, "exec: ret %d out %d", ret, out);

	/* A file resource: the plugin sees one FILE blob with its path. */
	ret = vaccel_resource_init(&lib, argv[1], VACCEL_RESOURCE_LIB);
	CHECK(ret == VACCEL_OK, "resource init: %d", ret);
	ret = vaccel_resource_register(&lib, &sess);
	CHECK(ret == VACCEL_OK, "register: %d", ret);
	CHECK(lib.nr_blobs == 1 && lib.blobs[0]->path != NULL &&
		      strcmp(lib.blobs[0]->path, argv[1]) == 0,
	      "blobs filled after registration (%zu)", lib.nr_blobs);
	CHECK(lib.plugin_priv != NULL && strcmp(lib.plugin_priv, "seen by cplug") == 0,
	      "the hook received the caller's struct");
	CHECK(vaccel_resource_refcount(&lib) == 1, "refcount %ld", vaccel_resource_refcount(&lib));
	out = 0;
	ret = vaccel_exec_with_resource(&sess, &lib, "count", NULL, 0, write, 1);
	CHECK(ret == VACCEL_OK && out == 1, "exec_with_resource: ret %d blobs %d", ret, out);

	/* A buffer resource: BUFFER blob with data. */
	char bytes[] = "xyz-model";
	ret = vaccel_resource_init_from_buf(&buf, bytes, sizeof(bytes), VACCEL_RESOURCE_MODEL,
					    "model.bin", true);
	CHECK(ret == VACCEL_OK, "resource from buf: %d", ret);
	ret = vaccel_resource_register(&buf, &sess);
	CHECK(ret == VACCEL_OK, "register buf: %d", ret);
	CHECK(buf.nr_blobs == 1 && buf.blobs[0]->type == VACCEL_BLOB_BUFFER &&
		      buf.blobs[0]->size == sizeof(bytes) &&
		      memcmp(buf.blobs[0]->data, bytes, sizeof(bytes)) == 0,
	      "buffer blob data");

	unsigned char text[64], name[64];
	ret = vaccel_image_classification(&sess, "img", text, name, 3, sizeof(text), sizeof(name));
	CHECK(ret == VACCEL_OK && strcmp((char *)text, "cplug tag (3 bytes)") == 0 &&
		      strcmp((char *)name, "cplug image") == 0,
	      "classify: %d '%s' '%s'", ret, text, name);

	float data[4] = { 1, 2, 3, 4 };
	int32_t dims[2] = { 2, 2 };
	struct vaccel_tflite_tensor *t_in = NULL, *t_out[1] = { NULL };
	uint8_t status = 0;
	ret = vaccel_tflite_tensor_new(&t_in, 2, dims, VACCEL_TFLITE_FLOAT32);
	CHECK(ret == VACCEL_OK, "tensor new");
	vaccel_tflite_tensor_set_data(t_in, data, sizeof(data));
	ret = vaccel_tflite_model_run(&sess, &buf, &t_in, 1, t_out, 1, &status);
	CHECK(ret == VACCEL_OK && status == 7 && t_out[0] && t_out[0]->size == sizeof(data) &&
		      memcmp(t_out[0]->data, data, sizeof(data)) == 0 && t_out[0]->nr_dims == 2,
	      "tflite run through the plugin: %d status %u", ret, status);
	vaccel_tflite_tensor_delete(t_out[0]);
	vaccel_tflite_tensor_delete(t_in);

	ret = vaccel_image_depth(&sess, "img", name, 3, sizeof(name));
	CHECK(ret == VACCEL_EBUSY, "plugin error code comes through: %d", ret);
	ret = vaccel_image_detection(&sess, "img", name, 3, sizeof(name));
	CHECK(ret == VACCEL_ENOTSUP, "unimplemented op: %d", ret);

	ret = vaccel_resource_unregister(&lib, &sess);
	CHECK(ret == VACCEL_OK, "unregister: %d", ret);
	ret = vaccel_resource_release(&lib);
	CHECK(ret == VACCEL_OK, "release lib: %d", ret);
	ret = vaccel_session_release(&sess);
	CHECK(ret == VACCEL_OK, "session release: %d", ret);
	ret = vaccel_resource_release(&buf);
	CHECK(ret == VACCEL_OK, "release buf: %d", ret);

	printf("%d failures\n", failures);
	return failures;
}

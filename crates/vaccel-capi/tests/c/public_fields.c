/* SPDX-License-Identifier: Apache-2.0 */
/* Binary drop-in (issue #13): the public struct fields are the truth, and the public API
 * answers as upstream's tests expect where ours used to answer differently.
 *
 * Run with VACCEL_PLUGINS=noop and a scratch directory as argv[1] containing model.bin
 * (the five bytes `model`). Prints `ok`/`FAIL` lines; the exit code is the number of failures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vaccel.h>

#include "check.h"

static char model_path[1100];

static bool accept_all(const void *buf, size_t size, uint32_t custom_id)
{
	(void)buf;
	(void)size;
	(void)custom_id;
	return true;
}

/* ---- arg arrays -------------------------------------------------------------------- */

static void test_args(void)
{
	struct vaccel_arg_array a;
	int32_t value = 7;
	void *buf = NULL;
	size_t size = 0;

	CHECK("arg_array_init", vaccel_arg_array_init(&a, 4) == VACCEL_OK);
	CHECK("add_raw NULL with a size", vaccel_arg_array_add_raw(&a, NULL, 4) == VACCEL_EINVAL);
	CHECK("add_raw buf without a size",
	      vaccel_arg_array_add_raw(&a, &value, 0) == VACCEL_EINVAL);
	CHECK("add_raw refused adds nothing", a.count == 0);
	CHECK("add_raw NULL, 0", vaccel_arg_array_add_raw(&a, NULL, 0) == VACCEL_OK && a.count == 1);
	CHECK("add_raw", vaccel_arg_array_add_raw(&a, &value, sizeof(value)) == VACCEL_OK);
	CHECK("add_custom NULL validator",
	      vaccel_arg_array_add_custom(&a, 9, &value, sizeof(value), NULL) == VACCEL_EINVAL);
	CHECK("add_custom", vaccel_arg_array_add_custom(&a, 9, &value, sizeof(value), accept_all) ==
				    VACCEL_OK);
	CHECK("count", a.count == 3);

	vaccel_arg_array_set_position(&a, 1);
	CHECK("get_raw NULL size", vaccel_arg_array_get_raw(&a, &buf, NULL) == VACCEL_EINVAL);
	CHECK("get_raw refused does not advance", vaccel_arg_array_position(&a) == 1);
	CHECK("get_raw", vaccel_arg_array_get_raw(&a, &buf, &size) == VACCEL_OK && buf == &value &&
				 size == sizeof(value));
	CHECK("get_custom NULL validator",
	      vaccel_arg_array_get_custom(&a, 9, &buf, &size, NULL) == VACCEL_EINVAL);
	CHECK("get_custom", vaccel_arg_array_get_custom(&a, 9, &buf, &size, accept_all) == VACCEL_OK);

	int32_t other = 8;
	vaccel_arg_array_set_position(&a, 2);
	CHECK("set_custom NULL validator",
	      vaccel_arg_array_set_custom(&a, 9, &other, sizeof(other), NULL) == VACCEL_EINVAL);
	CHECK("set_custom refused writes nothing", value == 7);
	CHECK("set_custom", vaccel_arg_array_set_custom(&a, 9, &other, sizeof(other), accept_all) ==
					VACCEL_OK &&
				value == 8);

	/* The arg fields are read from the struct at each call: a caller's retyping counts. */
	vaccel_arg_array_set_position(&a, 1);
	a.args[1].type = VACCEL_ARG_BUFFER;
	CHECK("arg type read back (get_raw refuses)",
	      vaccel_arg_array_get_raw(&a, &buf, &size) == VACCEL_EINVAL);
	CHECK("arg type read back (get_buffer takes)",
	      vaccel_arg_array_get_buffer(&a, &buf, &size) == VACCEL_OK && buf == &value);
	CHECK("arg_array_release", vaccel_arg_array_release(&a) == VACCEL_OK);
}

/* ---- blobs ------------------------------------------------------------------------- */

static void test_blobs(const char *dir)
{
	struct vaccel_blob b;
	CHECK("blob_init missing file", vaccel_blob_init(&b, "non_existent_path") == VACCEL_EINVAL);
	CHECK("blob_init directory", vaccel_blob_init(&b, dir) == VACCEL_EINVAL);

	uint8_t bytes[4] = { 1, 2, 3, 4 };
	CHECK("blob_init_from_buf", vaccel_blob_init_from_buf(&b, bytes, sizeof(bytes), true,
							      "blob.bin", NULL, false) == VACCEL_OK);
	CHECK("blob_persist NULL dir", vaccel_blob_persist(&b, NULL, "blob.bin", false) ==
					       VACCEL_ENOENT);
	CHECK("blob_persist missing dir",
	      vaccel_blob_persist(&b, "non_existent_dir", "blob.bin", false) == VACCEL_ENOENT);
	CHECK("blob_persist NULL name", vaccel_blob_persist(&b, dir, NULL, false) == VACCEL_EINVAL);
	CHECK("blob still a buffer", b.type == VACCEL_BLOB_BUFFER && b.path == NULL);
	CHECK("blob_release", vaccel_blob_release(&b) == VACCEL_OK);

	CHECK("blob_init", vaccel_blob_init(&b, model_path) == VACCEL_OK &&
				   b.type == VACCEL_BLOB_FILE && b.data == NULL && !b.data_owned);
	CHECK("blob_read", vaccel_blob_read(&b) == VACCEL_OK);
	CHECK("blob_read maps, does not own", b.type == VACCEL_BLOB_MAPPED && b.data != NULL &&
						      b.size == 5 && !b.data_owned &&
						      memcmp(b.data, "model", 5) == 0);
	size_t size = 0;
	CHECK("blob_data", vaccel_blob_data(&b, &size) == b.data && size == 5);
	CHECK("blob_data NULL size", vaccel_blob_data(&b, NULL) == b.data);
	CHECK("blob_release after read", vaccel_blob_release(&b) == VACCEL_OK && b.data == NULL);
	CHECK("blob_read released", vaccel_blob_read(&b) == VACCEL_EINVAL);
}

/* ---- TF / Torch buffers ------------------------------------------------------------ */

static void test_buffers(void)
{
	struct vaccel_tf_buffer tb = { (void *)1, 1 };
	CHECK("tf_buffer_init NULL, 0", vaccel_tf_buffer_init(&tb, NULL, 0) == VACCEL_OK &&
						tb.data == NULL && tb.size == 0);
	CHECK("tf_buffer_release empty", vaccel_tf_buffer_release(&tb) == VACCEL_OK);

	struct vaccel_torch_buffer pb = { (char *)1, 1 };
	CHECK("torch_buffer_init NULL, 0", vaccel_torch_buffer_init(&pb, NULL, 0) == VACCEL_OK &&
						   pb.data == NULL && pb.size == 0);
	CHECK("torch_buffer_release empty", vaccel_torch_buffer_release(&pb) == VACCEL_OK);
}

/* ---- the resource's type and the session's hint, read back ---------------------------- */

static void test_model_type(void)
{
	struct vaccel_session sess;
	struct vaccel_resource res;
	struct vaccel_tf_status st = { 0, NULL };

	CHECK("session_init", vaccel_session_init(&sess, 0) == VACCEL_OK);
	CHECK("resource_init DATA", vaccel_resource_init(&res, model_path, VACCEL_RESOURCE_DATA) ==
					    VACCEL_OK);

	CHECK("tf load, type DATA", vaccel_tf_model_load(&sess, &res, &st) == VACCEL_EINVAL);
	CHECK("tflite load, type DATA", vaccel_tflite_model_load(&sess, &res) == VACCEL_EINVAL);
	CHECK("torch load, type DATA", vaccel_torch_model_load(&sess, &res) == VACCEL_EINVAL);

	res.type = VACCEL_RESOURCE_MODEL;
	CHECK("tf load, type MODEL, unregistered",
	      vaccel_tf_model_load(&sess, &res, &st) == VACCEL_EPERM);
	CHECK("tf unload, type MODEL, unregistered",
	      vaccel_tf_model_unload(&sess, &res, &st) == VACCEL_EPERM);
	CHECK("tflite load, type MODEL, unregistered",
	      vaccel_tflite_model_load(&sess, &res) == VACCEL_EPERM);
	CHECK("tflite unload, type MODEL, unregistered",
	      vaccel_tflite_model_unload(&sess, &res) == VACCEL_EPERM);
	CHECK("torch load, type MODEL, unregistered",
	      vaccel_torch_model_load(&sess, &res) == VACCEL_EPERM);
	CHECK("type stays as written", res.type == VACCEL_RESOURCE_MODEL);

	CHECK("register", vaccel_resource_register(&res, &sess) == VACCEL_OK);
	CHECK("type kept by register", res.type == VACCEL_RESOURCE_MODEL);
	CHECK("session lists it as a model", sess.resource_counts[VACCEL_RESOURCE_MODEL] == 1 &&
						     sess.resource_counts[VACCEL_RESOURCE_DATA] == 0);
	CHECK("tflite load, registered", vaccel_tflite_model_load(&sess, &res) == VACCEL_OK);
	struct vaccel_resource *found = NULL;
	CHECK("session_resource_by_type MODEL",
	      vaccel_session_resource_by_type(&sess, &found, VACCEL_RESOURCE_MODEL) == VACCEL_OK &&
		      found == &res);

	res.type = VACCEL_RESOURCE_LIB;
	CHECK("tflite load, retyped LIB", vaccel_tflite_model_load(&sess, &res) == VACCEL_EINVAL);
	res.type = VACCEL_RESOURCE_MAX + 5;
	CHECK("tflite load, type out of range",
	      vaccel_tflite_model_load(&sess, &res) == VACCEL_EINVAL);
	CHECK("out-of-range type left in place", res.type == VACCEL_RESOURCE_MAX + 5);
	res.type = VACCEL_RESOURCE_MODEL;
	CHECK("tflite load, MODEL again", vaccel_tflite_model_load(&sess, &res) == VACCEL_OK);

	/* The hint: upstream only writes it at init and update; what the caller writes stays. */
	sess.hint = VACCEL_PLUGIN_CPU | VACCEL_PLUGIN_GPU;
	CHECK("noop", vaccel_noop(&sess) == VACCEL_OK);
	CHECK("unregister", vaccel_resource_unregister(&res, &sess) == VACCEL_OK);
	CHECK("hint kept", sess.hint == (VACCEL_PLUGIN_CPU | VACCEL_PLUGIN_GPU));
	CHECK("unregistered again", vaccel_tflite_model_load(&sess, &res) == VACCEL_EPERM);

	CHECK("resource_release", vaccel_resource_release(&res) == VACCEL_OK);
	CHECK("session_release", vaccel_session_release(&sess) == VACCEL_OK);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s <scratch dir>\n", argv[0]);
		return 1;
	}
	snprintf(model_path, sizeof(model_path), "%s/model.bin", argv[1]);

	test_args();
	test_blobs(argv[1]);
	test_buffers();
	test_model_type();

	printf("%d checks, %d failures\n", checks, failures);
	return failures;
}

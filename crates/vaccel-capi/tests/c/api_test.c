/* SPDX-License-Identifier: Apache-2.0 */
/* Exercises every header of the C API through the noop plugin: core and config, logging,
 * enums and strings, sessions, resources (paths, directories, buffers, blobs), blobs, args,
 * arg arrays (every add/get/set), the deprecated arg list, every operation with noop's
 * outputs, genop, profiling, and NULL / wrong-typed arguments.
 *
 * Run with VACCEL_PLUGINS=noop VACCEL_PROFILING_ENABLED=1 and a scratch directory as argv[1]
 * containing a.txt ("hello") and b.txt ("world"). Prints `ok`/`FAIL` lines; the exit code is
 * the number of failures. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vaccel.h>

#include "check.h"

static char dir[1024], file_a[1100], file_b[1100];

static bool is_dir(const char *p)
{
	struct stat st;
	return p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char *p)
{
	struct stat st;
	return p && stat(p, &st) == 0;
}

/* ---- core, config, log, enums ------------------------------------------------------ */

static void test_core(void)
{
	CHECK("is_initialized", vaccel_is_initialized());
	CHECK("rundir", is_dir(vaccel_rundir()));
	const struct vaccel_config *cfg = vaccel_config();
	CHECK("config in force", cfg && cfg->plugins && strcmp(cfg->plugins, "noop") == 0 &&
					 cfg->profiling_enabled);

	struct vaccel_config c;
	CHECK("config_init", vaccel_config_init(&c, "noop", VACCEL_LOG_ERROR, NULL, false, true) ==
				     VACCEL_OK &&
				     strcmp(c.plugins, "noop") == 0 && c.log_file == NULL &&
				     c.version_ignore);
	struct vaccel_config copy;
	CHECK("config_init_from", vaccel_config_init_from(&copy, &c) == VACCEL_OK &&
					  copy.plugins != c.plugins &&
					  strcmp(copy.plugins, "noop") == 0);
	vaccel_config_print_debug(&copy);
	CHECK("config_release", vaccel_config_release(&copy) == VACCEL_OK && copy.plugins == NULL &&
					copy.log_level == VACCEL_LOG_ERROR);
	struct vaccel_config env;
	CHECK("config_init_from_env", vaccel_config_init_from_env(&env) == VACCEL_OK &&
					      env.profiling_enabled);
	vaccel_config_release(&env);
	struct vaccel_config *heap = NULL, *heap2 = NULL, *heap3 = NULL;
	CHECK("config_new", vaccel_config_new(&heap, NULL, VACCEL_LOG_DEBUG, "/dev/stderr", true,
					      false) == VACCEL_OK &&
				    heap->plugins == NULL && strcmp(heap->log_file, "/dev/stderr") == 0);
	CHECK("config_from", vaccel_config_from(&heap2, heap) == VACCEL_OK);
	CHECK("config_from_env", vaccel_config_from_env(&heap3) == VACCEL_OK);
	CHECK("config_delete", vaccel_config_delete(heap) == VACCEL_OK &&
				       vaccel_config_delete(heap2) == VACCEL_OK &&
				       vaccel_config_delete(heap3) == VACCEL_OK);
	CHECK("config NULL", vaccel_config_init(NULL, NULL, 1, NULL, 0, 0) == VACCEL_EINVAL &&
				     vaccel_config_release(NULL) == VACCEL_EINVAL &&
				     vaccel_config_from(NULL, &c) == VACCEL_EINVAL);

	/* Re-bootstrap with a config, then cleanup: the library is then uninitialised. */
	CHECK("bootstrap_with_config", vaccel_bootstrap_with_config(&c) == VACCEL_OK &&
					       vaccel_is_initialized());
	vaccel_config_release(&c);
	CHECK("cleanup", vaccel_cleanup() == VACCEL_OK && !vaccel_is_initialized() &&
				 vaccel_rundir() == NULL && vaccel_config() == NULL);
	struct vaccel_session s;
	struct vaccel_resource r;
	CHECK("session without runtime", vaccel_session_init(&s, 0) == VACCEL_ESESS);
	CHECK("resource without runtime",
	      vaccel_resource_init(&r, file_a, VACCEL_RESOURCE_DATA) == VACCEL_EPERM);
	CHECK("cleanup twice", vaccel_cleanup() == VACCEL_OK);
	CHECK("bootstrap from env", vaccel_bootstrap() == VACCEL_OK && vaccel_is_initialized());
	CHECK("bootstrap_with_config NULL", vaccel_bootstrap_with_config(NULL) == VACCEL_EINVAL);

	/* Plugins can be added while nothing is alive. */
	CHECK("plugin_load", vaccel_plugin_load("exec") == VACCEL_OK &&
				     strcmp(vaccel_config()->plugins, "noop:exec") == 0);
	CHECK("plugin_load missing", vaccel_plugin_load("/nonexistent/libx.so") == VACCEL_ENOENT &&
					     vaccel_is_initialized());
	CHECK("plugin_parse_and_load", vaccel_plugin_parse_and_load("mbench") == VACCEL_OK);
	CHECK("plugin_load NULL", vaccel_plugin_load(NULL) == VACCEL_EINVAL);
	CHECK("register_ops NULL", vaccel_plugin_register_ops(NULL, 1) == VACCEL_EINVAL);
	CHECK("session picks by hint", vaccel_session_init(&s, VACCEL_PLUGIN_SOFTWARE) == VACCEL_OK &&
					       strcmp(s.plugin->info->name, "exec") == 0);
	CHECK("plugin_load busy", vaccel_plugin_load("noop") == VACCEL_EBUSY);
	vaccel_session_release(&s);
	CHECK("back to noop", vaccel_bootstrap() == VACCEL_OK);
}

static void test_log_and_enums(void)
{
	CHECK("log_init", vaccel_log_init() == VACCEL_OK);
	vaccel_debug("a debug line from C: %d", 42);
	vaccel_info("an info line from C");
	CHECK("log_shutdown", vaccel_log_shutdown() == VACCEL_OK && !vaccel_log_enabled(VACCEL_LOG_ERROR));
	CHECK("log_init again", vaccel_log_init() == VACCEL_OK);

	char buf[VACCEL_ENUM_STR_MAX], small[4], *alloc = NULL;
	CHECK("op_type_to_str", strcmp(vaccel_op_type_to_str(VACCEL_OP_BLAS_SGEMM), "VACCEL_OP_BLAS_SGEMM") == 0);
	CHECK("op_type_to_base_str", strcmp(vaccel_op_type_to_base_str(VACCEL_OP_EXEC), "EXEC") == 0);
	CHECK("op_type unknown", strcmp(vaccel_op_type_to_str((vaccel_op_type_t)99), "VACCEL_OP_MAX") == 0);
	CHECK("op_type_to_lower", strcmp(vaccel_op_type_to_lower(VACCEL_OP_IMAGE_CLASSIFY, buf, sizeof(buf)),
					 "image_classify") == 0);
	CHECK("arg_type_name", strcmp(vaccel_arg_type_name(VACCEL_ARG_UCHAR_ARRAY, buf, sizeof(buf)),
				      "uchar_array") == 0);
	CHECK("str_to_lower", vaccel_str_to_lower("ABCDEF", small, sizeof(small), NULL) == VACCEL_OK &&
				      strcmp(small, "abc") == 0);
	CHECK("str_to_lower alloc", vaccel_str_to_lower("MiXeD", NULL, 0, &alloc) == VACCEL_OK &&
					    strcmp(alloc, "mixed") == 0);
	free(alloc);
	CHECK("str_to_lower NULL", vaccel_str_to_lower(NULL, buf, sizeof(buf), NULL) == VACCEL_EINVAL);
}

/* ---- sessions ---------------------------------------------------------------------- */

static void test_sessions(void)
{
	struct vaccel_session sess, other, never;
	struct vaccel_session *heap = NULL, *found = NULL;
	struct vaccel_resource *res = NULL, **list = NULL;
	size_t nr = 99;

	memset(&never, 0, sizeof(never));
	CHECK("session_init", vaccel_session_init(&sess, 0) == VACCEL_OK && sess.id > 0 &&
				      sess.remote_id == 0 && sess.hint == 0 && !sess.is_virtio &&
				      is_dir(sess.rundir) && sess.plugin &&
				      strcmp(sess.plugin->info->name, "noop") == 0 &&
				      sess.plugin->info->type == VACCEL_PLUGIN_DEBUG);
	CHECK("session_init twice", vaccel_session_init(&sess, 0) == VACCEL_EINVAL);
	CHECK("session_get_by_id", vaccel_session_get_by_id(&found, sess.id) == VACCEL_OK &&
					   found == &sess);
	CHECK("session_get_by_id missing", vaccel_session_get_by_id(&found, 999) == VACCEL_ENOENT);
	CHECK("session_new", vaccel_session_new(&heap, VACCEL_PLUGIN_DEBUG) == VACCEL_OK &&
				     heap->id == sess.id + 1 && heap->hint == VACCEL_PLUGIN_DEBUG);
	CHECK("session_resource_by_type none",
	      vaccel_session_resource_by_type(&sess, &res, VACCEL_RESOURCE_MODEL) == VACCEL_ENOENT);
	CHECK("session_resources_by_type none",
	      vaccel_session_resources_by_type(&sess, &list, &nr, VACCEL_RESOURCE_DATA) == VACCEL_ENOENT &&
		      nr == 0);
	CHECK("session_resource_by_id invalid",
	      vaccel_session_resource_by_id(&sess, &res, 0) == VACCEL_EINVAL);
	CHECK("session_update", vaccel_session_update(&sess, VACCEL_PLUGIN_DEBUG) == VACCEL_OK &&
					sess.hint == VACCEL_PLUGIN_DEBUG);
	CHECK("sess_update", vaccel_sess_update(&sess, 0) == VACCEL_OK && sess.hint == 0);
	CHECK("session_delete", vaccel_session_delete(heap) == VACCEL_OK);
	CHECK("sess_init", vaccel_sess_init(&other, 0) == VACCEL_OK);
	CHECK("sess_free", vaccel_sess_free(&other) == VACCEL_OK);
	CHECK("release twice", vaccel_session_release(&other) == VACCEL_EINVAL);
	CHECK("release never initialised", vaccel_session_release(&never) == VACCEL_EINVAL);
	CHECK("release NULL", vaccel_session_release(NULL) == VACCEL_EINVAL);
	CHECK("init NULL", vaccel_session_init(NULL, 0) == VACCEL_EINVAL);
	CHECK("no plugin for remote", vaccel_session_init(&other, VACCEL_PLUGIN_REMOTE) == VACCEL_ENOTSUP);
	CHECK("has_resource NULL", !vaccel_session_has_resource(&sess, NULL));
	CHECK("session_release", vaccel_session_release(&sess) == VACCEL_OK);
}

/* ---- blobs ------------------------------------------------------------------------- */

static void test_blobs(void)
{
	struct vaccel_blob file, buf, ref, persisted, *heap = NULL, *heap2 = NULL;
	size_t size = 0;
	uint8_t bytes[] = "blob-bytes";

	CHECK("blob_init", vaccel_blob_init(&file, file_a) == VACCEL_OK &&
				   file.type == VACCEL_BLOB_FILE && strcmp(file.name, "a.txt") == 0 &&
				   strcmp(file.path, file_a) == 0 && !file.path_owned && !file.data);
	CHECK("blob_path", vaccel_blob_path(&file) == file.path);
	CHECK("blob_valid", vaccel_blob_valid(&file));
	CHECK("blob_data reads", vaccel_blob_data(&file, &size) != NULL && size == 5 &&
					 memcmp(file.data, "hello", 5) == 0 &&
					 file.type == VACCEL_BLOB_MAPPED);
	CHECK("blob_release", vaccel_blob_release(&file) == VACCEL_OK && exists(file_a) &&
				      file.type == VACCEL_BLOB_MAX);
	CHECK("blob_release twice", vaccel_blob_release(&file) == VACCEL_EINVAL);
	CHECK("blob_init dir", vaccel_blob_init(&file, dir) == VACCEL_EINVAL);
	CHECK("blob_init missing", vaccel_blob_init(&file, "/nonexistent/x") != VACCEL_OK);

	CHECK("blob_init_from_buf own", vaccel_blob_init_from_buf(&buf, bytes, sizeof(bytes), true,
								   "b.bin", NULL, false) == VACCEL_OK &&
						 buf.type == VACCEL_BLOB_BUFFER && buf.data != bytes &&
						 buf.data_owned && vaccel_blob_path(&buf) == NULL);
	CHECK("blob_init_from_buf ref", vaccel_blob_init_from_buf(&ref, bytes, sizeof(bytes), false,
								   "r.bin", NULL, false) == VACCEL_OK &&
						 ref.data == bytes && !ref.data_owned);
	CHECK("blob_persist", vaccel_blob_persist(&buf, dir, "persist.bin", false) == VACCEL_OK &&
				      buf.type == VACCEL_BLOB_MAPPED && buf.path_owned &&
				      exists(buf.path) && strcmp(buf.name, "persist.bin") == 0);
	CHECK("blob_persist exists", vaccel_blob_persist(&buf, dir, "again.bin", false) == VACCEL_EEXIST);
	CHECK("blob_init_from_buf dir", vaccel_blob_init_from_buf(&persisted, bytes, sizeof(bytes),
								   true, "persist.bin", dir,
								   false) == VACCEL_OK &&
						 strcmp(persisted.name, "persist.bin") != 0 &&
						 strncmp(persisted.name, "persist_", 8) == 0);
	char path[1200];
	snprintf(path, sizeof(path), "%s", buf.path);
	CHECK("release owned file", vaccel_blob_release(&buf) == VACCEL_OK && !exists(path));
	vaccel_blob_release(&persisted);
	vaccel_blob_release(&ref);
	CHECK("blob_persist missing dir",
	      vaccel_blob_from_buf(&heap, bytes, 3, true, "x", "/nonexistent/dir", false) == VACCEL_ENOENT);
	CHECK("blob_new", vaccel_blob_new(&heap, file_b) == VACCEL_OK && vaccel_blob_read(heap) == VACCEL_OK &&
				  heap->size == 5);
	CHECK("blob_from_buf", vaccel_blob_from_buf(&heap2, bytes, 4, true, "n", NULL, false) == VACCEL_OK &&
				       heap2->size == 4);
	CHECK("blob_delete", vaccel_blob_delete(heap) == VACCEL_OK && vaccel_blob_delete(heap2) == VACCEL_OK);
	CHECK("blob NULL", vaccel_blob_init(NULL, file_a) == VACCEL_EINVAL &&
				   vaccel_blob_init_from_buf(&buf, NULL, 3, true, "x", NULL, false) == VACCEL_EINVAL &&
				   !vaccel_blob_valid(NULL) && vaccel_blob_data(NULL, &size) == NULL);
}

/* ---- resources --------------------------------------------------------------------- */

static void test_resources(void)
{
	struct vaccel_session sess, sess2;
	struct vaccel_resource file, dirres, multi, membuf, filebuf, fromblobs, *found = NULL;
	struct vaccel_resource *heap = NULL, **all = NULL;
	size_t nr = 0;
	char out[2048], *alloc = NULL;
	const char *paths[] = { file_a, file_b };
	char data[] = "buffer-resource";

	vaccel_session_init(&sess, 0);
	vaccel_session_init(&sess2, 0);

	CHECK("resource_init file", vaccel_resource_init(&file, file_a, VACCEL_RESOURCE_DATA) == VACCEL_OK &&
					    file.id > 0 && file.type == VACCEL_RESOURCE_DATA &&
					    file.path_type == VACCEL_PATH_LOCAL_FILE &&
					    file.nr_paths == 1 && strcmp(file.paths[0], file_a) == 0 &&
					    file.nr_blobs == 0);
	CHECK("register", vaccel_resource_register(&file, &sess) == VACCEL_OK &&
				  file.nr_blobs == 1 && strcmp(file.blobs[0]->path, file_a) == 0 &&
				  vaccel_resource_refcount(&file) == 1 && file.refcount == 1);
	CHECK("register again", vaccel_resource_register(&file, &sess) == VACCEL_OK &&
					vaccel_resource_refcount(&file) == 1);
	CHECK("register second session", vaccel_resource_register(&file, &sess2) == VACCEL_OK &&
						 vaccel_resource_refcount(&file) == 2);
	CHECK("has_resource", vaccel_session_has_resource(&sess, &file) &&
				      vaccel_sess_has_resource(&sess2, &file));
	CHECK("session resource_by_id", vaccel_session_resource_by_id(&sess, &found, file.id) == VACCEL_OK &&
						found == &file);
	CHECK("session resource_by_type",
	      vaccel_session_resource_by_type(&sess, &found, VACCEL_RESOURCE_DATA) == VACCEL_OK && found == &file);
	CHECK("session resources_by_type",
	      vaccel_session_resources_by_type(&sess, &all, &nr, VACCEL_RESOURCE_DATA) == VACCEL_OK && nr == 1 &&
		      all[0] == &file);
	free(all);
	CHECK("session resource counts", sess.resource_counts[VACCEL_RESOURCE_DATA] == 1);
	CHECK("sync non-buffer", vaccel_resource_sync(&file, &sess) == VACCEL_EINVAL);
	CHECK("directory of a file", vaccel_resource_directory(&file, out, sizeof(out), NULL) == VACCEL_ENOTSUP);

	CHECK("resource_init dir", vaccel_resource_init(&dirres, dir, VACCEL_RESOURCE_MODEL) == VACCEL_OK &&
					   dirres.path_type == VACCEL_PATH_LOCAL_DIR);
	CHECK("directory", vaccel_resource_directory(&dirres, out, sizeof(out), NULL) == VACCEL_OK &&
				   strcmp(out, dir) == 0);
	CHECK("directory alloc", vaccel_resource_directory(&dirres, NULL, 0, &alloc) == VACCEL_OK &&
					 strcmp(alloc, dir) == 0);
	free(alloc);
	CHECK("directory too small", vaccel_resource_directory(&dirres, out, 2, NULL) == VACCEL_EINVAL);
	CHECK("register dir", vaccel_resource_register(&dirres, &sess) == VACCEL_OK && dirres.nr_blobs >= 2);

	CHECK("resource_init_multi", vaccel_resource_init_multi(&multi, paths, 2, VACCEL_RESOURCE_LIB) == VACCEL_OK &&
					     multi.nr_paths == 2);
	CHECK("register multi", vaccel_resource_register(&multi, &sess) == VACCEL_OK && multi.nr_blobs == 2 &&
					strcmp(multi.blobs[1]->name, "b.txt") == 0);

	CHECK("init_from_buf mem_only", vaccel_resource_init_from_buf(&membuf, data, sizeof(data), VACCEL_RESOURCE_DATA,
								       "mem.bin", true) == VACCEL_OK &&
						 membuf.nr_blobs == 1 && membuf.blobs[0]->type == VACCEL_BLOB_BUFFER &&
						 memcmp(membuf.blobs[0]->data, data, sizeof(data)) == 0 &&
						 membuf.rundir == NULL);
	CHECK("init_from_buf file", vaccel_resource_init_from_buf(&filebuf, data, sizeof(data), VACCEL_RESOURCE_LIB,
								   "lib.so", false) == VACCEL_OK &&
					    filebuf.blobs[0]->type == VACCEL_BLOB_MAPPED &&
					    is_dir(filebuf.rundir) && exists(filebuf.blobs[0]->path) &&
					    strcmp(filebuf.blobs[0]->name, "lib.so") == 0);
	CHECK("sync buffer (noop has no hook)", vaccel_resource_register(&membuf, &sess) == VACCEL_OK &&
						      vaccel_resource_sync(&membuf, &sess) == VACCEL_OK);
	CHECK("sync unregistered", vaccel_resource_sync(&membuf, &sess2) == VACCEL_EPERM);

	struct vaccel_blob b_file, b_buf, b_mapped;
	vaccel_blob_init(&b_file, file_a);
	vaccel_blob_init_from_buf(&b_buf, (uint8_t *)data, sizeof(data), true, "buf.bin", NULL, false);
	vaccel_blob_init_from_buf(&b_mapped, (uint8_t *)data, sizeof(data), true, "mapped.bin", dir, true);
	const struct vaccel_blob *blobs[] = { &b_file, &b_buf, &b_mapped };
	CHECK("init_from_blobs", vaccel_resource_init_from_blobs(&fromblobs, blobs, 3, VACCEL_RESOURCE_MODEL) == VACCEL_OK &&
					 fromblobs.nr_blobs == 3 &&
					 fromblobs.blobs[0]->type == VACCEL_BLOB_FILE &&
					 fromblobs.blobs[1]->type == VACCEL_BLOB_BUFFER &&
					 fromblobs.blobs[2]->type == VACCEL_BLOB_MAPPED &&
					 strcmp(fromblobs.blobs[2]->path, b_mapped.path) != 0);
	vaccel_blob_release(&b_file);
	vaccel_blob_release(&b_buf);
	vaccel_blob_release(&b_mapped);

	CHECK("get_by_id", vaccel_resource_get_by_id(&found, filebuf.id) == VACCEL_OK && found == &filebuf);
	CHECK("get_by_id missing", vaccel_resource_get_by_id(&found, 2000) == VACCEL_ENOENT);
	CHECK("get_by_type", vaccel_resource_get_by_type(&found, VACCEL_RESOURCE_LIB) == VACCEL_OK && found == &multi);
	CHECK("get_all_by_type", vaccel_resource_get_all_by_type(&all, &nr, VACCEL_RESOURCE_LIB) == VACCEL_OK &&
					 nr == 2 && all[0] == &multi && all[1] == &filebuf);
	free(all);

	CHECK("unregister", vaccel_resource_unregister(&file, &sess2) == VACCEL_OK &&
				    vaccel_resource_refcount(&file) == 1);
	CHECK("unregister twice", vaccel_resource_unregister(&file, &sess2) == VACCEL_EINVAL);
	CHECK("release session keeps resource", vaccel_session_release(&sess) == VACCEL_OK &&
							vaccel_resource_refcount(&file) == 0 && file.id > 0);

	char blob_path[1200];
	snprintf(blob_path, sizeof(blob_path), "%s", filebuf.blobs[0]->path);
	CHECK("release removes files", vaccel_resource_release(&filebuf) == VACCEL_OK && !exists(blob_path));
	CHECK("release twice", vaccel_resource_release(&filebuf) == VACCEL_EINVAL);
	CHECK("release all", vaccel_resource_release(&file) == VACCEL_OK &&
				     vaccel_resource_release(&dirres) == VACCEL_OK &&
				     vaccel_resource_release(&multi) == VACCEL_OK &&
				     vaccel_resource_release(&membuf) == VACCEL_OK &&
				     vaccel_resource_release(&fromblobs) == VACCEL_OK);
	CHECK("resource_new", vaccel_resource_new(&heap, file_b, VACCEL_RESOURCE_DATA) == VACCEL_OK &&
				      vaccel_resource_delete(heap) == VACCEL_OK);
	CHECK("resource_multi_new", vaccel_resource_multi_new(&heap, paths, 2, VACCEL_RESOURCE_DATA) == VACCEL_OK &&
					    vaccel_resource_delete(heap) == VACCEL_OK);
	CHECK("resource_from_buf", vaccel_resource_from_buf(&heap, data, 4, VACCEL_RESOURCE_DATA, NULL, false) == VACCEL_OK &&
					   heap->blobs[0]->type == VACCEL_BLOB_MAPPED &&
					   vaccel_resource_delete(heap) == VACCEL_OK);
	vaccel_blob_init(&b_file, file_b);
	const struct vaccel_blob *one[] = { &b_file };
	CHECK("resource_from_blobs", vaccel_resource_from_blobs(&heap, one, 1, VACCEL_RESOURCE_DATA) == VACCEL_OK &&
					     vaccel_resource_delete(heap) == VACCEL_OK);
	vaccel_blob_release(&b_file);

	CHECK("invalid type", vaccel_resource_init(&file, file_a, (vaccel_resource_type_t)7) == VACCEL_EINVAL);
	CHECK("missing path", vaccel_resource_init(&file, "/nonexistent/p", VACCEL_RESOURCE_DATA) == VACCEL_EINVAL);
	CHECK("NULL path", vaccel_resource_init(&file, NULL, VACCEL_RESOURCE_DATA) == VACCEL_EINVAL);
	CHECK("empty buffer", vaccel_resource_init_from_buf(&file, data, 0, VACCEL_RESOURCE_DATA, NULL, true) == VACCEL_EINVAL);
	CHECK("unsafe file name", vaccel_resource_init_from_buf(&file, data, 3, VACCEL_RESOURCE_DATA, "../x", false) == VACCEL_EINVAL);
	CHECK("register NULL", vaccel_resource_register(NULL, &sess2) == VACCEL_EINVAL &&
				       vaccel_resource_register(&file, NULL) == VACCEL_EINVAL);
	CHECK("refcount invalid", vaccel_resource_refcount(NULL) == -VACCEL_EINVAL);
	vaccel_session_release(&sess2);
}

/* ---- args and arg arrays ----------------------------------------------------------- */

static bool validate_even(const void *buf, size_t size, uint32_t id)
{
	(void)buf;
	return id == 7 && size % 2 == 0;
}

struct pair {
	int32_t a, b;
};

static int ser_pair(const void *data, size_t data_size, uint32_t id, void **buf, size_t *size)
{
	(void)id;
	if (data_size != sizeof(struct pair))
		return VACCEL_EINVAL;
	*buf = malloc(sizeof(struct pair));
	memcpy(*buf, data, sizeof(struct pair));
	*size = sizeof(struct pair);
	return VACCEL_OK;
}

static int deser_pair(const void *buf, size_t size, uint32_t id, size_t data_size, void *data)
{
	(void)id;
	if (size != data_size)
		return VACCEL_EINVAL;
	memcpy(data, buf, size);
	return VACCEL_OK;
}

static void test_args(void)
{
	struct vaccel_arg arg, *heap = NULL;
	int32_t v = 5;

	CHECK("arg_init copies", vaccel_arg_init(&arg, &v, sizeof(v), VACCEL_ARG_INT32, 0) == VACCEL_OK &&
					 arg.buf != &v && arg.owned && *(int32_t *)arg.buf == 5);
	CHECK("arg_release", vaccel_arg_release(&arg) == VACCEL_OK && arg.buf == NULL &&
				     arg.type == VACCEL_ARG_MAX);
	CHECK("arg_init zeroed", vaccel_arg_init(&arg, NULL, 8, VACCEL_ARG_RAW, 0) == VACCEL_OK &&
					 ((char *)arg.buf)[7] == 0);
	vaccel_arg_release(&arg);
	CHECK("arg_init buf without size", vaccel_arg_init(&arg, &v, 0, VACCEL_ARG_RAW, 0) == VACCEL_EINVAL);
	CHECK("arg_init_from_buf", vaccel_arg_init_from_buf(&arg, &v, sizeof(v), VACCEL_ARG_INT32, 0) == VACCEL_OK &&
					   arg.buf == &v && !arg.owned);
	CHECK("arg_init_from_buf mismatch", vaccel_arg_init_from_buf(&arg, NULL, 4, VACCEL_ARG_RAW, 0) == VACCEL_EINVAL);
	CHECK("arg_new", vaccel_arg_new(&heap, &v, sizeof(v), VACCEL_ARG_CUSTOM, 3) == VACCEL_OK &&
				 heap->custom_type_id == 3 && vaccel_arg_delete(heap) == VACCEL_OK);
	CHECK("arg_from_buf", vaccel_arg_from_buf(&heap, &v, sizeof(v), VACCEL_ARG_INT32, 0) == VACCEL_OK &&
				      vaccel_arg_delete(heap) == VACCEL_OK);
	CHECK("arg NULL", vaccel_arg_init(NULL, &v, 4, 0, 0) == VACCEL_EINVAL && vaccel_arg_release(NULL) == VACCEL_EINVAL);
}

/* Adds a scalar and an array of every numeric type, reads them back, overwrites them. */
#define NUMERIC_ROUNDTRIP(name, ctype, v1, v2)                                                       \
	do {                                                                                          \
		struct vaccel_arg_array a;                                                            \
		ctype s = (v1), arr[3] = { (v1), (v2), (v1) }, got = 0, *vals = NULL;                 \
		size_t n = 0;                                                                         \
		vaccel_arg_array_init(&a, 1);                                                         \
		CHECK(#name " add", vaccel_arg_array_add_##name(&a, &s) == VACCEL_OK &&               \
					    vaccel_arg_array_add_##name##_array(&a, arr, 3) == VACCEL_OK); \
		CHECK(#name " grows", a.count == 2 && a.capacity >= 2 && a.args[0].buf == &s);        \
		CHECK(#name " get", vaccel_arg_array_get_##name(&a, &got) == VACCEL_OK && got == (v1)); \
		CHECK(#name " get_array", vaccel_arg_array_get_##name##_array(&a, &vals, &n) == VACCEL_OK && \
						  vals == arr && n == 3 && vals[1] == (v2));            \
		CHECK(#name " out of range", vaccel_arg_array_get_##name(&a, &got) == VACCEL_ERANGE); \
		vaccel_arg_array_reset_position(&a);                                                  \
		ctype nv = (v2), narr[2] = { (v2), (v2) };                                            \
		CHECK(#name " set", vaccel_arg_array_set_##name(&a, &nv) == VACCEL_OK && s == (v2));  \
		CHECK(#name " set_array", vaccel_arg_array_set_##name##_array(&a, narr, 2) == VACCEL_OK && \
						  arr[0] == (v2) && arr[1] == (v2) && arr[2] == (v1));  \
		vaccel_arg_array_reset_position(&a);                                                  \
		CHECK(#name " wrong type", vaccel_arg_array_get_string(&a, (char **)&vals) == VACCEL_EINVAL && \
						   vaccel_arg_array_position(&a) == 0);                 \
		CHECK(#name " set too large", (vaccel_arg_array_set_position(&a, 1),                  \
					       vaccel_arg_array_set_##name##_array(&a, arr, 4) == VACCEL_EINVAL)); \
		vaccel_arg_array_release(&a);                                                         \
	} while (0)

static void test_arg_arrays(void)
{
	NUMERIC_ROUNDTRIP(int8, int8_t, -3, 4);
	NUMERIC_ROUNDTRIP(int16, int16_t, -300, 400);
	NUMERIC_ROUNDTRIP(int32, int32_t, -70000, 80000);
	NUMERIC_ROUNDTRIP(int64, int64_t, -5000000000LL, 6000000000LL);
	NUMERIC_ROUNDTRIP(uint8, uint8_t, 3, 250);
	NUMERIC_ROUNDTRIP(uint16, uint16_t, 3, 60000);
	NUMERIC_ROUNDTRIP(uint32, uint32_t, 3, 4000000000U);
	NUMERIC_ROUNDTRIP(uint64, uint64_t, 3, 18000000000000000000ULL);
	NUMERIC_ROUNDTRIP(float, float, 1.5f, -2.25f);
	NUMERIC_ROUNDTRIP(double, double, 1.5, -2.25);
	NUMERIC_ROUNDTRIP(bool, bool, true, false);
	NUMERIC_ROUNDTRIP(char, char, 'a', 'z');
	NUMERIC_ROUNDTRIP(uchar, unsigned char, 1, 255);

	struct vaccel_arg_array a, b, *heap = NULL;
	char str[] = "hello", str2[] = "hey", *gs = NULL;
	uint8_t buffer[6] = { 1, 2, 3, 4, 5, 6 }, raw[3] = { 9, 9, 9 }, custom[4] = { 0 };
	void *gb = NULL;
	size_t gsz = 0;
	struct pair p = { 1, 2 }, q = { 0, 0 };
	uint8_t bad_bool = 7;
	int32_t i32 = 1;

	vaccel_arg_array_init(&a, 0);
	CHECK("default capacity", a.capacity == 8 && a.owned && a.count == 0);
	CHECK("add_string", vaccel_arg_array_add_string(&a, str) == VACCEL_OK && a.args[0].size == 6 &&
				    a.args[0].type == VACCEL_ARG_STRING);
	CHECK("add_buffer", vaccel_arg_array_add_buffer(&a, buffer, sizeof(buffer)) == VACCEL_OK);
	CHECK("add_raw", vaccel_arg_array_add_raw(&a, raw, sizeof(raw)) == VACCEL_OK);
	CHECK("add_custom", vaccel_arg_array_add_custom(&a, 7, custom, sizeof(custom), validate_even) == VACCEL_OK);
	CHECK("add_custom rejected", vaccel_arg_array_add_custom(&a, 8, custom, 4, validate_even) == VACCEL_EINVAL);
	CHECK("add_serialized", vaccel_arg_array_add_serialized(&a, VACCEL_ARG_CUSTOM, 11, &p, sizeof(p), ser_pair) == VACCEL_OK &&
					a.args[4].owned && a.args[4].buf != &p);
	CHECK("add bad bool", vaccel_arg_array_add_bool(&a, (bool *)&bad_bool) == VACCEL_EINVAL);
	CHECK("add empty buffer", vaccel_arg_array_add_buffer(&a, buffer, 0) == VACCEL_EINVAL);
	CHECK("add NULL", vaccel_arg_array_add_int32(&a, NULL) == VACCEL_EINVAL &&
				  vaccel_arg_array_add_string(&a, NULL) == VACCEL_EINVAL &&
				  vaccel_arg_array_add_int32(NULL, &i32) == VACCEL_EINVAL);
	CHECK("count", vaccel_arg_array_count(&a) == 5 && vaccel_arg_array_remaining_count(&a) == 5);
	CHECK("get_string", vaccel_arg_array_get_string(&a, &gs) == VACCEL_OK && gs == str);
	CHECK("get_buffer", vaccel_arg_array_get_buffer(&a, &gb, &gsz) == VACCEL_OK && gb == buffer && gsz == 6);
	CHECK("get_raw", vaccel_arg_array_get_raw(&a, &gb, &gsz) == VACCEL_OK && gb == raw && gsz == 3);
	CHECK("get_custom wrong id", vaccel_arg_array_get_custom(&a, 8, &gb, &gsz, NULL) == VACCEL_EINVAL);
	CHECK("get_custom", vaccel_arg_array_get_custom(&a, 7, &gb, &gsz, validate_even) == VACCEL_OK && gb == custom);
	CHECK("get_serialized", vaccel_arg_array_get_serialized(&a, VACCEL_ARG_CUSTOM, 11, &q, sizeof(q), deser_pair) == VACCEL_OK &&
					q.a == 1 && q.b == 2);
	CHECK("get past end", vaccel_arg_array_get_raw(&a, &gb, &gsz) == VACCEL_ERANGE);
	struct vaccel_arg *rest = NULL;
	size_t nrest = 9;
	vaccel_arg_array_set_position(&a, 3);
	CHECK("get_remaining", vaccel_arg_array_get_remaining(&a, &rest, &nrest) == VACCEL_OK && rest == &a.args[3] &&
				       nrest == 2 && vaccel_arg_array_position(&a) == 3);
	vaccel_arg_array_set_position(&a, 100);
	CHECK("set_position clamps", vaccel_arg_array_position(&a) == 5);
	CHECK("get_remaining none", vaccel_arg_array_get_remaining(&a, &rest, &nrest) == VACCEL_OK && rest == NULL && nrest == 0);
	vaccel_arg_array_reset_position(&a);
	CHECK("set_string", vaccel_arg_array_set_string(&a, str2) == VACCEL_OK && strcmp(str, "hey") == 0);
	uint8_t nb[2] = { 7, 7 };
	CHECK("set_buffer", vaccel_arg_array_set_buffer(&a, nb, 2) == VACCEL_OK && buffer[0] == 7 && buffer[2] == 3);
	CHECK("set_raw", vaccel_arg_array_set_raw(&a, nb, 2) == VACCEL_OK && raw[0] == 7);
	uint8_t nc[4] = { 1, 1, 1, 1 };
	CHECK("set_custom size mismatch", vaccel_arg_array_set_custom(&a, 7, nc, 2, NULL) == VACCEL_EINVAL);
	CHECK("set_custom", vaccel_arg_array_set_custom(&a, 7, nc, 4, validate_even) == VACCEL_OK && custom[3] == 1);
	struct pair r = { 5, 6 };
	CHECK("set_serialized", vaccel_arg_array_set_serialized(&a, VACCEL_ARG_CUSTOM, 11, &r, sizeof(r), ser_pair) == VACCEL_OK &&
					((struct pair *)a.args[4].buf)->b == 6);
	CHECK("raw", vaccel_arg_array_raw(&a) == a.args);

	vaccel_arg_array_init(&b, 2);
	CHECK("add_range copy", vaccel_arg_array_add_range(&b, &a, 1, 2, true) == VACCEL_OK && b.count == 2 &&
					b.args[0].owned && b.args[0].buf != buffer &&
					memcmp(b.args[0].buf, buffer, 6) == 0);
	CHECK("add_range out of range", vaccel_arg_array_add_range(&b, &a, 4, 2, false) == VACCEL_ERANGE);
	vaccel_arg_array_set_position(&a, 3);
	CHECK("add_remaining ref", vaccel_arg_array_add_remaining(&b, &a, false) == VACCEL_OK && b.count == 4 &&
					   b.args[2].buf == custom && !b.args[2].owned);
	CHECK("add_all self", vaccel_arg_array_add_all(&b, &b, false) == VACCEL_OK && b.count == 8);
	vaccel_arg_array_clear(&b);
	CHECK("clear", b.count == 0 && b.position == 0 && b.args != NULL);
	CHECK("release", vaccel_arg_array_release(&b) == VACCEL_OK && b.args == NULL);
	CHECK("release twice", vaccel_arg_array_release(&b) == VACCEL_EINVAL);
	vaccel_arg_array_release(&a);

	struct vaccel_arg slots[2];
	vaccel_arg_array_wrap(&a, slots, 0);
	CHECK("wrapped cannot grow", vaccel_arg_array_add_int32(&a, &i32) == VACCEL_ERANGE);
	vaccel_arg_init_from_buf(&slots[0], &i32, sizeof(i32), VACCEL_ARG_INT32, 0);
	CHECK("wrap", vaccel_arg_array_wrap(&a, slots, 1) == VACCEL_OK && !a.owned && a.count == 1 &&
			      vaccel_arg_array_get_int32(&a, &i32) == VACCEL_OK);
	CHECK("new/delete", vaccel_arg_array_new(&heap, 3) == VACCEL_OK && heap->capacity == 3 &&
				    vaccel_arg_array_delete(heap) == VACCEL_OK);
	CHECK("array NULL", vaccel_arg_array_count(NULL) == 0 && vaccel_arg_array_raw(NULL) == NULL &&
				    vaccel_arg_array_init(NULL, 1) == VACCEL_EINVAL);
}

static void *old_ser(void *buf, uint32_t *size)
{
	void *out = malloc(sizeof(int32_t));
	memcpy(out, buf, sizeof(int32_t));
	*size = sizeof(int32_t);
	return out;
}

static void *old_deser(void *buf, uint32_t size)
{
	(void)size;
	return buf;
}

static void test_arg_list(void)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	struct vaccel_arg_list *l = vaccel_args_init(4);
	int32_t x = 3, y = 0;
	CHECK("args_init", l && l->size == 4 && l->curr_idx == 0);
	CHECK("add_serial_arg", vaccel_add_serial_arg(l, &x, sizeof(x)) == VACCEL_OK && l->list[0].buf == &x);
	CHECK("add_nonserial_arg", vaccel_add_nonserial_arg(l, &x, 42, old_ser) == VACCEL_OK &&
					   l->list[1].custom_type_id == 42 && l->idcs_allocated_space[1] == 1);
	CHECK("expect_serial_arg", vaccel_expect_serial_arg(l, &y, sizeof(y)) == VACCEL_OK);
	CHECK("expect_nonserial_arg", vaccel_expect_nonserial_arg(l, 8) == VACCEL_OK && l->list[3].size == 8);
	CHECK("list full", vaccel_add_serial_arg(l, &x, sizeof(x)) == VACCEL_ERANGE);
	CHECK("extract_serial_arg", *(int32_t *)vaccel_extract_serial_arg(l->list, 0) == 3);
	CHECK("extract_nonserial_arg", *(int32_t *)vaccel_extract_nonserial_arg(l->list, 1, old_deser) == 3);
	int32_t z = 9;
	CHECK("write_serial_arg", vaccel_write_serial_arg(l->list, 2, &z) == VACCEL_OK && y == 9);
	CHECK("write_nonserial_arg", vaccel_write_nonserial_arg(l->list, 3, &z, old_ser) == VACCEL_OK &&
					     *(int32_t *)l->list[3].buf == 9);
	CHECK("extract negative", vaccel_extract_serial_arg(l->list, -1) == NULL);
	CHECK("delete_args", vaccel_delete_args(l) == VACCEL_OK);
	CHECK("delete NULL", vaccel_delete_args(NULL) == VACCEL_EINVAL);
#pragma GCC diagnostic pop
}

/* ---- operations through noop ------------------------------------------------------- */

static void test_ops(void)
{
	struct vaccel_session sess;
	struct vaccel_resource lib, model;
	unsigned char text[128], name[128];

	vaccel_session_init(&sess, 0);
	CHECK("noop", vaccel_noop(&sess) == VACCEL_OK);

	int32_t in = 10, out = 0;
	struct vaccel_arg read[] = { { .buf = &in, .size = sizeof(in), .type = VACCEL_ARG_INT32 } };
	struct vaccel_arg write[] = { { .buf = &out, .size = sizeof(out), .type = VACCEL_ARG_INT32 } };
	CHECK("exec (noop output = input)",
	      vaccel_exec(&sess, "libmytestlib.so", "mytestfunc", read, 1, write, 1) == VACCEL_OK && out == 10);

	vaccel_resource_init(&lib, file_a, VACCEL_RESOURCE_LIB);
	CHECK("exec_with_resource unregistered",
	      vaccel_exec_with_resource(&sess, &lib, "f", read, 1, write, 1) == VACCEL_EPERM);
	vaccel_resource_register(&lib, &sess);
	out = 0;
	CHECK("exec_with_resource", vaccel_exec_with_resource(&sess, &lib, "f", read, 1, write, 1) == VACCEL_OK &&
					    out == 10);

	CHECK("classification", vaccel_image_classification(&sess, "img", text, name, 3, sizeof(text), sizeof(name)) == VACCEL_OK &&
					strcmp((char *)text, "This is a dummy classification tag!") == 0 &&
					strcmp((char *)name, "This is a dummy imgname!") == 0);
	name[0] = 0;
	CHECK("detection", vaccel_image_detection(&sess, "img", name, 3, sizeof(name)) == VACCEL_OK &&
				   strcmp((char *)name, "This is a dummy imgname!") == 0);
	name[0] = 0;
	CHECK("segmentation", vaccel_image_segmentation(&sess, "img", name, 3, sizeof(name)) == VACCEL_OK &&
				      strcmp((char *)name, "This is a dummy imgname!") == 0);
	name[0] = 0;
	CHECK("pose", vaccel_image_pose(&sess, "img", name, 3, sizeof(name)) == VACCEL_OK &&
			      strcmp((char *)name, "This is a dummy imgname!") == 0);
	name[0] = 0;
	CHECK("depth", vaccel_image_depth(&sess, "img", name, 3, sizeof(name)) == VACCEL_OK &&
			       strcmp((char *)name, "This is a dummy imgname!") == 0);

	float A[4] = { 1, 2, 3, 4 }, B[4] = { 1, 0, 0, 1 }, C[4] = { 5, 5, 5, 5 };
	CHECK("sgemm (noop leaves C)", vaccel_sgemm(&sess, 2, 2, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2) == VACCEL_OK &&
					       C[0] == 5);
	CHECK("sgemm bad stride", vaccel_sgemm(&sess, 2, 2, 2, 1.0f, A, 1, B, 2, 0.0f, C, 2) == VACCEL_EINVAL);
	CHECK("sgemm C overlaps A", vaccel_sgemm(&sess, 2, 2, 2, 1.0f, A, 2, B, 2, 0.0f, A, 2) == VACCEL_EINVAL);

	int ia[3] = { 1, 2, 3 }, ib[3] = { 0 };
	CHECK("fpga_arraycopy", vaccel_fpga_arraycopy(&sess, ia, ib, 3) == VACCEL_OK && ib[2] == 3);
	float fa[2] = { 1, 2 }, fb[2] = { 10, 20 }, fc[2] = { 0 }, fd[2] = { 0 };
	CHECK("fpga_mmult", vaccel_fpga_mmult(&sess, fa, fb, fc, 2) == VACCEL_OK && fc[1] > 9.09f && fc[1] < 9.11f);
	CHECK("fpga_parallel", vaccel_fpga_parallel(&sess, fa, fb, fc, fd, 2) == VACCEL_OK && fc[1] == 22 && fd[0] == 1);
	CHECK("fpga_vadd", vaccel_fpga_vadd(&sess, fa, fb, fc, 2, 2) == VACCEL_OK && fc[0] == 11);
	CHECK("fpga_vadd short b", vaccel_fpga_vadd(&sess, fa, fb, fc, 2, 1) == VACCEL_EINVAL);

	double din[3] = { 4, 5, 6 }, dout[3] = { 0 }, mn = 0, mx = 0;
	CHECK("minmax", vaccel_minmax(&sess, din, 3, 1, 9, dout, &mn, &mx) == VACCEL_OK && mn == -1.0 &&
				mx == 10000.0 && dout[2] == 6);
	CHECK("minmax NULL min", vaccel_minmax(&sess, din, 3, 1, 9, dout, NULL, &mx) == VACCEL_EINVAL);
	CHECK("minmax negative", vaccel_minmax(&sess, din, -1, 1, 9, dout, &mn, &mx) == VACCEL_EINVAL);

	uint8_t fn = 3;
	uint64_t cv_out[2] = { 0 };
	struct vaccel_arg cv_read[] = { { .buf = &fn, .size = 1, .type = VACCEL_ARG_RAW } };
	struct vaccel_arg cv_write[] = { { .buf = cv_out, .size = sizeof(cv_out), .type = VACCEL_ARG_RAW } };
	CHECK("opencv", vaccel_opencv(&sess, cv_read, 1, cv_write, 1) == VACCEL_OK && cv_out[0] == 4);
	cv_out[0] = 0;
	CHECK("opencv_unpack", vaccel_opencv_unpack(&sess, cv_read, 1, cv_write, 1) == VACCEL_OK && cv_out[0] == 4);

	/* TensorFlow, TensorFlow Lite and Torch: noop mirrors inputs to outputs. */
	vaccel_resource_init_from_buf(&model, "model", 5, VACCEL_RESOURCE_MODEL, "model.pb", true);
	struct vaccel_tf_status st = { 0 };
	CHECK("tf load unregistered", vaccel_tf_model_load(&sess, &model, &st) == VACCEL_EPERM);
	CHECK("tf load wrong type", vaccel_tf_model_load(&sess, &lib, &st) == VACCEL_EINVAL);
	vaccel_resource_register(&model, &sess);
	CHECK("tf load", vaccel_tf_model_load(&sess, &model, &st) == VACCEL_OK && st.code == 0 &&
				 strcmp(st.message, "Operation handled by noop plugin") == 0);
	vaccel_tf_status_release(&st);

	struct vaccel_tf_node in_node, out_node;
	vaccel_tf_node_init(&in_node, "serving_default_data", 0);
	vaccel_tf_node_init(&out_node, "PartitionedCall", 0);
	int64_t dims[2] = { 1, 3 };
	float tin[3] = { 1, 2, 3 };
	struct vaccel_tf_tensor *tt = NULL, *tout[1] = { NULL };
	vaccel_tf_tensor_new(&tt, 2, dims, VACCEL_TF_FLOAT);
	vaccel_tf_tensor_set_data(tt, tin, sizeof(tin));
	char opts_data[] = "opts";
	struct vaccel_tf_buffer opts = { .data = opts_data, .size = 4 };
	CHECK("tf run", vaccel_tf_model_run(&sess, &model, &opts, &in_node, &tt, 1, &out_node, tout, 1, &st) == VACCEL_OK &&
				tout[0] && tout[0]->nr_dims == 2 && tout[0]->dims[1] == 3 &&
				tout[0]->data_type == VACCEL_TF_FLOAT && tout[0]->size == sizeof(tin) &&
				((float *)tout[0]->data)[2] == 3 && tout[0]->owned &&
				strcmp(st.message, "Operation handled by noop plugin") == 0);
	vaccel_tf_status_release(&st);
	vaccel_tf_tensor_delete(tout[0]);
	CHECK("tf unload", vaccel_tf_model_unload(&sess, &model, &st) == VACCEL_OK && st.code == 0);
	vaccel_tf_status_release(&st);
	vaccel_tf_tensor_delete(tt);
	vaccel_tf_node_release(&in_node);
	CHECK("node release", in_node.id == -1 && in_node.name == NULL);
	vaccel_tf_node_release(&out_node);

	int32_t ldims[2] = { 1, 3 };
	struct vaccel_tflite_tensor *lt = NULL, *lout[1] = { NULL };
	uint8_t lst = 9;
	CHECK("tflite load", vaccel_tflite_model_load(&sess, &model) == VACCEL_OK);
	vaccel_tflite_tensor_allocate(&lt, 2, ldims, VACCEL_TFLITE_FLOAT32, sizeof(tin));
	memcpy(lt->data, tin, sizeof(tin));
	CHECK("tflite run", vaccel_tflite_model_run(&sess, &model, &lt, 1, lout, 1, &lst) == VACCEL_OK && lst == 0 &&
				    lout[0] && ((float *)lout[0]->data)[1] == 2);
	CHECK("tflite more outputs than inputs",
	      vaccel_tflite_model_run(&sess, &model, &lt, 1, lout, 2, &lst) == VACCEL_EINVAL);
	vaccel_tflite_tensor_delete(lout[0]);
	CHECK("tflite unload", vaccel_tflite_model_unload(&sess, &model) == VACCEL_OK);
	void *taken = NULL;
	size_t taken_size = 0;
	CHECK("tflite take_data", vaccel_tflite_tensor_take_data(lt, &taken, &taken_size) == VACCEL_OK &&
					  taken_size == sizeof(tin) && lt->data == NULL);
	free(taken);
	vaccel_tflite_tensor_delete(lt);

	struct vaccel_torch_tensor *pt = NULL, *pout[1] = { NULL }, *sgemm_out = NULL;
	CHECK("torch load", vaccel_torch_model_load(&sess, &model) == VACCEL_OK);
	vaccel_torch_tensor_new(&pt, 2, dims, VACCEL_TORCH_FLOAT);
	vaccel_torch_tensor_set_data(pt, tin, sizeof(tin));
	CHECK("torch run", vaccel_torch_model_run(&sess, &model, NULL, &pt, 1, pout, 1) == VACCEL_OK && pout[0] &&
				   pout[0]->data_type == VACCEL_TORCH_FLOAT && ((float *)pout[0]->data)[0] == 1);
	vaccel_torch_tensor_delete(pout[0]);
	CHECK("torch sgemm", vaccel_torch_sgemm(&sess, &pt, &pt, &pt, 1, 1, 1, &sgemm_out) == VACCEL_OK &&
				     sgemm_out == NULL);
	vaccel_torch_tensor_delete(pt);
	struct vaccel_torch_buffer tb;
	char *tbdata = strdup("run-options");
	CHECK("torch buffer", vaccel_torch_buffer_init(&tb, tbdata, 11) == VACCEL_OK &&
				      vaccel_torch_buffer_release(&tb) == VACCEL_OK && tb.data == NULL);
	CHECK("tensor init needs dims", vaccel_tf_tensor_new(&tt, 0, dims, VACCEL_TF_FLOAT) == VACCEL_EINVAL);

	/* genop */
	uint8_t op = VACCEL_OP_IMAGE_CLASSIFY;
	unsigned char g_name[64] = { 0 }, g_text[64] = { 0 };
	struct vaccel_arg_array gr, gw;
	vaccel_arg_array_init(&gr, 2);
	vaccel_arg_array_init(&gw, 2);
	vaccel_arg_array_add_uint8(&gr, &op);
	vaccel_arg_array_add_buffer(&gr, "image", 5);
	vaccel_arg_array_add_uchar_array(&gw, g_name, sizeof(g_name));
	vaccel_arg_array_add_uchar_array(&gw, g_text, sizeof(g_text));
	CHECK("genop classify", vaccel_genop(&sess, gr.args, (int)gr.count, gw.args, (int)gw.count) == VACCEL_OK &&
					strcmp((char *)g_name, "This is a dummy imgname!") == 0 &&
					strcmp((char *)g_text, "This is a dummy classification tag!") == 0);
	vaccel_arg_array_release(&gr);
	vaccel_arg_array_release(&gw);

	uint8_t op_exec = VACCEL_OP_EXEC;
	char lname[] = "libmytestlib.so", fname[] = "mytestfunc";
	out = 0;
	vaccel_arg_array_init(&gr, 4);
	vaccel_arg_array_add_uint8(&gr, &op_exec);
	vaccel_arg_array_add_string(&gr, lname);
	vaccel_arg_array_add_string(&gr, fname);
	vaccel_arg_array_add_int32(&gr, &in);
	CHECK("genop exec", vaccel_genop(&sess, gr.args, 4, write, 1) == VACCEL_OK && out == 10);
	CHECK("genop no args", vaccel_genop(&sess, NULL, 0, NULL, 0) == VACCEL_EINVAL);
	CHECK("genop negative count", vaccel_genop(&sess, gr.args, -1, write, 1) == VACCEL_EINVAL);
	uint8_t bad_op = 99;
	gr.args[0].buf = &bad_op;
	CHECK("genop invalid op", vaccel_genop(&sess, gr.args, 4, write, 1) == VACCEL_EINVAL);
	gr.args[0].type = VACCEL_ARG_INT32;
	CHECK("genop op arg wrong type", vaccel_genop(&sess, gr.args, 4, write, 1) == VACCEL_EINVAL);
	vaccel_arg_array_release(&gr);

	/* NULL and wrong-typed args are errors, never crashes. */
	CHECK("NULL session", vaccel_noop(NULL) == VACCEL_EINVAL &&
				      vaccel_exec(NULL, "l", "f", read, 1, write, 1) == VACCEL_EINVAL &&
				      vaccel_image_depth(NULL, "i", name, 1, 1) == VACCEL_EINVAL &&
				      vaccel_tf_model_load(NULL, &model, &st) == VACCEL_EINVAL);
	struct vaccel_session bogus;
	memset(&bogus, 0x5a, sizeof(bogus));
	CHECK("uninitialised session", vaccel_noop(&bogus) == VACCEL_EINVAL);
	CHECK("NULL strings", vaccel_exec(&sess, NULL, "f", read, 1, write, 1) == VACCEL_EINVAL &&
				      vaccel_exec(&sess, "l", NULL, read, 1, write, 1) == VACCEL_EINVAL);
	CHECK("NULL arrays with counts", vaccel_exec(&sess, "l", "f", NULL, 1, write, 1) == VACCEL_EINVAL &&
						 vaccel_exec(&sess, "l", "f", read, 1, NULL, 1) == VACCEL_EINVAL);
	struct vaccel_arg wrong[] = { { .buf = &in, .size = 3, .type = VACCEL_ARG_INT32 } };
	CHECK("wrong-typed read arg", vaccel_exec(&sess, "l", "f", wrong, 1, write, 1) == VACCEL_EINVAL);
	struct vaccel_arg unknown[] = { { .buf = &in, .size = 4, .type = (vaccel_arg_type_t)99 } };
	CHECK("unknown arg type", vaccel_exec(&sess, "l", "f", unknown, 1, write, 1) == VACCEL_EINVAL);
	struct vaccel_arg nullbuf[] = { { .buf = NULL, .size = 4, .type = VACCEL_ARG_RAW } };
	CHECK("NULL buf with size", vaccel_exec(&sess, "l", "f", nullbuf, 1, write, 1) == VACCEL_EINVAL);
	struct vaccel_arg alias[] = { { .buf = &out, .size = sizeof(out), .type = VACCEL_ARG_INT32 } };
	CHECK("output aliases input", vaccel_exec(&sess, "l", "f", alias, 1, write, 1) == VACCEL_EINVAL);
	CHECK("NULL image", vaccel_image_classification(&sess, NULL, text, name, 3, 8, 8) == VACCEL_EINVAL);
	CHECK("empty image", vaccel_image_detection(&sess, "x", name, 0, sizeof(name)) == VACCEL_EINVAL);
	CHECK("outputs overlap", vaccel_image_classification(&sess, "img", text, text + 4, 3, 8, 8) == VACCEL_EINVAL);
	CHECK("NULL model", vaccel_tflite_model_load(&sess, NULL) == VACCEL_EINVAL);
	CHECK("NULL tensors", vaccel_tflite_model_run(&sess, &model, NULL, 1, lout, 1, &lst) == VACCEL_EINVAL);

	vaccel_resource_release(&model);
	vaccel_resource_release(&lib);
	vaccel_session_release(&sess);
}

/* ---- profiling --------------------------------------------------------------------- */

static void test_prof(void)
{
	struct vaccel_prof_region r, rs[2], stat = VACCEL_PROF_REGION_INIT("static_region");
	char *buf = NULL;

	CHECK("prof_enabled", vaccel_prof_enabled());
	CHECK("region_init", vaccel_prof_region_init(&r, "my_region") == VACCEL_OK && r.name_owned &&
				     strcmp(r.name, "my_region") == 0 && r.size == 1024);
	CHECK("stop without start", vaccel_prof_region_stop(&r) == VACCEL_ENOENT);
	CHECK("start/stop", vaccel_prof_region_start(&r) == VACCEL_OK && usleep(1000) == 0 &&
				    vaccel_prof_region_stop(&r) == VACCEL_OK && r.nr_entries == 1 &&
				    r.samples[0].time >= 1000000);
	CHECK("print", vaccel_prof_region_print(&r) == VACCEL_OK);
	CHECK("static region grows", vaccel_prof_region_start(&stat) == VACCEL_OK &&
					     vaccel_prof_region_stop(&stat) == VACCEL_OK && stat.nr_entries == 1);
	CHECK("regions_init", vaccel_prof_regions_init(rs, 2) == VACCEL_OK);
	strcpy((char *)rs[0].name, "first");
	strcpy((char *)rs[1].name, "second");
	CHECK("start_by_name", vaccel_prof_regions_start_by_name(rs, 2, "second") == VACCEL_OK &&
				       vaccel_prof_regions_stop_by_name(rs, 2, "second") == VACCEL_OK &&
				       rs[1].nr_entries == 1 && rs[0].nr_entries == 0);
	CHECK("by_name missing", vaccel_prof_regions_start_by_name(rs, 2, "third") == VACCEL_ENOENT);
	CHECK("print_all", vaccel_prof_regions_print_all(rs, 2) == VACCEL_OK);
	int needed = vaccel_prof_regions_print_all_to_buf(NULL, 0, rs, 2);
	CHECK("print_all_to_buf size", needed > 0);
	CHECK("print_all_to_buf", vaccel_prof_regions_print_all_to_buf(&buf, (size_t)needed, rs, 2) == 2 &&
					  strncmp(buf, "[prof] second: total_time: ", 27) == 0);
	free(buf);
	CHECK("regions_release", vaccel_prof_regions_release(rs, 2) == VACCEL_OK && rs[0].samples == NULL);
	CHECK("region_release", vaccel_prof_region_release(&r) == VACCEL_OK &&
					vaccel_prof_region_release(&stat) == VACCEL_OK);
	CHECK("prof NULL", vaccel_prof_region_start(NULL) == VACCEL_EINVAL);
}

int main(int argc, char *argv[])
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s <scratch dir>\n", argv[0]);
		return 100;
	}
	snprintf(dir, sizeof(dir), "%s", argv[1]);
	snprintf(file_a, sizeof(file_a), "%s/a.txt", dir);
	snprintf(file_b, sizeof(file_b), "%s/b.txt", dir);

	test_core();
	test_log_and_enums();
	test_sessions();
	test_blobs();
	test_resources();
	test_args();
	test_arg_arrays();
	test_arg_list();
	test_ops();
	test_prof();

	printf("%d checks, %d failures\n", checks, failures);
	return failures;
}

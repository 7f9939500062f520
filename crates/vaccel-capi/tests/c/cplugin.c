/* SPDX-License-Identifier: Apache-2.0 */
/* An upstream-style C plugin: VACCEL_PLUGIN() descriptor, ops registered from init with
 * vaccel_plugin_register_ops(), functions reading the C views of sessions, resources, blobs
 * and args. Built as a shared library by the tests (not linked with -lvaccel: the symbols it
 * uses come from the libvaccel.so the application loaded, as with upstream plugins).
 * -DCPLUG_VACCEL_VERSION="..." builds it for another vAccel version. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <vaccel.h>

#ifndef CPLUG_VACCEL_VERSION
#define CPLUG_VACCEL_VERSION VACCEL_VERSION
#endif

static int nr_registered;

static int cplug_noop(struct vaccel_session *sess)
{
	vaccel_info("[cplug] noop for session %" PRId64 " (rundir set: %s)", sess->id,
		    sess->rundir[0] ? "yes" : "no");
	return VACCEL_OK;
}

/* write[0] = 3 * read[0], both INT32; the library string must come through. */
static int cplug_exec(struct vaccel_session *sess, const char *library,
		      const char *fn_symbol, struct vaccel_arg *read, size_t nr_read,
		      struct vaccel_arg *write, size_t nr_write)
{
	if (!sess || !library || !fn_symbol || nr_read != 1 || nr_write != 1)
		return VACCEL_EINVAL;
	if (read[0].type != VACCEL_ARG_INT32 || write[0].size != sizeof(int32_t))
		return VACCEL_EINVAL;
	*(int32_t *)write[0].buf = 3 * *(int32_t *)read[0].buf;
	vaccel_info("[cplug] exec %s:%s in session %" PRId64, library, fn_symbol, sess->id);
	return VACCEL_OK;
}

/* Reports the resource's blobs as the plugin sees them; write[0] = number of blobs. */
static int cplug_exec_with_resource(struct vaccel_session *sess,
				    struct vaccel_resource *res, const char *fn_symbol,
				    struct vaccel_arg *read, size_t nr_read,
				    struct vaccel_arg *write, size_t nr_write)
{
	(void)read;
	(void)nr_read;
	if (!res || nr_write != 1 || write[0].size != sizeof(int32_t))
		return VACCEL_EINVAL;
	for (size_t i = 0; i < res->nr_blobs; i++) {
		struct vaccel_blob *b = res->blobs[i];
		vaccel_info("[cplug] res %" PRId64 " blob %zu: type %s name %s path %s size %zu first %c",
			    res->id, i, vaccel_blob_type_to_str(b->type), b->name,
			    b->path ? "set" : "(null)", b->size,
			    (b->data && b->size) ? (char)b->data[0] : '-');
	}
	vaccel_info("[cplug] %s in session %" PRId64 " refcount %u plugin_priv %s", fn_symbol,
		    sess->id, (unsigned)res->refcount,
		    res->plugin_priv ? (const char *)res->plugin_priv : "(null)");
	*(int32_t *)write[0].buf = (int32_t)res->nr_blobs;
	return VACCEL_OK;
}

static int cplug_classify(struct vaccel_session *sess, const void *img,
			  unsigned char *out_text, unsigned char *out_imgname,
			  size_t len_img, size_t len_out_text, size_t len_out_imgname)
{
	struct vaccel_resource *model = NULL;

	(void)img;
	if (vaccel_session_resource_by_type(sess, &model, VACCEL_RESOURCE_MODEL) == VACCEL_OK)
		vaccel_info("[cplug] model resource %" PRId64, model->id);
	snprintf((char *)out_text, len_out_text, "cplug tag (%zu bytes)", len_img);
	snprintf((char *)out_imgname, len_out_imgname, "cplug image");
	return VACCEL_OK;
}

/* Mirrors input i to output i, allocated with the library's helpers. */
static int cplug_tflite_run(struct vaccel_session *sess, const struct vaccel_resource *model,
			    struct vaccel_tflite_tensor *const *in, int nr_inputs,
			    struct vaccel_tflite_tensor **out, int nr_outputs, uint8_t *status)
{
	(void)sess;
	(void)model;
	if (nr_outputs > nr_inputs)
		return VACCEL_EINVAL;
	for (int i = 0; i < nr_outputs; i++) {
		int ret = vaccel_tflite_tensor_allocate(&out[i], in[i]->nr_dims, in[i]->dims,
							in[i]->data_type, in[i]->size);
		if (ret)
			return ret;
		memcpy(out[i]->data, in[i]->data, in[i]->size);
	}
	*status = 7;
	return VACCEL_OK;
}

static int cplug_fail(struct vaccel_session *sess)
{
	(void)sess;
	return VACCEL_EBUSY;
}

static int cplug_resource_register(struct vaccel_resource *res, struct vaccel_session *sess)
{
	nr_registered++;
	res->plugin_priv = "seen by cplug";
	vaccel_info("[cplug] register resource %" PRId64 " with session %" PRId64 " (%zu blobs)",
		    res->id, sess->id, res->nr_blobs);
	return VACCEL_OK;
}

static int cplug_resource_unregister(struct vaccel_resource *res, struct vaccel_session *sess)
{
	nr_registered--;
	vaccel_info("[cplug] unregister resource %" PRId64 " from session %" PRId64, res->id,
		    sess->id);
	return VACCEL_OK;
}

static struct vaccel_op ops[] = {
	VACCEL_OP_INIT(ops[0], VACCEL_OP_NOOP, cplug_noop),
	VACCEL_OP_INIT(ops[1], VACCEL_OP_EXEC, cplug_exec),
	VACCEL_OP_INIT(ops[2], VACCEL_OP_EXEC_WITH_RESOURCE, cplug_exec_with_resource),
	VACCEL_OP_INIT(ops[3], VACCEL_OP_IMAGE_CLASSIFY, cplug_classify),
	VACCEL_OP_INIT(ops[4], VACCEL_OP_TFLITE_MODEL_RUN, cplug_tflite_run),
	/* Registered under IMAGE_DEPTH to check plugin error codes come through. */
	VACCEL_OP_INIT(ops[5], VACCEL_OP_IMAGE_DEPTH, cplug_fail),
};

static int init(void)
{
	vaccel_info("[cplug] init");
	return vaccel_plugin_register_ops(ops, sizeof(ops) / sizeof(ops[0]));
}

static int fini(void)
{
	vaccel_info("[cplug] fini (%d resources still registered)", nr_registered);
	return VACCEL_OK;
}

VACCEL_PLUGIN(.name = "cplug", .version = "1.2.3", .vaccel_version = CPLUG_VACCEL_VERSION,
	      .type = VACCEL_PLUGIN_CPU | VACCEL_PLUGIN_GENERIC, .init = init, .fini = fini,
	      .resource_register = cplug_resource_register,
	      .resource_unregister = cplug_resource_unregister)

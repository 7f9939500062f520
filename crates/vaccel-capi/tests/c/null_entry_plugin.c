/* SPDX-License-Identifier: Apache-2.0 */
/* A C plugin whose descriptor is written out by hand, with its list entry left {NULL, NULL}
 * (vaccel-rs's plugin libraries exported it so before they linked it to itself, as upstream's
 * VACCEL_PLUGIN() does). vaccel-rs's loader never reads the entry, so it accepts this form and
 * the self-linked one alike; upstream's loader refuses this one. */
#include <inttypes.h>
#include <vaccel.h>

static int null_entry_noop(struct vaccel_session *sess)
{
	vaccel_info("[nullentry] noop for session %" PRId64, sess->id);
	return VACCEL_OK;
}

static struct vaccel_plugin this_plugin;

static struct vaccel_op ops[] = {
	{ .type = VACCEL_OP_NOOP, .func = (void *)null_entry_noop, .owner = &this_plugin },
};

static int init(void)
{
	return vaccel_plugin_register_ops(ops, sizeof(ops) / sizeof(ops[0]));
}

static int fini(void)
{
	return VACCEL_OK;
}

static struct vaccel_plugin_info info = {
	.name = "nullentry",
	.version = "0.0.1",
	.vaccel_version = VACCEL_VERSION,
	.init = init,
	.fini = fini,
	.type = VACCEL_PLUGIN_DEBUG,
};

static struct vaccel_plugin this_plugin = {
	.dl_handle = NULL,
	.entry = { NULL, NULL },
	.ops = { NULL },
	.info = &info,
};

const struct vaccel_plugin *vaccel_plugin = &this_plugin;

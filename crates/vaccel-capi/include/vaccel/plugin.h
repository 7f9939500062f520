/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_PLUGIN_H
#define VACCEL_PLUGIN_H

#include "list.h"
#include "op.h"
#include "resource.h"
#include "session.h"
#include "utils/enum.h"
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Plugin type bitmask; session flags are a hint of this type. */
typedef enum {
	VACCEL_PLUGIN_CPU = 0x0001,
	VACCEL_PLUGIN_GPU = 0x0002,
	VACCEL_PLUGIN_FPGA = 0x0004,
	VACCEL_PLUGIN_SOFTWARE = 0x0008,
	VACCEL_PLUGIN_TENSORFLOW = 0x0010,
	VACCEL_PLUGIN_TORCH = 0x0020,
	VACCEL_PLUGIN_JETSON = 0x0040,
	VACCEL_PLUGIN_GENERIC = 0x0080,
	VACCEL_PLUGIN_DEBUG = 0x0100,
	VACCEL_PLUGIN_REMOTE = 0x4000,
	VACCEL_PLUGIN_ALL = 0xffff,
	VACCEL_PLUGIN_MAX = 0x10000
} vaccel_plugin_type_t;

#define VACCEL_PLUGIN_TYPE_LIST_(X)                                                    \
	X(VACCEL_PLUGIN, CPU) X(VACCEL_PLUGIN, GPU) X(VACCEL_PLUGIN, FPGA)              \
	X(VACCEL_PLUGIN, SOFTWARE) X(VACCEL_PLUGIN, TENSORFLOW) X(VACCEL_PLUGIN, TORCH) \
	X(VACCEL_PLUGIN, JETSON) X(VACCEL_PLUGIN, GENERIC) X(VACCEL_PLUGIN, DEBUG)      \
	X(VACCEL_PLUGIN, REMOTE) X(VACCEL_PLUGIN, ALL)
VACCEL_ENUM_STR_FUNCS(vaccel_plugin_type, VACCEL_PLUGIN, VACCEL_PLUGIN_TYPE_LIST_)

/* A plugin's descriptor. name, version, vaccel_version, init and fini are required. The
 * session hooks are called for remote (is_virtio) plugins only; the resource hooks for every
 * plugin that sets them. */
struct vaccel_plugin_info {
	const char *name;
	const char *version;
	const char *vaccel_version; /* VACCEL_VERSION when built; the major must match */
	int (*init)(void);
	int (*fini)(void);
	bool is_virtio;
	vaccel_plugin_type_t type;
	int (*session_init)(struct vaccel_session *sess, uint32_t flags);
	int (*session_release)(struct vaccel_session *sess);
	int (*session_update)(struct vaccel_session *sess, uint32_t flags);
	int (*resource_register)(struct vaccel_resource *res,
				 struct vaccel_session *sess);
	int (*resource_unregister)(struct vaccel_resource *res,
				   struct vaccel_session *sess);
	int (*resource_sync)(struct vaccel_resource *res,
			     struct vaccel_session *sess);
};

struct vaccel_plugin {
	void *dl_handle;
	struct vaccel_list_entry entry;
	struct vaccel_op *ops[VACCEL_OP_MAX]; /* filled by vaccel_plugin_register_ops() */
	struct vaccel_plugin_info *info;
};

/* Defines the plugin of a shared library: its descriptor (designated initialisers of
 * struct vaccel_plugin_info), the hidden `vaccel_this_plugin` that VACCEL_OP_INIT() refers to,
 * and the exported `vaccel_plugin` symbol the loader looks up. C only. */
#define VACCEL_PLUGIN(...)                                                      \
	static struct vaccel_plugin_info vaccel_plugin_info_ = { __VA_ARGS__ };   \
	__attribute__((visibility("hidden"))) struct vaccel_plugin               \
		vaccel_this_plugin = {                                          \
			.dl_handle = NULL,                                      \
			.entry = LIST_ENTRY_INIT(vaccel_this_plugin.entry),     \
			.ops = { NULL },                                        \
			.info = &vaccel_plugin_info_                            \
		};                                                              \
	__attribute__((visibility("default"))) const struct vaccel_plugin        \
		*vaccel_plugin = &vaccel_this_plugin;

/* Called from a plugin's init: stores &ops[i] as the plugin's implementation of
 * ops[i].type (the plugin is ops[0].owner). `ops` must stay valid while the plugin is loaded. */
int vaccel_plugin_register_ops(struct vaccel_op *ops, size_t nr_ops);
/* Loads a plugin library by path or file name (searched on the library path) and registers
 * it. Only while no session or resource is alive (VACCEL_EBUSY otherwise). */
int vaccel_plugin_load(const char *lib);
/* Loads every entry of a ':'-separated list, stopping at the first failure. */
int vaccel_plugin_parse_and_load(const char *lib_str);

static inline int vaccel_plugin_register_op(struct vaccel_op *op)
{
	return vaccel_plugin_register_ops(op, 1);
}

/* Deprecated. */
#define VACCEL_MODULE(...)                                                                  \
	_Pragma("GCC warning \"VACCEL_MODULE() is deprecated. Use VACCEL_PLUGIN() instead\"") \
		VACCEL_PLUGIN(__VA_ARGS__)

__attribute__((deprecated("Use vaccel_plugin_register_op() instead"))) static inline int
register_plugin_function(struct vaccel_op *plugin_op)
{
	return vaccel_plugin_register_op(plugin_op);
}

__attribute__((deprecated("Use vaccel_plugin_register_ops() instead"))) static inline int
register_plugin_functions(struct vaccel_op *plugin_ops, size_t nr_ops)
{
	return vaccel_plugin_register_ops(plugin_ops, nr_ops);
}

#ifdef __cplusplus
}
#endif

#endif /* VACCEL_PLUGIN_H */

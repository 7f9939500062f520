// SPDX-License-Identifier: Apache-2.0
/*
 * A second, independent plugin loader, in the style of upstream libvaccel's (src/plugin.c,
 * spec §3), for plugin libraries built with our SDK: upstream's libvaccel.so must accept them.
 * This program is the whole host: it links no libvaccel and offers only the C API functions a
 * plugin built against upstream's headers calls (vaccel_plugin_register_ops, slog_print),
 * exported with -rdynamic. It never calls vaccel_rs_plugin_bind (vaccel-rs's private host
 * table), which upstream's libvaccel does not have.
 *
 *   upstream_loader <plugin library> noop <rundir>
 *   upstream_loader <plugin library> exec <rundir> <function library>
 *
 * Loads the library as upstream does (dlopen RTLD_LAZY, dlsym "vaccel_plugin", the entry must
 * be self-linked, the info's checks and version check), links the descriptor into its own
 * plugin list, runs init(), calls one op through the descriptor's ops table (what
 * vaccel_plugin_register_ops fills) on a session of its own, then fini(), unlinks and
 * dlcloses. Prints one line per step; exits 0 only if every step succeeded.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vaccel.h>

/* The vAccel version this host claims, as upstream 0.7.1's libvaccel would. */
#define HOST_VERSION "0.7.1"

static struct vaccel_list_entry plugins = { &plugins, &plugins };
static int nr_register_calls;

/* --- The C API a plugin may call --------------------------------------------------------- */

int vaccel_plugin_register_ops(struct vaccel_op *ops, size_t nr_ops)
{
	size_t i;

	nr_register_calls++;
	if (!ops || nr_ops == 0 || nr_ops > VACCEL_OP_MAX)
		return VACCEL_EINVAL;
	for (i = 0; i < nr_ops; i++) {
		if (!ops[0].owner || ops[i].type >= VACCEL_OP_MAX)
			return VACCEL_EINVAL;
		ops[0].owner->ops[ops[i].type] = &ops[i];
	}
	return VACCEL_OK;
}

void slog_print(SLOG_FLAGS_E eFlag, uint8_t nNewLine, const char *pMsg, ...)
{
	va_list ap;

	(void)eFlag;
	va_start(ap, pMsg);
	printf("host log: ");
	vprintf(pMsg, ap);
	if (nNewLine)
		printf("\n");
	va_end(ap);
}

/* --- The loader ------------------------------------------------------------------------ */

/* Upstream's version parse: an optional leading 'v', then "%d.%d.%d". */
static int parse_version(const char *text, int v[3])
{
	if (!text)
		return VACCEL_EINVAL;
	if (text[0] == 'v')
		text++;
	return sscanf(text, "%d.%d.%d", &v[0], &v[1], &v[2]) == 3 ? VACCEL_OK : VACCEL_EINVAL;
}

static int check_info(const struct vaccel_plugin_info *info)
{
	int ours[3], theirs[3];

	if (!info) {
		printf("FAIL: the descriptor has no info\n");
		return VACCEL_EINVAL;
	}
	if (!info->name || !info->version || !info->init || !info->fini) {
		printf("FAIL: name, version, init and fini are required\n");
		return VACCEL_EINVAL;
	}
	if (parse_version(info->vaccel_version, theirs) != VACCEL_OK ||
	    parse_version(HOST_VERSION, ours) != VACCEL_OK) {
		printf("FAIL: vaccel_version %s is not %%d.%%d.%%d\n",
		       info->vaccel_version ? info->vaccel_version : "(null)");
		return VACCEL_EINVAL;
	}
	if (ours[0] != theirs[0]) {
		printf("FAIL: incompatible (built w/ %s, used w/ %s)\n", info->vaccel_version,
		       HOST_VERSION);
		return VACCEL_EINVAL;
	}
	return VACCEL_OK;
}

static int call_op(struct vaccel_plugin *plugin, const char *op_name, const char *rundir,
		   const char *fn_library)
{
	vaccel_op_type_t type = strcmp(op_name, "exec") == 0 ? VACCEL_OP_EXEC : VACCEL_OP_NOOP;
	struct vaccel_op *op = plugin->ops[type];
	struct vaccel_session *sess;
	int ret, i;

	if (!op || op->type != type || !op->func || op->owner != plugin) {
		printf("FAIL: no %s op registered by %s\n", op_name, plugin->info->name);
		return VACCEL_ENOTSUP;
	}
	/* A session as upstream's vaccel_session_init leaves it for a local plugin: no hook
	 * called, the plugin and hint set, its own run directory. */
	sess = calloc(1, sizeof(*sess));
	if (!sess)
		return VACCEL_ENOMEM;
	sess->id = 1;
	sess->plugin = plugin;
	snprintf(sess->rundir, sizeof(sess->rundir), "%s", rundir);
	for (i = 0; i < VACCEL_RESOURCE_MAX; i++) {
		sess->resources[i].next = &sess->resources[i];
		sess->resources[i].prev = &sess->resources[i];
	}
	pthread_mutex_init(&sess->resources_lock, NULL);

	if (type == VACCEL_OP_NOOP) {
		int (*noop)(struct vaccel_session *) = (int (*)(struct vaccel_session *))op->func;

		ret = noop(sess);
		printf("noop returned %d\n", ret);
	} else {
		int (*exec)(struct vaccel_session *, const char *, const char *,
			    struct vaccel_arg *, size_t, struct vaccel_arg *, size_t) =
			(int (*)(struct vaccel_session *, const char *, const char *,
				 struct vaccel_arg *, size_t, struct vaccel_arg *, size_t))op->func;
		int32_t in = 21, out = 0;
		struct vaccel_arg read = { .buf = &in, .size = sizeof(in), .type = VACCEL_ARG_RAW };
		struct vaccel_arg write = { .buf = &out, .size = sizeof(out), .type = VACCEL_ARG_RAW };

		ret = exec(sess, fn_library, "mytestfunc", &read, 1, &write, 1);
		printf("exec returned %d, output %d\n", ret, out);
		if (ret == VACCEL_OK && out != 2 * in)
			ret = VACCEL_EINVAL;
	}
	pthread_mutex_destroy(&sess->resources_lock);
	free(sess);
	return ret;
}

int main(int argc, char **argv)
{
	const struct vaccel_plugin *const *symbol;
	struct vaccel_plugin *plugin;
	void *dl;
	int ret;

	if (argc < 4 || (strcmp(argv[2], "exec") == 0 && argc < 5)) {
		fprintf(stderr, "usage: %s <plugin library> noop|exec <rundir> [function library]\n",
			argv[0]);
		return 2;
	}
	dl = dlopen(argv[1], RTLD_LAZY);
	if (!dl) {
		printf("FAIL: Could not dlopen plugin %s: %s\n", argv[1], dlerror());
		return 1;
	}
	symbol = dlsym(dl, "vaccel_plugin");
	if (!symbol || !*symbol) {
		printf("FAIL: %s is not a vaccel plugin\n", argv[1]);
		return 1;
	}
	plugin = (struct vaccel_plugin *)*symbol;
	/* Upstream refuses a plugin whose entry is not linked to itself: already registered. */
	if (plugin->entry.next != &plugin->entry || plugin->entry.prev != &plugin->entry) {
		printf("FAIL: the descriptor's entry is not self-linked (already registered)\n");
		return 1;
	}
	if (check_info(plugin->info) != VACCEL_OK)
		return 1;
	/* Registered: linked into this host's list, as upstream's list_add_tail. */
	plugin->entry.prev = plugins.prev;
	plugin->entry.next = &plugins;
	plugins.prev->next = &plugin->entry;
	plugins.prev = &plugin->entry;
	printf("Registered plugin %s %s (vaccel %s)\n", plugin->info->name, plugin->info->version,
	       plugin->info->vaccel_version);

	ret = plugin->info->init();
	printf("init returned %d (%d calls to vaccel_plugin_register_ops)\n", ret,
	       nr_register_calls);
	if (ret != VACCEL_OK)
		return 1;

	ret = call_op(plugin, argv[2], argv[3], argc > 4 ? argv[4] : NULL);

	/* Unregistered: unlinked, fini, dlclose. */
	plugin->entry.prev->next = plugin->entry.next;
	plugin->entry.next->prev = plugin->entry.prev;
	plugin->entry.next = &plugin->entry;
	plugin->entry.prev = &plugin->entry;
	printf("fini returned %d\n", plugin->info->fini());
	printf("Unregistered plugin %s\n", plugin->info->name);
	dlclose(dl);
	return ret == VACCEL_OK ? 0 : 1;
}

/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_CONFIG_H
#define VACCEL_CONFIG_H

#include "log.h"
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Runtime configuration. The strings are owned by the struct (malloc'ed by the init
 * functions, freed by vaccel_config_release()). */
struct vaccel_config {
	char *plugins; /* ':'-separated plugin names or paths; NULL loads none */
	vaccel_log_level_t log_level; /* 1-4; any other value turns logging off */
	char *log_file; /* NULL logs to stdout */
	bool profiling_enabled;
	bool version_ignore; /* accept plugins built for another major version */
};

/* Fills `config`, copying the strings (NULL allowed). */
int vaccel_config_init(struct vaccel_config *config, const char *plugins,
		       vaccel_log_level_t log_level, const char *log_file,
		       bool profiling_enabled, bool version_ignore);
/* Fills `config` from VACCEL_PLUGINS, VACCEL_LOG_LEVEL, VACCEL_LOG_FILE,
 * VACCEL_PROFILING_ENABLED, VACCEL_VERSION_IGNORE (malformed values: VACCEL_EINVAL). */
int vaccel_config_init_from_env(struct vaccel_config *config);
/* Deep copy of `config_src`. */
int vaccel_config_init_from(struct vaccel_config *config,
			    struct vaccel_config *config_src);
/* Frees the strings and resets every field to its default. */
int vaccel_config_release(struct vaccel_config *config);
/* Heap variants: the caller frees the result with vaccel_config_delete(). */
int vaccel_config_new(struct vaccel_config **config, const char *plugins,
		      vaccel_log_level_t log_level, const char *log_file,
		      bool profiling_enabled, bool version_ignore);
int vaccel_config_from_env(struct vaccel_config **config);
int vaccel_config_from(struct vaccel_config **config,
		       struct vaccel_config *config_src);
int vaccel_config_delete(struct vaccel_config *config);
/* Logs the configuration at debug level. */
void vaccel_config_print_debug(struct vaccel_config *config);

#ifdef __cplusplus
}
#endif

#endif /* VACCEL_CONFIG_H */

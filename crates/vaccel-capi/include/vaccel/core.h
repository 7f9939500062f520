/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_CORE_H
#define VACCEL_CORE_H

#include "config.h"
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library bootstraps itself from the environment when it is loaded (unless
 * VACCEL_BOOTSTRAP_ENABLED=0) and cleans up when it is unloaded (unless
 * VACCEL_CLEANUP_ENABLED=0). A bootstrap failure (e.g. a missing plugin) is logged and leaves
 * the library uninitialised: later calls fail with error codes; the process is not exited. */

/* (Re)initialises the runtime from the environment. Re-bootstrapping releases every session,
 * resource and plugin of the previous runtime first. */
int vaccel_bootstrap(void);
/* Same with a configuration (deep-copied; the caller keeps `config`). */
int vaccel_bootstrap_with_config(struct vaccel_config *config);
/* Releases every session, resource and plugin; no-op when not initialised. */
int vaccel_cleanup(void);
bool vaccel_is_initialized(void);
/* The runtime's directory; owned by the library, valid until the next cleanup or bootstrap.
 * NULL when not initialised. */
const char *vaccel_rundir(void);
/* The configuration in force; owned by the library, valid until the next cleanup or
 * bootstrap. NULL when not initialised. */
const struct vaccel_config *vaccel_config(void);

#ifdef __cplusplus
}
#endif

#endif /* VACCEL_CORE_H */

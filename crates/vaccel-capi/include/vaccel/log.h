/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_LOG_H
#define VACCEL_LOG_H

#include "utils/enum.h"
#include <slog.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Log levels: each enables itself and every level below it. */
typedef enum {
	VACCEL_LOG_ERROR = 1,
	VACCEL_LOG_WARN = 2,
	VACCEL_LOG_INFO = 3,
	VACCEL_LOG_DEBUG = 4,
	VACCEL_LOG_MAX = 5
} vaccel_log_level_t;

#define VACCEL_LOG_LEVEL_LIST_(X)                                      \
	X(VACCEL_LOG, ERROR) X(VACCEL_LOG, WARN) X(VACCEL_LOG, INFO) \
	X(VACCEL_LOG, DEBUG)
VACCEL_ENUM_STR_FUNCS(vaccel_log_level, VACCEL_LOG, VACCEL_LOG_LEVEL_LIST_)

/* (Re)applies the level and destination of the current configuration. */
int vaccel_log_init(void);
/* Turns logging off. */
int vaccel_log_shutdown(void);

/* vaccel-rs extension: writes one message at `level` (a vaccel_log_level_t, or 5 for trace and
 * 0 for fatal, logged as an error). `msg` is copied; a trailing newline is dropped. NULL
 * messages are ignored. */
void vaccel_log_write(int level, const char *msg);
/* vaccel-rs extension: whether a message at `level` would be written. */
bool vaccel_log_enabled(int level);

/* printf-style logging through the runtime's logger, as upstream's: slog's macros, which call
 * slog_print() (slog.h). Trace and fatal messages are never written (upstream never enables
 * them). */
#define vaccel_info slog_info
#define vaccel_warn slog_warn
#define vaccel_debug slog_debug
#define vaccel_error slog_error
#define vaccel_trace slog_trace
#define vaccel_fatal slog_fatal

#ifdef __cplusplus
}
#endif

#endif /* VACCEL_LOG_H */

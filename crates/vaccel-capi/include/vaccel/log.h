/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_LOG_H
#define VACCEL_LOG_H

#include "utils/enum.h"
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

/* vaccel-rs extension behind the vaccel_<level>() macros: `level` is a vaccel_log_level_t, or
 * 5 for trace and 0 for fatal (logged as an error). `msg` is copied; a trailing newline is
 * dropped. NULL messages are ignored. */
void vaccel_log_write(int level, const char *msg);
/* vaccel-rs extension: whether a message at `level` would be written. */
bool vaccel_log_enabled(int level);

#define VACCEL_LOG_TRACE_ 5
#define VACCEL_LOG_FATAL_ 0
#define VACCEL_LOG_MSG_MAX_ 8196

static inline void vaccel_log_printf_(int level, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;
static inline void vaccel_log_printf_(int level, const char *fmt, ...)
{
	char msg[VACCEL_LOG_MSG_MAX_];
	va_list ap;

	if (!vaccel_log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vaccel_log_write(level, msg);
}

/* printf-style logging through the runtime's logger (upstream's slog macros). */
#define vaccel_error(...) vaccel_log_printf_(VACCEL_LOG_ERROR, __VA_ARGS__)
#define vaccel_warn(...) vaccel_log_printf_(VACCEL_LOG_WARN, __VA_ARGS__)
#define vaccel_info(...) vaccel_log_printf_(VACCEL_LOG_INFO, __VA_ARGS__)
#define vaccel_debug(...) vaccel_log_printf_(VACCEL_LOG_DEBUG, __VA_ARGS__)
#define vaccel_trace(...) vaccel_log_printf_(VACCEL_LOG_TRACE_, __VA_ARGS__)
#define vaccel_fatal(...) vaccel_log_printf_(VACCEL_LOG_FATAL_, __VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif /* VACCEL_LOG_H */

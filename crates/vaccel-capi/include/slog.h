/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The part of slog 1.8.22 (github.com/kala13x/slog, MIT) that upstream vAccel's installed
 * headers expose: `vaccel/log.h`'s macros expand to the slog_<level>() macros below, which call
 * `slog_print`, so every program and plugin built against upstream's headers imports
 * `slog_print` from libvaccel.so. Ours writes through vAccel's logger, with upstream's levels:
 * SLOG_ERROR, SLOG_WARN, SLOG_INFO and SLOG_DEBUG print as VACCEL_LOG_LEVEL enables them; the
 * other flags (and combinations) print nothing, as upstream never enables them. Only
 * `slog_print` is provided, not the rest of slog's API (slog_init, slog_config_set, ...).
 */
#ifndef __SLOG_H__
#define __SLOG_H__

#ifdef __cplusplus
extern "C" {
#endif

#include <inttypes.h>

#define SLOG_VERSION_MAJOR 1
#define SLOG_VERSION_MINOR 8
#define SLOG_BUILD_NUM 22

/* Longest message, in bytes with the terminating NUL; longer ones are truncated. */
#define SLOG_MESSAGE_MAX 8196

/* "[file:line] ", what slog_trace() and slog_fatal() put before the message. */
#define SLOG_TRACE_LVL1(LINE) #LINE
#define SLOG_TRACE_LVL2(LINE) SLOG_TRACE_LVL1(LINE)
#define SLOG_THROW_LOCATION "[" __FILE__ ":" SLOG_TRACE_LVL2(__LINE__) "] "

#define SLOG_FLAGS_CHECK(c, f) (((c) & (f)) == (f))
#define SLOG_FLAGS_ALL 255

/* Message kinds (one bit each). */
typedef enum {
	SLOG_NOTAG = (1 << 0),
	SLOG_NOTE = (1 << 1),
	SLOG_INFO = (1 << 2),
	SLOG_WARN = (1 << 3),
	SLOG_DEBUG = (1 << 4),
	SLOG_TRACE = (1 << 5),
	SLOG_ERROR = (1 << 6),
	SLOG_FATAL = (1 << 7)
} SLOG_FLAGS_E;

/* Formats `pMsg` printf-style and writes it as one log line of kind `eFlag` (`nNewLine`:
 * whether slog ends the line; every message is one line of vAccel's log). */
void slog_print(SLOG_FLAGS_E eFlag, uint8_t nNewLine, const char *pMsg, ...);

#define slog(...) slog_print(SLOG_NOTAG, 1, __VA_ARGS__)
#define slogwn(...) slog_print(SLOG_NOTAG, 0, __VA_ARGS__)
#define slog_note(...) slog_print(SLOG_NOTE, 1, __VA_ARGS__)
#define slog_info(...) slog_print(SLOG_INFO, 1, __VA_ARGS__)
#define slog_warn(...) slog_print(SLOG_WARN, 1, __VA_ARGS__)
#define slog_debug(...) slog_print(SLOG_DEBUG, 1, __VA_ARGS__)
#define slog_error(...) slog_print(SLOG_ERROR, 1, __VA_ARGS__)
#define slog_trace(...) slog_print(SLOG_TRACE, 1, SLOG_THROW_LOCATION __VA_ARGS__)
#define slog_fatal(...) slog_print(SLOG_FATAL, 1, SLOG_THROW_LOCATION __VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif /* __SLOG_H__ */

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `slog_print` (include/slog.h): the one C function of libvaccel.so, because it is variadic
 * (Rust cannot define C-variadic functions). It formats the message and hands it to the Rust
 * logger (api/log.rs), with upstream's level semantics: only error, warn, info and debug
 * messages are ever written, each as VACCEL_LOG_LEVEL enables it.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "slog.h"

/* api/log.rs */
bool vaccel_log_enabled(int level);
void vaccel_log_write(int level, const char *msg);

/* The vaccel_log_level_t of an slog flag, or 0 for those upstream never enables. */
static int vaccel_level_of(SLOG_FLAGS_E flag)
{
	switch ((int)flag) {
	case SLOG_ERROR:
		return 1;
	case SLOG_WARN:
		return 2;
	case SLOG_INFO:
		return 3;
	case SLOG_DEBUG:
		return 4;
	default:
		return 0;
	}
}

void slog_print(SLOG_FLAGS_E eFlag, uint8_t nNewLine, const char *pMsg, ...)
{
	char msg[SLOG_MESSAGE_MAX];
	int level = vaccel_level_of(eFlag);
	va_list args;

	(void)nNewLine;
	if (level == 0 || pMsg == NULL || !vaccel_log_enabled(level))
		return;
	va_start(args, pMsg);
	vsnprintf(msg, sizeof(msg), pMsg, args);
	va_end(args);
	vaccel_log_write(level, msg);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* vAccel: the C API of vaccel-rs (libvaccel.so / libvaccel.a), compatible with upstream
 * vAccel's headers: same functions, structs, enums and macros.
 *
 * Ownership, in general: structs passed by pointer to *_init() functions are caller memory
 * that the library fills; *_new() functions allocate and *_delete() frees; pointer fields the
 * library fills are owned by the library (or by the struct, as each header says) and stay
 * valid until the matching release. Strings and arrays the library returns for the caller to
 * keep are malloc'ed and freed with free(). */
#ifndef VACCEL_H
#define VACCEL_H

/* The vAccel API version this library implements; plugins are checked against it. */
#define VACCEL_VERSION "0.8.0"

#include "vaccel/arg.h"
#include "vaccel/blob.h"
#include "vaccel/config.h"
#include "vaccel/core.h"
#include "vaccel/error.h"
#include "vaccel/id.h"
#include "vaccel/list.h"
#include "vaccel/log.h"
#include "vaccel/op.h"
#include "vaccel/plugin.h"
#include "vaccel/prof.h"
#include "vaccel/resource.h"
#include "vaccel/session.h"
#include "vaccel/utils/enum.h"
#include "vaccel/utils/path.h"
#include "vaccel/utils/str.h"
#include "vaccel/ops/blas.h"
#include "vaccel/ops/exec.h"
#include "vaccel/ops/fpga.h"
#include "vaccel/ops/genop.h"
#include "vaccel/ops/image.h"
#include "vaccel/ops/minmax.h"
#include "vaccel/ops/noop.h"
#include "vaccel/ops/opencv.h"
#include "vaccel/ops/tf.h"
#include "vaccel/ops/tflite.h"
#include "vaccel/ops/torch.h"

#endif /* VACCEL_H */

/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_ERROR_H
#define VACCEL_ERROR_H

#include <errno.h>

/* Every function returning `int` returns VACCEL_OK (0) or one of these positive codes. They
 * are the Linux errno values, so strerror() describes them. */
#define VACCEL_OK 0
#define VACCEL_EINVAL EINVAL /* 22: invalid argument */
#define VACCEL_ENOMEM ENOMEM /* 12 */
#define VACCEL_ENOTSUP ENOTSUP /* 95: not supported / not implemented by the plugin */
#define VACCEL_EINPROGRESS EINPROGRESS /* 115 */
#define VACCEL_EBUSY EBUSY /* 16 */
#define VACCEL_EEXIST EEXIST /* 17 */
#define VACCEL_ENOENT ENOENT /* 2 */
#define VACCEL_ELIBBAD ELIBBAD /* 80: a library is not a vAccel plugin */
#define VACCEL_ENODEV ENODEV /* 19 */
#define VACCEL_EIO EIO /* 5 */
#define VACCEL_ESESS ECONNRESET /* 104: sessions not available */
#define VACCEL_EBACKEND EPROTO /* 71: the backend failed */
#define VACCEL_ENOEXEC ENOEXEC /* 8 */
#define VACCEL_ENAMETOOLONG ENAMETOOLONG /* 36 */
#define VACCEL_EUSERS EUSERS /* 87: no free ids */
#define VACCEL_EPERM EPERM /* 1 */
#define VACCEL_ELOOP ELOOP /* 40 */
#define VACCEL_EMLINK EMLINK /* 31 */
#define VACCEL_ENOSPC ENOSPC /* 28 */
#define VACCEL_ENOTDIR ENOTDIR /* 20 */
#define VACCEL_EROFS EROFS /* 30 */
#define VACCEL_EACCES EACCES /* 13 */
#define VACCEL_EBADF EBADF /* 9 */
#define VACCEL_EREMOTEIO EREMOTEIO /* 121 */
#define VACCEL_EFAULT EFAULT /* 14 */
#define VACCEL_ERANGE ERANGE /* 34: position or capacity out of range */
#define VACCEL_EAGAIN EAGAIN /* 11 */
#define VACCEL_ENOSYS ENOSYS /* 38 */

#endif /* VACCEL_ERROR_H */

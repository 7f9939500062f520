/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_ID_H
#define VACCEL_ID_H

#include <stdint.h>

/* Object ids: valid ids are > 0; 0 means "unset". */
typedef int64_t vaccel_id_t;

#endif /* VACCEL_ID_H */

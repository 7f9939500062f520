/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_LIST_H
#define VACCEL_LIST_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An intrusive doubly linked list node; an empty list head points at itself. */
struct vaccel_list_entry {
	struct vaccel_list_entry *next;
	struct vaccel_list_entry *prev;
};

typedef struct vaccel_list_entry vaccel_list_entry_t;
typedef struct vaccel_list_entry vaccel_list_t;

#define LIST_ENTRY_INIT(name) { &(name), &(name) }

#ifdef __cplusplus
}
#endif

#endif /* VACCEL_LIST_H */

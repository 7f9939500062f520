/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_PROF_H
#define VACCEL_PROF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every function below is a no-op returning VACCEL_OK when profiling is disabled
 * (VACCEL_PROFILING_ENABLED unset or 0). */

struct vaccel_prof_sample {
	uint64_t start; /* ns, CLOCK_MONOTONIC_RAW */
	uint64_t time; /* ns */
};

/* `samples` is malloc'ed and owned by the region; `name` too when `name_owned`. */
struct vaccel_prof_region {
	const char *name;
	bool name_owned;
	size_t nr_entries;
	struct vaccel_prof_sample *samples;
	size_t size;
};

#define VACCEL_PROF_REGION_INIT(name) { (name), false, 0, NULL, 0 }

bool vaccel_prof_enabled(void);
int vaccel_prof_region_start(struct vaccel_prof_region *region);
/* Completes the last sample started (VACCEL_ENOENT if none). */
int vaccel_prof_region_stop(const struct vaccel_prof_region *region);
/* Logs "[prof] <name>: total_time: <ns> nsec nr_entries: <n>" at info level. */
int vaccel_prof_region_print(const struct vaccel_prof_region *region);
int vaccel_prof_region_init(struct vaccel_prof_region *region, const char *name);
int vaccel_prof_region_release(struct vaccel_prof_region *region);
int vaccel_prof_regions_start_by_name(struct vaccel_prof_region *regions,
				      int nregions, const char *name);
int vaccel_prof_regions_stop_by_name(struct vaccel_prof_region *regions,
				     int nregions, const char *name);
int vaccel_prof_regions_init(struct vaccel_prof_region *regions, int nregions);
int vaccel_prof_regions_release(struct vaccel_prof_region *regions,
				int nregions);
int vaccel_prof_regions_print_all(struct vaccel_prof_region *regions,
				  int nregions);
/* `tbuf` NULL: returns the bytes needed for every line. Otherwise *tbuf receives a
 * malloc'ed buffer of `tbuf_len` bytes (freed by the caller) holding the NUL-separated lines,
 * and the number of regions is returned. */
int vaccel_prof_regions_print_all_to_buf(char **tbuf, size_t tbuf_len,
					 struct vaccel_prof_region *regions,
					 int nregions);

#ifdef __cplusplus
}
#endif

#endif /* VACCEL_PROF_H */

/* SPDX-License-Identifier: Apache-2.0 */
/* The classify example written against upstream's API: classify <image_file> [iterations]
 * [model_path]. Builds with `cc classify.c $(pkg-config --cflags --libs vaccel)`. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <vaccel.h>

#include "read_file.h"

int main(int argc, char *argv[])
{
	struct vaccel_session sess;
	struct vaccel_resource model;
	struct vaccel_prof_region classify_stats =
		VACCEL_PROF_REGION_INIT("classify");
	char out_text[512], out_imgname[512];
	char *image;
	size_t image_size;
	int ret, iterations = 1;

	if (argc < 2 || argc > 4) {
		fprintf(stderr, "Usage: %s filename [iterations] [model]\n", argv[0]);
		return 0;
	}
	if (argc > 2)
		iterations = atoi(argv[2]);

	ret = vaccel_session_init(&sess, 0);
	if (ret) {
		fprintf(stderr, "Could not initialize session\n");
		return ret;
	}
	printf("Initialized session with id: %" PRId64 "\n", sess.id);

	if (argc == 4) {
		ret = vaccel_resource_init(&model, argv[3], VACCEL_RESOURCE_MODEL);
		if (ret) {
			fprintf(stderr, "Could not create model resource\n");
			goto close_session;
		}
		ret = vaccel_resource_register(&model, &sess);
		if (ret) {
			fprintf(stderr, "Could not register model with session\n");
			goto release_model;
		}
	}

	ret = read_file(argv[1], &image, &image_size);
	if (ret)
		goto unregister;

	for (int i = 0; i < iterations; i++) {
		vaccel_prof_region_start(&classify_stats);
		ret = vaccel_image_classification(&sess, image, (unsigned char *)out_text,
						  (unsigned char *)out_imgname, image_size,
						  sizeof(out_text), sizeof(out_imgname));
		vaccel_prof_region_stop(&classify_stats);
		if (ret) {
			fprintf(stderr, "Could not run op: %d\n", ret);
			goto free_image;
		}
		printf("classification tags: %s\n", out_text);
		printf("classification imagename: %s\n", out_imgname);
	}

free_image:
	free(image);
unregister:
	if (argc == 4 && vaccel_resource_unregister(&model, &sess))
		fprintf(stderr, "Could not unregister model\n");
release_model:
	if (argc == 4 && vaccel_resource_release(&model))
		fprintf(stderr, "Could not release model\n");
close_session:
	if (vaccel_session_release(&sess))
		fprintf(stderr, "Could not clear session\n");
	vaccel_prof_region_print(&classify_stats);
	vaccel_prof_region_release(&classify_stats);
	return ret;
}

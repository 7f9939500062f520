/* SPDX-License-Identifier: Apache-2.0 */
/* CPU-backend operations through upstream's C API, for the plugin-library tests:
 *   cpu_ops detect <image_file> [model_path]   image detection, prints the result file name
 *   cpu_ops sgemm <m> <n> <k>                  row-major sgemm, checked against a double
 *                                              product computed here
 * The plugin comes from VACCEL_PLUGINS, as for every upstream program. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vaccel.h>

#include "read_file.h"

static int detect(struct vaccel_session *sess, const char *image_path,
		  const char *model_path)
{
	struct vaccel_resource model;
	char out_imgname[512];
	char *image;
	size_t image_size;
	int ret;

	if (model_path) {
		ret = vaccel_resource_init(&model, model_path,
					   VACCEL_RESOURCE_MODEL);
		if (ret) {
			fprintf(stderr, "Could not create model resource\n");
			return ret;
		}
		ret = vaccel_resource_register(&model, sess);
		if (ret) {
			fprintf(stderr, "Could not register model\n");
			vaccel_resource_release(&model);
			return ret;
		}
	}
	ret = read_file(image_path, &image, &image_size);
	if (!ret) {
		ret = vaccel_image_detection(sess, image,
					     (unsigned char *)out_imgname,
					     image_size, sizeof(out_imgname));
		if (ret)
			fprintf(stderr, "Could not run op: %d\n", ret);
		else
			printf("detection imagename: %s\n", out_imgname);
		free(image);
	}
	if (model_path) {
		if (vaccel_resource_unregister(&model, sess))
			fprintf(stderr, "Could not unregister model\n");
		if (vaccel_resource_release(&model))
			fprintf(stderr, "Could not release model\n");
	}
	return ret;
}

static int sgemm(struct vaccel_session *sess, int64_t m, int64_t n, int64_t k)
{
	float *a = malloc(sizeof(float) * (size_t)(m * k));
	float *b = malloc(sizeof(float) * (size_t)(k * n));
	float *c = malloc(sizeof(float) * (size_t)(m * n));
	double *want = malloc(sizeof(double) * (size_t)(m * n));
	const float alpha = 1.5f, beta = 0.5f;
	double worst = 0.0;
	int ret = VACCEL_ENOMEM;

	if (!a || !b || !c || !want)
		goto out;
	/* Small exact values, so that the float64 product is the exact result. */
	for (int64_t i = 0; i < m * k; i++)
		a[i] = (float)((i * 7) % 13) - 6.0f;
	for (int64_t i = 0; i < k * n; i++)
		b[i] = (float)((i * 5) % 11) - 5.0f;
	for (int64_t i = 0; i < m * n; i++)
		c[i] = (float)(i % 7);

	/* The double reference first: c is overwritten by the op. */
	for (int64_t i = 0; i < m; i++)
		for (int64_t j = 0; j < n; j++) {
			double acc = 0.0;
			for (int64_t p = 0; p < k; p++)
				acc += (double)a[i * k + p] * (double)b[p * n + j];
			want[i * n + j] = alpha * acc + beta * (double)c[i * n + j];
		}

	ret = vaccel_sgemm(sess, m, n, k, alpha, a, k, b, n, beta, c, n);
	if (ret) {
		fprintf(stderr, "Could not run op: %d\n", ret);
	} else {
		for (int64_t i = 0; i < m * n; i++) {
			double diff = (double)c[i] - want[i];
			double scale = want[i] < 0 ? -want[i] : want[i];
			double err = (diff < 0 ? -diff : diff) /
				     (scale > 1.0 ? scale : 1.0);
			if (err > worst)
				worst = err;
		}
		printf("sgemm %" PRId64 "x%" PRId64 "x%" PRId64
		       ": max relative error %.3g\n",
		       m, n, k, worst);
	}
out:
	free(want);
	free(a);
	free(b);
	free(c);
	return ret;
}

int main(int argc, char *argv[])
{
	struct vaccel_session sess;
	int ret;

	int is_detect = argc >= 3 && argc <= 4 && strcmp(argv[1], "detect") == 0;
	int is_sgemm = argc == 5 && strcmp(argv[1], "sgemm") == 0;

	if (!is_detect && !is_sgemm) {
		fprintf(stderr,
			"Usage: %s detect <image> [model] | sgemm <m> <n> <k>\n",
			argv[0]);
		return 1;
	}
	ret = vaccel_session_init(&sess, 0);
	if (ret) {
		fprintf(stderr, "Could not initialize session\n");
		return ret;
	}
	printf("Initialized session with id: %" PRId64 "\n", sess.id);
	if (is_detect)
		ret = detect(&sess, argv[2], argc == 4 ? argv[3] : NULL);
	else
		ret = sgemm(&sess, atoll(argv[2]), atoll(argv[3]),
			    atoll(argv[4]));
	if (vaccel_session_release(&sess))
		fprintf(stderr, "Could not clear session\n");
	return ret;
}

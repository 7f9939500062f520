/* SPDX-License-Identifier: Apache-2.0 */
/* Prints enum widths, constants, error codes and enum names as `<key> <value>` lines; the
 * test compares them with the Rust definitions. Struct layouts are checked against upstream's
 * numbers by tests/layout.rs. */
#include <stdio.h>
#include <vaccel.h>

int main(void)
{
	/* Enum widths: every enum is an int-sized field in the structs. */
	printf("enum.vaccel_op_type_t %zu\n", sizeof(vaccel_op_type_t));
	printf("enum.vaccel_arg_type_t %zu\n", sizeof(vaccel_arg_type_t));
	printf("enum.vaccel_plugin_type_t %zu\n", sizeof(vaccel_plugin_type_t));
	/* Values that must agree with the Rust side. */
	printf("value.VACCEL_OP_MAX %d\n", (int)VACCEL_OP_MAX);
	printf("value.VACCEL_ARG_MAX %d\n", (int)VACCEL_ARG_MAX);
	printf("value.VACCEL_RESOURCE_MAX %d\n", (int)VACCEL_RESOURCE_MAX);
	printf("value.VACCEL_BLOB_MAX %d\n", (int)VACCEL_BLOB_MAX);
	printf("value.VACCEL_PATH_MAX %d\n", (int)VACCEL_PATH_MAX);
	printf("value.VACCEL_LOG_MAX %d\n", (int)VACCEL_LOG_MAX);
	printf("value.VACCEL_PLUGIN_REMOTE %d\n", (int)VACCEL_PLUGIN_REMOTE);
	printf("value.VACCEL_ESESS %d\n", VACCEL_ESESS);
	printf("value.VACCEL_EBACKEND %d\n", VACCEL_EBACKEND);
	printf("value.VACCEL_ENOTSUP %d\n", VACCEL_ENOTSUP);
	printf("value.VACCEL_TF_UINT64 %d\n", (int)VACCEL_TF_UINT64);
	printf("value.VACCEL_TFLITE_INT4 %d\n", (int)VACCEL_TFLITE_INT4);
	printf("value.VACCEL_TORCH_FLOAT %d\n", (int)VACCEL_TORCH_FLOAT);
	printf("version %s\n", VACCEL_VERSION);
	printf("error.VACCEL_EPERM %d\n", VACCEL_EPERM);
	printf("error.VACCEL_ENOENT %d\n", VACCEL_ENOENT);
	printf("error.VACCEL_EIO %d\n", VACCEL_EIO);
	printf("error.VACCEL_ENOEXEC %d\n", VACCEL_ENOEXEC);
	printf("error.VACCEL_EBADF %d\n", VACCEL_EBADF);
	printf("error.VACCEL_EAGAIN %d\n", VACCEL_EAGAIN);
	printf("error.VACCEL_ENOMEM %d\n", VACCEL_ENOMEM);
	printf("error.VACCEL_EACCES %d\n", VACCEL_EACCES);
	printf("error.VACCEL_EFAULT %d\n", VACCEL_EFAULT);
	printf("error.VACCEL_EBUSY %d\n", VACCEL_EBUSY);
	printf("error.VACCEL_EEXIST %d\n", VACCEL_EEXIST);
	printf("error.VACCEL_ENODEV %d\n", VACCEL_ENODEV);
	printf("error.VACCEL_ENOTDIR %d\n", VACCEL_ENOTDIR);
	printf("error.VACCEL_EINVAL %d\n", VACCEL_EINVAL);
	printf("error.VACCEL_ENOSPC %d\n", VACCEL_ENOSPC);
	printf("error.VACCEL_EROFS %d\n", VACCEL_EROFS);
	printf("error.VACCEL_EMLINK %d\n", VACCEL_EMLINK);
	printf("error.VACCEL_ERANGE %d\n", VACCEL_ERANGE);
	printf("error.VACCEL_ENAMETOOLONG %d\n", VACCEL_ENAMETOOLONG);
	printf("error.VACCEL_ENOSYS %d\n", VACCEL_ENOSYS);
	printf("error.VACCEL_ELOOP %d\n", VACCEL_ELOOP);
	printf("error.VACCEL_EBACKEND %d\n", VACCEL_EBACKEND);
	printf("error.VACCEL_ELIBBAD %d\n", VACCEL_ELIBBAD);
	printf("error.VACCEL_EUSERS %d\n", VACCEL_EUSERS);
	printf("error.VACCEL_ENOTSUP %d\n", VACCEL_ENOTSUP);
	printf("error.VACCEL_ESESS %d\n", VACCEL_ESESS);
	printf("error.VACCEL_EINPROGRESS %d\n", VACCEL_EINPROGRESS);
	printf("error.VACCEL_EREMOTEIO %d\n", VACCEL_EREMOTEIO);
	for (int i = 0; i <= VACCEL_OP_MAX; i++)
		printf("name.op.%d %s\n", i, vaccel_op_type_to_str((vaccel_op_type_t)i));
	for (int i = 0; i <= VACCEL_ARG_MAX; i++)
		printf("name.arg.%d %s\n", i, vaccel_arg_type_to_str((vaccel_arg_type_t)i));
	for (int i = 0; i <= VACCEL_RESOURCE_MAX; i++)
		printf("name.resource.%d %s\n", i,
		       vaccel_resource_type_to_str((vaccel_resource_type_t)i));
	for (int i = 0; i <= VACCEL_BLOB_MAX; i++)
		printf("name.blob.%d %s\n", i, vaccel_blob_type_to_str((vaccel_blob_type_t)i));
	for (int i = 0; i <= VACCEL_PATH_MAX; i++)
		printf("name.path.%d %s\n", i, vaccel_path_type_to_str((vaccel_path_type_t)i));
	for (int i = 1; i <= VACCEL_LOG_MAX; i++)
		printf("name.log.%d %s\n", i, vaccel_log_level_to_str((vaccel_log_level_t)i));
	char lower[VACCEL_ENUM_STR_MAX];
	for (int i = 0; i < VACCEL_OP_MAX; i++)
		printf("lower.op.%d %s\n", i, vaccel_op_type_to_lower((vaccel_op_type_t)i, lower, sizeof(lower)));
	return 0;
}

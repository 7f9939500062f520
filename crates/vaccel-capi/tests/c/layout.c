/* SPDX-License-Identifier: Apache-2.0 */
/* Prints sizeof/offsetof of every public struct as `<key> <value>` lines; the test compares
 * them with the Rust definitions (crate vaccel-abi). */
#include <stddef.h>
#include <stdio.h>
#include <vaccel.h>

#define SIZE(s) printf(#s " %zu\n", sizeof(struct s))
#define OFF(s, f) printf(#s "." #f " %zu\n", offsetof(struct s, f))

int main(void)
{
	SIZE(vaccel_arg);
	OFF(vaccel_arg, buf);
	OFF(vaccel_arg, size);
	OFF(vaccel_arg, type);
	OFF(vaccel_arg, custom_type_id);
	OFF(vaccel_arg, owned);
	SIZE(vaccel_arg_array);
	OFF(vaccel_arg_array, args);
	OFF(vaccel_arg_array, count);
	OFF(vaccel_arg_array, capacity);
	OFF(vaccel_arg_array, position);
	OFF(vaccel_arg_array, owned);
	SIZE(vaccel_arg_list);
	OFF(vaccel_arg_list, size);
	OFF(vaccel_arg_list, list);
	OFF(vaccel_arg_list, curr_idx);
	OFF(vaccel_arg_list, idcs_allocated_space);
	SIZE(vaccel_list_entry);
	OFF(vaccel_list_entry, next);
	OFF(vaccel_list_entry, prev);
	SIZE(vaccel_blob);
	OFF(vaccel_blob, type);
	OFF(vaccel_blob, name);
	OFF(vaccel_blob, path);
	OFF(vaccel_blob, path_owned);
	OFF(vaccel_blob, data);
	OFF(vaccel_blob, data_owned);
	OFF(vaccel_blob, size);
	SIZE(vaccel_resource);
	OFF(vaccel_resource, id);
	OFF(vaccel_resource, remote_id);
	OFF(vaccel_resource, type);
	OFF(vaccel_resource, path_type);
	OFF(vaccel_resource, paths);
	OFF(vaccel_resource, nr_paths);
	OFF(vaccel_resource, rundir);
	OFF(vaccel_resource, blobs);
	OFF(vaccel_resource, nr_blobs);
	OFF(vaccel_resource, entry);
	OFF(vaccel_resource, sessions);
	OFF(vaccel_resource, sessions_lock);
	OFF(vaccel_resource, refcount);
	OFF(vaccel_resource, plugin_priv);
	SIZE(vaccel_session);
	OFF(vaccel_session, id);
	OFF(vaccel_session, remote_id);
	OFF(vaccel_session, hint);
	OFF(vaccel_session, is_virtio);
	OFF(vaccel_session, rundir);
	OFF(vaccel_session, resources);
	OFF(vaccel_session, resource_counts);
	OFF(vaccel_session, resources_lock);
	OFF(vaccel_session, plugin);
	OFF(vaccel_session, priv);
	SIZE(vaccel_config);
	OFF(vaccel_config, plugins);
	OFF(vaccel_config, log_level);
	OFF(vaccel_config, log_file);
	OFF(vaccel_config, profiling_enabled);
	OFF(vaccel_config, version_ignore);
	SIZE(vaccel_op);
	OFF(vaccel_op, type);
	OFF(vaccel_op, func);
	OFF(vaccel_op, owner);
	SIZE(vaccel_plugin_info);
	OFF(vaccel_plugin_info, name);
	OFF(vaccel_plugin_info, version);
	OFF(vaccel_plugin_info, vaccel_version);
	OFF(vaccel_plugin_info, init);
	OFF(vaccel_plugin_info, fini);
	OFF(vaccel_plugin_info, is_virtio);
	OFF(vaccel_plugin_info, type);
	OFF(vaccel_plugin_info, session_init);
	OFF(vaccel_plugin_info, session_release);
	OFF(vaccel_plugin_info, session_update);
	OFF(vaccel_plugin_info, resource_register);
	OFF(vaccel_plugin_info, resource_unregister);
	OFF(vaccel_plugin_info, resource_sync);
	SIZE(vaccel_plugin);
	OFF(vaccel_plugin, dl_handle);
	OFF(vaccel_plugin, entry);
	OFF(vaccel_plugin, ops);
	OFF(vaccel_plugin, info);
	SIZE(vaccel_prof_sample);
	OFF(vaccel_prof_sample, start);
	OFF(vaccel_prof_sample, time);
	SIZE(vaccel_prof_region);
	OFF(vaccel_prof_region, name);
	OFF(vaccel_prof_region, name_owned);
	OFF(vaccel_prof_region, nr_entries);
	OFF(vaccel_prof_region, samples);
	OFF(vaccel_prof_region, size);
	SIZE(vaccel_tf_buffer);
	OFF(vaccel_tf_buffer, data);
	OFF(vaccel_tf_buffer, size);
	SIZE(vaccel_tf_node);
	OFF(vaccel_tf_node, name);
	OFF(vaccel_tf_node, id);
	SIZE(vaccel_tf_tensor);
	OFF(vaccel_tf_tensor, data);
	OFF(vaccel_tf_tensor, size);
	OFF(vaccel_tf_tensor, owned);
	OFF(vaccel_tf_tensor, nr_dims);
	OFF(vaccel_tf_tensor, dims);
	OFF(vaccel_tf_tensor, data_type);
	SIZE(vaccel_tf_status);
	OFF(vaccel_tf_status, code);
	OFF(vaccel_tf_status, message);
	SIZE(vaccel_tflite_tensor);
	OFF(vaccel_tflite_tensor, data);
	OFF(vaccel_tflite_tensor, size);
	OFF(vaccel_tflite_tensor, owned);
	OFF(vaccel_tflite_tensor, nr_dims);
	OFF(vaccel_tflite_tensor, dims);
	OFF(vaccel_tflite_tensor, data_type);
	SIZE(vaccel_torch_buffer);
	OFF(vaccel_torch_buffer, data);
	OFF(vaccel_torch_buffer, size);
	SIZE(vaccel_torch_tensor);
	OFF(vaccel_torch_tensor, data);
	OFF(vaccel_torch_tensor, size);
	OFF(vaccel_torch_tensor, owned);
	OFF(vaccel_torch_tensor, nr_dims);
	OFF(vaccel_torch_tensor, dims);
	OFF(vaccel_torch_tensor, data_type);
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

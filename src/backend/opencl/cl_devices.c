#include "backend/opencl/cl_devices.h"

#include <stdlib.h>
#include <string.h>

enum { MAX_PLATFORMS = 16, MAX_DEVICES_PER_PLATFORM = 64 };

static tdm_status get_platforms(cl_platform_id *platforms, cl_uint *count)
{
    cl_int err = clGetPlatformIDs(MAX_PLATFORMS, platforms, count);
    if (err == CL_PLATFORM_NOT_FOUND_KHR || (err == CL_SUCCESS && *count == 0))
        return TDM_FAIL(TDM_ERR_NOT_FOUND,
                        "no OpenCL driver installed (see /etc/OpenCL/vendors; on Debian, "
                        "install pocl-opencl-icd or a GPU vendor's ICD)");
    if (err != CL_SUCCESS)
        return TDM_CL_FAIL("clGetPlatformIDs", err);
    if (*count > MAX_PLATFORMS)
        *count = MAX_PLATFORMS;
    return TDM_OK;
}

/* A platform with no devices answers CL_DEVICE_NOT_FOUND: that is zero devices. */
static tdm_status get_devices(cl_platform_id platform, cl_device_id *devices, cl_uint *count)
{
    cl_int err =
        clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, MAX_DEVICES_PER_PLATFORM, devices, count);
    if (err == CL_DEVICE_NOT_FOUND) {
        *count = 0;
        return TDM_OK;
    }
    if (err != CL_SUCCESS)
        return TDM_CL_FAIL("clGetDeviceIDs", err);
    if (*count > MAX_DEVICES_PER_PLATFORM)
        *count = MAX_DEVICES_PER_PLATFORM;
    return TDM_OK;
}

tdm_status tdm_cl_find_device(size_t platform_index, size_t device_index, cl_platform_id *platform,
                              cl_device_id *device)
{
    cl_platform_id platforms[MAX_PLATFORMS];
    cl_device_id devices[MAX_DEVICES_PER_PLATFORM];
    cl_uint platform_count = 0, device_count = 0;
    TDM_TRY(get_platforms(platforms, &platform_count));
    if (platform_index >= platform_count)
        return TDM_FAIL(TDM_ERR_NOT_FOUND, "OpenCL platform %zu does not exist (%u found)",
                        platform_index, platform_count);
    TDM_TRY(get_devices(platforms[platform_index], devices, &device_count));
    if (device_index >= device_count)
        return TDM_FAIL(TDM_ERR_NOT_FOUND, "OpenCL platform %zu has no device %zu (%u found)",
                        platform_index, device_index, device_count);
    *platform = platforms[platform_index];
    *device = devices[device_index];
    return TDM_OK;
}

static tdm_status platform_string(cl_platform_id platform, cl_platform_info param, char *out,
                                  size_t capacity)
{
    TDM_CL_TRY(clGetPlatformInfo(platform, param, capacity - 1, out, NULL));
    out[capacity - 1] = '\0';
    return TDM_OK;
}

/* Truncates quietly: a name longer than the field is still recognisable. */
static tdm_status device_string(cl_device_id device, cl_device_info param, char *out,
                                size_t capacity)
{
    size_t size = 0;
    TDM_CL_TRY(clGetDeviceInfo(device, param, 0, NULL, &size));
    char *full = malloc(size + 1);
    if (!full)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "out of host memory");
    cl_int err = clGetDeviceInfo(device, param, size, full, NULL);
    if (err == CL_SUCCESS) {
        full[size] = '\0';
        strncpy(out, full, capacity - 1);
        out[capacity - 1] = '\0';
    }
    free(full);
    return err == CL_SUCCESS ? TDM_OK : TDM_CL_FAIL("clGetDeviceInfo", err);
}

static const char *type_name(cl_device_type type)
{
    if (type & CL_DEVICE_TYPE_GPU)
        return "GPU";
    if (type & CL_DEVICE_TYPE_ACCELERATOR)
        return "accelerator";
    if (type & CL_DEVICE_TYPE_CPU)
        return "CPU";
    return "other";
}

tdm_status tdm_cl_describe_device(cl_platform_id platform, cl_device_id device,
                                  tdm_opencl_device_info *info)
{
    cl_device_type type = 0;
    cl_ulong memory = 0, max_alloc = 0;
    cl_uint units = 0;
    TDM_TRY(platform_string(platform, CL_PLATFORM_NAME, info->platform_name,
                            sizeof info->platform_name));
    TDM_TRY(platform_string(platform, CL_PLATFORM_VENDOR, info->platform_vendor,
                            sizeof info->platform_vendor));
    TDM_TRY(device_string(device, CL_DEVICE_NAME, info->device_name, sizeof info->device_name));
    TDM_TRY(
        device_string(device, CL_DEVICE_VENDOR, info->device_vendor, sizeof info->device_vendor));
    TDM_TRY(device_string(device, CL_DEVICE_OPENCL_C_VERSION, info->opencl_c_version,
                          sizeof info->opencl_c_version));
    TDM_TRY(device_string(device, CL_DRIVER_VERSION, info->driver_version,
                          sizeof info->driver_version));
    TDM_CL_TRY(clGetDeviceInfo(device, CL_DEVICE_TYPE, sizeof type, &type, NULL));
    TDM_CL_TRY(clGetDeviceInfo(device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof memory, &memory, NULL));
    TDM_CL_TRY(clGetDeviceInfo(device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof units, &units, NULL));
    TDM_CL_TRY(
        clGetDeviceInfo(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof max_alloc, &max_alloc, NULL));
    strcpy(info->type, type_name(type));
    info->is_gpu_or_accelerator = (type & (CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR)) != 0;
    info->global_memory_bytes = memory;
    info->compute_units = units;
    info->max_alloc_bytes = max_alloc;
    return TDM_OK;
}

static tdm_status append_platform_devices(cl_platform_id platform, size_t platform_index,
                                          tdm_opencl_device_info **list, size_t *count)
{
    cl_device_id devices[MAX_DEVICES_PER_PLATFORM];
    cl_uint device_count = 0;
    TDM_TRY(get_devices(platform, devices, &device_count));
    if (device_count == 0)
        return TDM_OK;
    tdm_opencl_device_info *grown = realloc(*list, (*count + device_count) * sizeof *grown);
    if (!grown)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "out of host memory");
    *list = grown;
    for (cl_uint d = 0; d < device_count; d++) {
        tdm_opencl_device_info *info = &grown[*count];
        memset(info, 0, sizeof *info);
        info->platform_index = platform_index;
        info->device_index = d;
        TDM_TRY(tdm_cl_describe_device(platform, devices[d], info));
        ++*count;
    }
    return TDM_OK;
}

tdm_status tdm_opencl_list_devices(tdm_opencl_device_info **devices, size_t *count)
{
    cl_platform_id platforms[MAX_PLATFORMS];
    cl_uint platform_count = 0;
    *devices = NULL;
    *count = 0;
    TDM_TRY(get_platforms(platforms, &platform_count));
    for (cl_uint p = 0; p < platform_count; p++) {
        tdm_status status = append_platform_devices(platforms[p], p, devices, count);
        if (status != TDM_OK) {
            free(*devices);
            *devices = NULL;
            *count = 0;
            return status;
        }
    }
    return TDM_OK;
}

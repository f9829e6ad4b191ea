/* Platform and device lookup shared by the device list and the backend. */
#ifndef TANDEM_OPENCL_DEVICES_H
#define TANDEM_OPENCL_DEVICES_H

#include "backend/opencl/cl_common.h"
#include "tandem/device.h"

/* The cl_device_id at (platform_index, device_index), with its platform. */
tdm_status tdm_cl_find_device(size_t platform_index, size_t device_index, cl_platform_id *platform,
                              cl_device_id *device);

/* Fills everything but the indices. */
tdm_status tdm_cl_describe_device(cl_platform_id platform, cl_device_id device,
                                  tdm_opencl_device_info *info);

#endif

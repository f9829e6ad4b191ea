#ifndef TANDEM_OPENCL_PROGRAM_H
#define TANDEM_OPENCL_PROGRAM_H

#include "backend/opencl/cl_common.h"
#include "tandem/device.h"

/* Builds every embedded kernel file into one program for the device, with
 * -cl-std taken from the device's OpenCL C version and the reductions built
 * for work-groups of reduction_group work-items. Goes through the disk
 * binary cache only where the driver keeps no cache of its own. */
tdm_status tdm_cl_build_program(cl_context context, cl_device_id device,
                                const tdm_opencl_device_info *info, size_t reduction_group,
                                cl_program *program);

/* Builds the given OpenCL C texts; a compile error returns
 * TDM_ERR_KERNEL_BUILD with the driver's build log in the message. */
tdm_status tdm_cl_build_from_sources(cl_context context, cl_device_id device, const char *options,
                                     const char *const *texts, size_t count, cl_program *program);

#endif

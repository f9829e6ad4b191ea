/* Shared by the OpenCL backend's files: headers, error naming, checks. */
#ifndef TANDEM_OPENCL_COMMON_H
#define TANDEM_OPENCL_COMMON_H

/* CL_TARGET_OPENCL_VERSION=120 comes from CMake, so every OpenCL header agrees. */
#include <CL/cl.h>

/* ocl-icd answers this when no driver is installed (cl_khr_icd, in cl_ext.h). */
#ifndef CL_PLATFORM_NOT_FOUND_KHR
#define CL_PLATFORM_NOT_FOUND_KHR -1001
#endif

#include "core/error.h"

/* "CL_INVALID_VALUE", a CLBlast status name, or "unknown OpenCL error -N". */
const char *tdm_cl_error_name(int code);

/* Records "<what> failed: <error name>" and returns TDM_ERR_OPENCL. */
#define TDM_CL_FAIL(what, code)                                                                    \
    tdm_error_at(TDM_ERR_OPENCL, __FILE__, __LINE__, "%s failed: %s", (what),                      \
                 tdm_cl_error_name(code))

/* Runs an OpenCL call returning cl_int; on failure records it and returns. */
#define TDM_CL_TRY(call)                                                                           \
    do {                                                                                           \
        cl_int tdm_cl_err_ = (call);                                                               \
        if (tdm_cl_err_ != CL_SUCCESS)                                                             \
            return TDM_CL_FAIL(#call, tdm_cl_err_);                                                \
    } while (0)

#endif

#define _POSIX_C_SOURCE 200809L
#include "backend/opencl/cl_program.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/opencl/kernel_cache.h"
#include "backend/opencl/kernel_sources.h"

/* "-cl-std=CL1.2" from "OpenCL C 1.2 pocl" (the device's version, never the
 * platform's), and the reductions' work-group size. */
static void build_options(const tdm_opencl_device_info *info, size_t reduction_group, char *out,
                          size_t capacity)
{
    int major = 0, minor = 0;
    int used = 0;
    if (sscanf(info->opencl_c_version, "OpenCL C %d.%d", &major, &minor) == 2)
        used = snprintf(out, capacity, "-cl-std=CL%d.%d ", major, minor);
    snprintf(out + used, capacity - (size_t)used, "-DTDM_GROUP_SIZE=%zu", reduction_group);
}

/* PoCL and NVIDIA cache compiled kernels themselves; asking PoCL for program
 * binaries would cost seconds. TANDEM_KERNEL_CACHE_ALL_DRIVERS=1 forces our
 * cache on every driver (for testing it). */
static bool driver_caches_itself(const tdm_opencl_device_info *info)
{
    const char *force = getenv("TANDEM_KERNEL_CACHE_ALL_DRIVERS");
    if (force && strcmp(force, "1") == 0)
        return false;
    return strstr(info->platform_name, "Portable Computing Language") != NULL ||
           strstr(info->platform_vendor, "NVIDIA") != NULL;
}

enum { MAX_KERNEL_FILES = 60 };

/* The texts of the embedded cl/ files, in build order. */
static tdm_status embedded_texts(const char **texts, size_t *count)
{
    if (tdm_kernel_source_count > MAX_KERNEL_FILES)
        return TDM_FAIL(TDM_ERR_UNSUPPORTED, "%zu kernel files embedded, at most %d supported",
                        tdm_kernel_source_count, MAX_KERNEL_FILES);
    for (size_t i = 0; i < tdm_kernel_source_count; i++)
        texts[i] = tdm_kernel_sources[i].text;
    *count = tdm_kernel_source_count;
    return TDM_OK;
}

static uint64_t cache_key(const char *const *texts, size_t count,
                          const tdm_opencl_device_info *info, const char *options)
{
    const char *parts[MAX_KERNEL_FILES + 4];
    memcpy(parts, texts, count * sizeof *texts);
    parts[count] = options;
    parts[count + 1] = info->device_name;
    parts[count + 2] = info->driver_version;
    parts[count + 3] = info->platform_name;
    return tdm_kernel_cache_key(parts, count + 4);
}

/* "<what> failed: <error>" followed by the build log. */
static tdm_status build_failure(cl_program program, cl_device_id device, const char *what,
                                cl_int err)
{
    size_t log_size = 0;
    char *log = NULL;
    if (clGetProgramBuildInfo(program, device, CL_PROGRAM_BUILD_LOG, 0, NULL, &log_size) ==
            CL_SUCCESS &&
        (log = malloc(log_size + 1)) != NULL) {
        if (clGetProgramBuildInfo(program, device, CL_PROGRAM_BUILD_LOG, log_size, log, NULL) !=
            CL_SUCCESS)
            log_size = 0;
        log[log_size] = '\0';
    }
    tdm_status status = TDM_FAIL(TDM_ERR_KERNEL_BUILD,
                                 "%s failed: %s\n--- OpenCL build log ---\n%s\n--- end of log ---",
                                 what, tdm_cl_error_name(err), log ? log : "(no log)");
    free(log);
    return status;
}

tdm_status tdm_cl_build_from_sources(cl_context context, cl_device_id device, const char *options,
                                     const char *const *texts, size_t count, cl_program *program)
{
    cl_int err = CL_SUCCESS;
    *program = clCreateProgramWithSource(context, (cl_uint)count, (const char **)texts, NULL, &err);
    if (err != CL_SUCCESS)
        return TDM_CL_FAIL("clCreateProgramWithSource", err);
    err = clBuildProgram(*program, 1, &device, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        tdm_status status = build_failure(*program, device, "clBuildProgram", err);
        clReleaseProgram(*program);
        *program = NULL;
        return status;
    }
    return TDM_OK;
}

/* A cached binary that fails to load or build is simply not used. */
static bool build_from_cache(cl_context context, cl_device_id device, const char *options,
                             const char *directory, uint64_t key, cl_program *program)
{
    unsigned char *binary = NULL;
    size_t size = 0;
    if (tdm_kernel_cache_load(directory, key, &binary, &size) != TDM_OK)
        return false;
    cl_int err = CL_SUCCESS, binary_status = CL_SUCCESS;
    const unsigned char *binaries[1] = {binary};
    *program =
        clCreateProgramWithBinary(context, 1, &device, &size, binaries, &binary_status, &err);
    free(binary);
    if (err == CL_SUCCESS && binary_status == CL_SUCCESS &&
        clBuildProgram(*program, 1, &device, options, NULL, NULL) == CL_SUCCESS)
        return true;
    if (*program)
        clReleaseProgram(*program);
    *program = NULL;
    return false;
}

static void store_in_cache(cl_program program, const char *directory, uint64_t key)
{
    size_t size = 0;
    if (clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) !=
            CL_SUCCESS ||
        size == 0)
        return;
    unsigned char *binary = malloc(size);
    unsigned char *binaries[1] = {binary};
    if (binary && clGetProgramInfo(program, CL_PROGRAM_BINARIES, sizeof binaries, binaries, NULL) ==
                      CL_SUCCESS)
        (void)tdm_kernel_cache_store(directory, key, binary, size); /* best effort */
    free(binary);
}

tdm_status tdm_cl_build_program(cl_context context, cl_device_id device,
                                const tdm_opencl_device_info *info, size_t reduction_group,
                                cl_program *program)
{
    char options[96], directory[4096];
    const char *texts[MAX_KERNEL_FILES];
    size_t count = 0;
    TDM_TRY(embedded_texts(texts, &count));
    build_options(info, reduction_group, options, sizeof options);
    bool use_cache =
        !driver_caches_itself(info) && tdm_kernel_cache_directory(directory, sizeof directory);
    uint64_t key = use_cache ? cache_key(texts, count, info, options) : 0;
    if (use_cache && build_from_cache(context, device, options, directory, key, program))
        return TDM_OK;
    TDM_TRY(tdm_cl_build_from_sources(context, device, options, texts, count, program));
    if (use_cache)
        store_in_cache(*program, directory, key);
    return TDM_OK;
}

/* Finding OpenCL devices and choosing the backend a run uses. */
#ifndef TANDEM_DEVICE_H
#define TANDEM_DEVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "tandem/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tdm_opencl_device_info {
    size_t platform_index, device_index; /* what tdm_opencl_backend_create() takes */
    char platform_name[128];
    char platform_vendor[128];
    char device_name[128];
    char device_vendor[128];
    char type[16]; /* "GPU", "CPU", "accelerator" or "other" */
    bool is_gpu_or_accelerator;
    char opencl_c_version[64]; /* e.g. "OpenCL C 1.2 pocl" */
    char driver_version[64];
    unsigned long long global_memory_bytes;
    unsigned compute_units;
    unsigned long long max_alloc_bytes; /* CL_DEVICE_MAX_MEM_ALLOC_SIZE: the largest buffer */
} tdm_opencl_device_info;

/* Every device of every OpenCL platform, in platform then device order.
 * With no OpenCL driver installed, returns TDM_ERR_NOT_FOUND with a message
 * saying so. Free the list with free(). */
tdm_status tdm_opencl_list_devices(tdm_opencl_device_info **devices, size_t *count);

/* --- CLBlast's GEMM tuned for an OpenCL device (tandem tune) ---
 * The backend of a device applies its tuning file when it is created. */
typedef struct tdm_tune_options {
    size_t max_candidates; /* parameter sets to try; 0: all */
    /* after each candidate: its GFLOP/s (0 if it failed or gave wrong
     * results) and the best so far; may be NULL */
    void (*progress)(void *user, size_t done, size_t total, double gflops, double best_gflops);
    void *user;
} tdm_tune_options;

typedef struct tdm_tune_report {
    double default_gflops, tuned_gflops; /* over the GEMM shapes tandem runs */
    size_t tried, valid;
    char path[4096]; /* the tuning file written */
} tdm_tune_report;

/* Times CLBlast's default parameters and candidate sets on an OpenCL
 * backend, keeps the fastest whose results match the defaults', writes the
 * device's tuning file and applies it to this backend. */
tdm_status tdm_opencl_tune(tdm_backend *backend, const tdm_tune_options *options,
                           tdm_tune_report *report);
/* Whether a device is tuned, for listings: "not tuned", "CLBlast tuned: ..."
 * or "tuning file ignored: <why>". Reads the file; changes nothing. */
void tdm_opencl_tuning_status(const tdm_opencl_device_info *info, char *out, size_t size);

typedef enum tdm_backend_choice {
    TDM_BACKEND_AUTO,   /* an OpenCL GPU or accelerator if there is one, else cpu */
    TDM_BACKEND_OPENCL, /* an OpenCL device, of any type unless `type` says */
    TDM_BACKEND_CPU     /* the plain-C backend */
} tdm_backend_choice;

typedef enum tdm_device_type {
    TDM_DEVICE_TYPE_ANY,
    TDM_DEVICE_TYPE_GPU, /* GPUs and accelerators */
    TDM_DEVICE_TYPE_CPU
} tdm_device_type;

typedef enum tdm_fallback {
    TDM_FALLBACK_CPU,  /* no OpenCL device matches: warn and use cpu */
    TDM_FALLBACK_ERROR /* no OpenCL device matches: fail */
} tdm_fallback;

/* The [device] section of a config file. */
typedef struct tdm_device_config {
    tdm_backend_choice backend;
    char platform[128]; /* "" = any; else an index or a case-insensitive name substring */
    char device[128];   /* likewise, among the chosen platform's devices */
    tdm_device_type type;
    tdm_fallback fallback;
    size_t threads; /* the cpu backend's threads; 0 = tdm_cpu_default_threads() */
    /* Of the devices that match, the one numbered spread % their count: the
     * rank of an MPI process among those of its machine, so that they share
     * the machine's GPUs out one each (0: the first match). */
    size_t spread;
} tdm_device_config;

/* backend = auto, any platform and device, type = any, fallback = cpu,
 * threads = auto. */
void tdm_device_config_init(tdm_device_config *config);

/* Sets one key of the [device] section (backend, platform, device, type,
 * fallback, threads); an unknown key or malformed value is TDM_ERR_CONFIG.
 * The signature is a tdm_config_setter (see config.h). */
tdm_status tdm_device_config_set(void *config, const char *key, const char *value);

/* Applies a device string as given to --device or TANDEM_DEVICE:
 * "auto", "cpu", "opencl", "opencl:PLATFORM" or "opencl:PLATFORM:DEVICE",
 * where each field is an index or a case-insensitive name substring. It
 * replaces backend, platform and device; type and fallback stay as they are. */
tdm_status tdm_device_config_apply_string(tdm_device_config *config, const char *device_string);

typedef struct tdm_device_choice {
    bool use_opencl;
    size_t device;  /* index into the device list when use_opencl */
    bool fell_back; /* cpu because nothing matched and fallback = cpu */
    char why[512];  /* when fell_back: what did not match */
} tdm_device_choice;

/* Applies the config to a device list (pure: no OpenCL calls), so a choice
 * can be previewed (`tandem devices`) and tested with made-up lists. */
tdm_status tdm_device_choose(const tdm_device_config *config, const tdm_opencl_device_info *devices,
                             size_t count, tdm_device_choice *choice);

/* Lists the devices, chooses one and creates its backend. */
tdm_status tdm_backend_create_from_config(const tdm_device_config *config, tdm_backend **out,
                                          tdm_device_choice *choice);

#ifdef __cplusplus
}
#endif

#endif

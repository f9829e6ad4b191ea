/* CLBlast's GEMM tuned per device: the tuning file and the search that
 * writes it (cl_tuning.c). */
#ifndef TANDEM_OPENCL_TUNING_H
#define TANDEM_OPENCL_TUNING_H

#include <stdbool.h>

#include "backend/opencl/cl_common.h"
#include "tandem/backend.h"
#include "tandem/device.h"

/* The device's tuning file: $TANDEM_TUNING_DIR, else
 * $XDG_CACHE_HOME/tandem/tuning, else ~/.cache/tandem/tuning, then a hash of
 * the platform, device and driver names. False when no folder can be named. */
bool tdm_cl_tuning_path(const tdm_opencl_device_info *info, char *out, size_t size);

/* Reads the device's tuning file and, with a device, hands its parameters to
 * CLBlast. note: "" (no file), "CLBlast tuned: ..." or "tuning file ignored:
 * <why>" (a bad or stale file is never fatal). */
void tdm_cl_apply_tuning(cl_device_id device, const tdm_opencl_device_info *info, char *note,
                         size_t size);

/* The search of tdm_opencl_tune, on a backend of that device. */
tdm_status tdm_cl_tune(tdm_backend *backend, cl_device_id device,
                       const tdm_opencl_device_info *info, const tdm_tune_options *o,
                       tdm_tune_report *report);

#endif

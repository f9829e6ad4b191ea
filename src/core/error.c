#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>

enum { MESSAGE_CAPACITY = 8192 }; /* room for an OpenCL build log excerpt */

static _Thread_local char last_message[MESSAGE_CAPACITY];

const char *tdm_status_name(tdm_status status)
{
    switch (status) {
    case TDM_OK: return "ok";
    case TDM_ERR_INVALID_ARGUMENT: return "invalid argument";
    case TDM_ERR_OUT_OF_MEMORY: return "out of memory";
    case TDM_ERR_UNSUPPORTED: return "unsupported";
    case TDM_ERR_NOT_FOUND: return "not found";
    case TDM_ERR_OPENCL: return "OpenCL error";
    case TDM_ERR_KERNEL_BUILD: return "kernel build failed";
    case TDM_ERR_CONFIG: return "config error";
    case TDM_ERR_IO: return "I/O error";
    case TDM_ERR_DATA: return "bad data";
    case TDM_ERR_NUMERIC: return "numeric failure";
    }
    return "unknown status";
}

const char *tdm_last_error(void)
{
    return last_message;
}

void tdm_clear_error(void)
{
    last_message[0] = '\0';
}

tdm_status tdm_error_at(tdm_status status, const char *file, int line, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    int used = vsnprintf(last_message, sizeof last_message, format, args);
    va_end(args);
    if (used >= 0 && (size_t)used < sizeof last_message)
        snprintf(last_message + used, sizeof last_message - (size_t)used, " (at %s:%d)", file,
                 line);
    return status;
}

#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>

enum { MESSAGE_CAPACITY = 8192 }; /* room for an OpenCL build log excerpt */

static _Thread_local char last_message[MESSAGE_CAPACITY];
static _Thread_local char last_location[256]; /* "src/file.c:line" */

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
    case TDM_ERR_COMM: return "communication error";
    }
    return "unknown status";
}

const char *tdm_last_error_message(void)
{
    return last_message;
}

const char *tdm_last_error_location(void)
{
    return last_location;
}

const char *tdm_last_error(void)
{
    static _Thread_local char full[MESSAGE_CAPACITY + sizeof last_location + 8];
    if (!last_location[0])
        return last_message;
    snprintf(full, sizeof full, "%s (at %s)", last_message, last_location);
    return full;
}

void tdm_clear_error(void)
{
    last_message[0] = '\0';
    last_location[0] = '\0';
}

tdm_status tdm_error_at(tdm_status status, const char *file, int line, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(last_message, sizeof last_message, format, args);
    va_end(args);
    snprintf(last_location, sizeof last_location, "%s:%d", file, line);
    return status;
}

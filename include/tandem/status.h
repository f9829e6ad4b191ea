/* Status codes and the per-thread last-error message. */
#ifndef TANDEM_STATUS_H
#define TANDEM_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Every library call that can fail returns one of these; TDM_OK is zero. */
typedef enum tdm_status {
    TDM_OK = 0,
    TDM_ERR_INVALID_ARGUMENT, /* a shape, size, offset or value is out of range */
    TDM_ERR_OUT_OF_MEMORY,    /* host or device allocation failed */
    TDM_ERR_UNSUPPORTED,      /* the backend does not implement the op */
    TDM_ERR_NOT_FOUND,        /* no device matches the request */
    TDM_ERR_OPENCL,           /* an OpenCL or CLBlast call failed */
    TDM_ERR_KERNEL_BUILD,     /* an OpenCL program failed to compile */
    TDM_ERR_CONFIG,           /* a config file or device string is malformed */
    TDM_ERR_IO,               /* a file could not be read or written */
    TDM_ERR_DATA,             /* a data or checkpoint file is malformed or out of range */
    TDM_ERR_NUMERIC,          /* training diverged: a loss became NaN or infinite */
    TDM_ERR_COMM              /* an MPI call failed, or another process reported a failure */
} tdm_status;

/* A short name such as "invalid argument". */
const char *tdm_status_name(tdm_status status);

/* The last failure on the calling thread: what failed (with the OpenCL error
 * name where there is one), then " (at src/file.c:line)". Empty when nothing
 * failed since the last tdm_clear_error(). */
const char *tdm_last_error(void);
/* The same failure's message alone, and its source location alone
 * ("src/file.c:line"), for callers that put their own context around it. */
const char *tdm_last_error_message(void);
const char *tdm_last_error_location(void);

void tdm_clear_error(void);

#ifdef __cplusplus
}
#endif

#endif

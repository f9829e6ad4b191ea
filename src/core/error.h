/* Internal helpers that record the last error and return a status. */
#ifndef TANDEM_CORE_ERROR_H
#define TANDEM_CORE_ERROR_H

#include "tandem/status.h"

/* Records "message (at file:line)" as the thread's last error and returns status. */
tdm_status tdm_error_at(tdm_status status, const char *file, int line, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

#define TDM_FAIL(status, ...) tdm_error_at((status), __FILE__, __LINE__, __VA_ARGS__)

/* Propagates a failed status unchanged; the callee already recorded the message. */
#define TDM_TRY(expr)                                                                              \
    do {                                                                                           \
        tdm_status tdm_try_status_ = (expr);                                                       \
        if (tdm_try_status_ != TDM_OK)                                                             \
            return tdm_try_status_;                                                                \
    } while (0)

#endif

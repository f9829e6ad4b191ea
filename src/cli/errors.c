#include "cli/errors.h"

#include <stdarg.h>
#include <stdio.h>

static char cli_message[1024];

tdm_status cli_error(tdm_status status, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(cli_message, sizeof cli_message, format, args);
    va_end(args);
    return status;
}

int cli_fail(void)
{
    fprintf(stderr, "tandem: error: %s\n", cli_message[0] ? cli_message : tdm_last_error());
    return 1;
}

const char *cli_library_error(void)
{
    return tdm_last_error_message();
}

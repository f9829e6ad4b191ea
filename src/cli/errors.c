#include "cli/errors.h"

#include <stdarg.h>
#include <stdio.h>

static char cli_message[1024];
static int process_rank = -1; /* -1: the only process */

void cli_set_process(int rank, int size)
{
    process_rank = size > 1 ? rank : -1;
}

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
    const char *message = cli_message[0] ? cli_message : tdm_last_error();
    if (process_rank >= 0)
        fprintf(stderr, "tandem: process %d: error: %s\n", process_rank, message);
    else
        fprintf(stderr, "tandem: error: %s\n", message);
    return 1;
}

const char *cli_library_error(void)
{
    return tdm_last_error_message();
}

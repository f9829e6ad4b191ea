#include "cli/errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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

tdm_status cli_agree(tdm_comm *comm, tdm_status mine)
{
    if (comm->size == 1)
        return mine;
    int size = comm->size;
    double failed = mine != TDM_OK, *all = malloc((size_t)size * sizeof(double));
    if (!all)
        return cli_error(TDM_ERR_OUT_OF_MEMORY, "out of memory");
    tdm_status status = comm->ops->allgather(comm, &failed, sizeof failed, all);
    int first_failed = -1;
    for (int r = 0; status == TDM_OK && r < size && first_failed < 0; r++)
        first_failed = all[r] != 0.0 ? r : -1;
    free(all);
    if (status != TDM_OK || mine != TDM_OK)
        return mine != TDM_OK ? mine : status;
    if (first_failed < 0)
        return TDM_OK;
    return cli_error(TDM_ERR_COMM, "process %d of %d failed (its message says why)", first_failed,
                     size);
}

int cli_fail_processes(tdm_comm *comm, bool agreed)
{
    int code = cli_fail();
    if (agreed && comm->size > 1)
        comm->ops->abort(comm, code); /* the others may wait in a collective for this one */
    return code;
}

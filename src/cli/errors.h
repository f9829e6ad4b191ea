/* The command-line tool's errors: the only place that prints them. */
#ifndef TANDEM_CLI_ERRORS_H
#define TANDEM_CLI_ERRORS_H

#include "tandem/tandem.h"

/* Records a message of the tool's own (it wins over the library's) and
 * returns status. */
tdm_status cli_error(tdm_status status, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
/* Names the process in cli_fail's messages when there are several (MPI). */
void cli_set_process(int rank, int size);
/* Prints "tandem: error: <message>" ("tandem: process R: error: ..." when
 * there are several processes) and returns the exit status 1: the
 * message of cli_error if one was recorded, else the library's. */
int cli_fail(void);
/* Every process learns whether all got this far (loaded their data, opened
 * their device): mine, or TDM_ERR_COMM naming the first process that failed
 * (it prints its own message). Before anything is written. */
tdm_status cli_agree(tdm_comm *comm, tdm_status mine);
/* cli_fail, then, past a cli_agree that all passed (`agreed`) and with other
 * processes, ends them all: they may wait in a collective for this one. */
int cli_fail_processes(tdm_comm *comm, bool agreed);
/* The library's last message, without its source location. */
const char *cli_library_error(void);

#endif

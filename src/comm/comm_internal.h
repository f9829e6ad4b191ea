/* What the two communicators share. */
#ifndef TANDEM_COMM_INTERNAL_H
#define TANDEM_COMM_INTERNAL_H

#include "tandem/comm.h"

/* A total each process adds its own part to, passed along the processes in
 * rank order (receive it from the one before, add_own, send it on), then
 * sent by the last to all: additions in the same order on every run. On
 * process 0, `total` holds the start (zeros, say) when called. */
tdm_status tdm_comm_running_total(tdm_comm *comm, void *total, size_t bytes,
                                  void (*add_own)(void *total, void *user), void *user);

/* The process count an MPI launcher announced in the environment (1 when it
 * started this process without saying how many); 0: no launcher started it. */
int tdm_comm_launched_size(void);

#endif

/* What the two communicators share. */
#ifndef TANDEM_COMM_INTERNAL_H
#define TANDEM_COMM_INTERNAL_H

#include "tandem/comm.h"

/* The process count an MPI launcher announced in the environment (1 when it
 * started this process without saying how many); 0: no launcher started it. */
int tdm_comm_launched_size(void);

#endif

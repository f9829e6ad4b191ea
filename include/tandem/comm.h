/* A communicator: the processes that fit one model together, and the
 * collectives EM needs from them. Two implementations: a single process
 * (every collective is a copy), and MPI's MPI_COMM_WORLD in a build with
 * -DTANDEM_MPI=ON. EM and the command line call this interface only; none of
 * them includes mpi.h. docs/distributed.md says what travels and when. */
#ifndef TANDEM_COMM_H
#define TANDEM_COMM_H

#include <stdbool.h>
#include <stddef.h>

#include "tandem/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tdm_comm tdm_comm;

/* Every collective is called by every process of the communicator, in the
 * same order; a failure is TDM_ERR_COMM with the MPI error's text. */
typedef struct tdm_comm_ops {
    /* all[r * bytes ...] = process r's `bytes` bytes of mine, on every process. */
    tdm_status (*allgather)(tdm_comm *comm, const void *mine, size_t bytes, void *all);
    /* On process 0: process r's counts[r] bytes of mine, one after another in
     * rank order, in all (elsewhere all is not touched and may be NULL). */
    tdm_status (*gather)(tdm_comm *comm, const void *mine, const size_t *counts, void *all);
    /* Point to point: `bytes` of data to process `to`, or from process `from`
     * (each send has its receive; a send may wait for it). */
    tdm_status (*send)(tdm_comm *comm, const void *data, size_t bytes, int to);
    tdm_status (*receive)(tdm_comm *comm, void *data, size_t bytes, int from);
    /* data, `bytes` of it, from process root to every other. */
    tdm_status (*broadcast)(tdm_comm *comm, void *data, size_t bytes, int root);
    /* data[i] = the sum over processes of data[i], on every process. MPI adds
     * in an order of its own: only for sums that are exact in any order
     * (integers below 2^53), never for sums of fractions. */
    tdm_status (*allreduce_sum_double)(tdm_comm *comm, double *data, size_t count);
    /* Ends every process of the communicator with exit status `code`; for an
     * application whose other processes may wait in a collective forever.
     * The library itself never calls it. */
    void (*abort)(tdm_comm *comm, int code);
    void (*free)(tdm_comm *comm);
} tdm_comm_ops;

struct tdm_comm {
    const tdm_comm_ops *ops;
    int rank, size;
    int local_rank; /* the rank among the processes on this machine (to choose a GPU) */
};

/* data[i] = the sum over the processes of their data[i], on every process:
 * a running total from process 0 to the last, which sends it to all, so the
 * additions are in rank order and every process and run gets the same bits
 * (an MPI allreduce adds in an order of its own). */
tdm_status tdm_comm_sum_floats(tdm_comm *comm, float *data, size_t count);

/* A communicator of this process alone (rank 0 of 1). */
tdm_status tdm_comm_single(tdm_comm **out);
/* MPI_COMM_WORLD when an MPI launcher (mpirun, srun) started this process or
 * the application initialised MPI; MPI is initialised here unless the
 * application did, and finalised by tdm_comm_free only then. Otherwise, and
 * in a build without MPI, the single process; but a build without MPI that a
 * launcher started as one of several fails with TDM_ERR_UNSUPPORTED, as each
 * process would do the whole job and write the same files. */
tdm_status tdm_comm_world(tdm_comm **out);
/* Whether this build has MPI (-DTANDEM_MPI=ON). */
bool tdm_comm_has_mpi(void);
void tdm_comm_free(tdm_comm *comm);

#ifdef __cplusplus
}
#endif

#endif

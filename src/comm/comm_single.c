/* The communicator of one process: every collective is a copy or nothing,
 * so code written for many processes runs unchanged in one. */
#include <stdlib.h>
#include <string.h>

#include "comm/comm_internal.h"
#include "core/error.h"

static tdm_status single_allgather(tdm_comm *comm, const void *mine, size_t bytes, void *all)
{
    (void)comm;
    if (bytes)
        memmove(all, mine, bytes);
    return TDM_OK;
}

static tdm_status single_gather(tdm_comm *comm, const void *mine, const size_t *counts, void *all)
{
    return single_allgather(comm, mine, counts[0], all);
}

/* One process has no other to talk to. */
static tdm_status single_send(tdm_comm *comm, const void *data, size_t bytes, int to)
{
    (void)comm, (void)data, (void)bytes;
    return TDM_FAIL(TDM_ERR_COMM, "comm: a send to process %d of a single process", to);
}

static tdm_status single_receive(tdm_comm *comm, void *data, size_t bytes, int from)
{
    (void)comm, (void)data, (void)bytes;
    return TDM_FAIL(TDM_ERR_COMM, "comm: a receive from process %d of a single process", from);
}

static tdm_status single_broadcast(tdm_comm *comm, void *data, size_t bytes, int root)
{
    (void)comm, (void)data, (void)bytes, (void)root;
    return TDM_OK;
}

static tdm_status single_allreduce(tdm_comm *comm, double *data, size_t count)
{
    (void)comm, (void)data, (void)count;
    return TDM_OK;
}

static void single_abort(tdm_comm *comm, int code)
{
    (void)comm;
    exit(code);
}

static void single_free(tdm_comm *comm)
{
    free(comm);
}

static const tdm_comm_ops single_ops = {.allgather = single_allgather,
                                        .gather = single_gather,
                                        .send = single_send,
                                        .receive = single_receive,
                                        .broadcast = single_broadcast,
                                        .allreduce_sum_double = single_allreduce,
                                        .abort = single_abort,
                                        .free = single_free};

tdm_status tdm_comm_single(tdm_comm **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "comm: out of memory");
    **out = (tdm_comm){.ops = &single_ops, .rank = 0, .size = 1, .local_rank = 0};
    return TDM_OK;
}

void tdm_comm_free(tdm_comm *comm)
{
    if (comm)
        comm->ops->free(comm);
}

/* The variables MPI launchers (Open MPI's mpirun, MPICH's Hydra, Slurm's
 * srun through PMI or PMIx) give each process they start. */
int tdm_comm_launched_size(void)
{
    static const char *const sizes[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (getenv(sizes[i]))
            return atoi(getenv(sizes[i]));
    if (!getenv("PMIX_RANK")) /* srun --mpi=pmix says the rank; Slurm the tasks */
        return 0;
    return getenv("SLURM_NTASKS") ? atoi(getenv("SLURM_NTASKS")) : 1;
}

#ifndef TANDEM_MPI
bool tdm_comm_has_mpi(void)
{
    return false;
}

tdm_status tdm_comm_world(tdm_comm **out)
{
    *out = NULL;
    int launched = tdm_comm_launched_size();
    if (launched > 1)
        return TDM_FAIL(TDM_ERR_UNSUPPORTED,
                        "an MPI launcher started %d processes, but this build of tandem has no "
                        "MPI: each would do the whole job (build with -DTANDEM_MPI=ON)",
                        launched);
    return tdm_comm_single(out);
}
#endif

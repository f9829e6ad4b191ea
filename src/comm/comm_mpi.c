/* The communicator over MPI: a duplicate of MPI_COMM_WORLD (tandem's
 * messages never meet the application's) whose errors return instead of
 * ending the process. */
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>

#include "comm/comm_internal.h"
#include "core/error.h"

typedef struct mpi_comm {
    tdm_comm public; /* first: a tdm_comm * is a mpi_comm * */
    MPI_Comm world;
    bool initialized_here;
} mpi_comm;

static MPI_Comm world_of(tdm_comm *comm)
{
    return ((mpi_comm *)comm)->world;
}

static tdm_status check(int code, const char *call)
{
    if (code == MPI_SUCCESS)
        return TDM_OK;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
        length = 0;
    return TDM_FAIL(TDM_ERR_COMM, "%s failed: %.*s", call, length, text);
}

/* MPI counts are ints: larger transfers are refused, not truncated. */
static tdm_status as_count(size_t bytes, int *out)
{
    if (bytes > INT_MAX)
        return TDM_FAIL(TDM_ERR_COMM, "comm: %zu bytes in one transfer (MPI counts stop at %d)",
                        bytes, INT_MAX);
    *out = (int)bytes;
    return TDM_OK;
}

static tdm_status mpi_allgather(tdm_comm *comm, const void *mine, size_t bytes, void *all)
{
    int count = 0;
    TDM_TRY(as_count(bytes * (size_t)comm->size, &count));
    return check(
        MPI_Allgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, world_of(comm)),
        "MPI_Allgather");
}

static tdm_status mpi_gather(tdm_comm *comm, const void *mine, const size_t *counts, void *all)
{
    int size = comm->size, *ints = malloc(2 * (size_t)size * sizeof(int));
    if (!ints)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "comm: out of memory");
    size_t total = 0;
    tdm_status status = TDM_OK;
    for (int r = 0; r < size && status == TDM_OK; r++) {
        status = as_count(total, &ints[size + r]); /* displacement */
        if (status == TDM_OK)
            status = as_count(counts[r], &ints[r]);
        total += counts[r];
    }
    if (status == TDM_OK)
        status = as_count(total, &(int){0});
    if (status == TDM_OK)
        status = check(MPI_Gatherv(mine, ints[comm->rank], MPI_BYTE, all, ints, ints + size,
                                   MPI_BYTE, 0, world_of(comm)),
                       "MPI_Gatherv");
    free(ints);
    return status;
}

static tdm_status mpi_send(tdm_comm *comm, const void *data, size_t bytes, int to)
{
    int count = 0;
    TDM_TRY(as_count(bytes, &count));
    return check(MPI_Send(data, count, MPI_BYTE, to, 0, world_of(comm)), "MPI_Send");
}

static tdm_status mpi_receive(tdm_comm *comm, void *data, size_t bytes, int from)
{
    int count = 0;
    TDM_TRY(as_count(bytes, &count));
    return check(MPI_Recv(data, count, MPI_BYTE, from, 0, world_of(comm), MPI_STATUS_IGNORE),
                 "MPI_Recv");
}

static tdm_status mpi_broadcast(tdm_comm *comm, void *data, size_t bytes, int root)
{
    int count = 0;
    TDM_TRY(as_count(bytes, &count));
    return check(MPI_Bcast(data, count, MPI_BYTE, root, world_of(comm)), "MPI_Bcast");
}

static tdm_status mpi_allreduce(tdm_comm *comm, double *data, size_t count)
{
    int ints = 0;
    TDM_TRY(as_count(count, &ints));
    return check(MPI_Allreduce(MPI_IN_PLACE, data, ints, MPI_DOUBLE, MPI_SUM, world_of(comm)),
                 "MPI_Allreduce");
}

static void mpi_abort(tdm_comm *comm, int code)
{
    MPI_Abort(world_of(comm), code);
}

static void mpi_free(tdm_comm *comm)
{
    mpi_comm *m = (mpi_comm *)comm;
    MPI_Comm_free(&m->world);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (m->initialized_here && !finalized)
        MPI_Finalize();
    free(m);
}

static const tdm_comm_ops mpi_ops = {.allgather = mpi_allgather,
                                     .gather = mpi_gather,
                                     .send = mpi_send,
                                     .receive = mpi_receive,
                                     .broadcast = mpi_broadcast,
                                     .allreduce_sum_double = mpi_allreduce,
                                     .abort = mpi_abort,
                                     .free = mpi_free};

bool tdm_comm_has_mpi(void)
{
    return true;
}

/* The rank among the processes that share this machine's memory. */
static tdm_status node_rank(MPI_Comm world, int *out)
{
    MPI_Comm node;
    TDM_TRY(check(MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node),
                  "MPI_Comm_split_type"));
    tdm_status status = check(MPI_Comm_rank(node, out), "MPI_Comm_rank");
    MPI_Comm_free(&node);
    return status;
}

static tdm_status open_world(mpi_comm *m)
{
    int initialized = 0;
    TDM_TRY(check(MPI_Initialized(&initialized), "MPI_Initialized"));
    if (!initialized) {
        TDM_TRY(check(MPI_Init(NULL, NULL), "MPI_Init"));
        m->initialized_here = true;
    }
    TDM_TRY(check(MPI_Comm_dup(MPI_COMM_WORLD, &m->world), "MPI_Comm_dup"));
    TDM_TRY(check(MPI_Comm_set_errhandler(m->world, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler"));
    TDM_TRY(check(MPI_Comm_rank(m->world, &m->public.rank), "MPI_Comm_rank"));
    TDM_TRY(check(MPI_Comm_size(m->world, &m->public.size), "MPI_Comm_size"));
    return node_rank(m->world, &m->public.local_rank);
}

tdm_status tdm_comm_world(tdm_comm **out)
{
    int initialized = 0;
    *out = NULL;
    TDM_TRY(check(MPI_Initialized(&initialized), "MPI_Initialized"));
    if (!initialized && tdm_comm_launched_size() == 0)
        return tdm_comm_single(out); /* MPI's singleton start forks a daemon: not for one */
    mpi_comm *m = calloc(1, sizeof *m);
    if (!m)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "comm: out of memory");
    m->public.ops = &mpi_ops;
    m->world = MPI_COMM_NULL;
    tdm_status status = open_world(m);
    if (status != TDM_OK) {
        if (m->world != MPI_COMM_NULL)
            MPI_Comm_free(&m->world);
        if (m->initialized_here)
            MPI_Finalize();
        free(m);
        return status;
    }
    *out = &m->public;
    return TDM_OK;
}

/* Sums across processes in rank order, from the communicator's own
 * point-to-point messages and broadcast. */
#include <stdlib.h>
#include <string.h>

#include "comm/comm_internal.h"
#include "core/error.h"

tdm_status tdm_comm_running_total(tdm_comm *comm, void *total, size_t bytes,
                                  void (*add_own)(void *total, void *user), void *user)
{
    int rank = comm->rank, last = comm->size - 1;
    if (rank > 0)
        TDM_TRY(comm->ops->receive(comm, total, bytes, rank - 1));
    add_own(total, user);
    if (rank < last)
        TDM_TRY(comm->ops->send(comm, total, bytes, rank + 1));
    return comm->size > 1 ? comm->ops->broadcast(comm, total, bytes, last) : TDM_OK;
}

typedef struct float_part {
    const float *data;
    size_t count;
} float_part;

static void add_floats(void *total, void *user)
{
    const float_part *own = user;
    float *sum = total;
    for (size_t i = 0; i < own->count; i++)
        sum[i] += own->data[i];
}

tdm_status tdm_comm_sum_floats(tdm_comm *comm, float *data, size_t count)
{
    if (comm->size == 1)
        return TDM_OK;
    float *total = calloc(count + 1, sizeof(float)); /* process 0 adds to 0 */
    if (!total)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "comm: out of host memory");
    float_part own = {data, count};
    tdm_status status =
        tdm_comm_running_total(comm, total, count * sizeof(float), add_floats, &own);
    if (status == TDM_OK)
        memcpy(data, total, count * sizeof(float));
    free(total);
    return status;
}

/* Sums across processes in rank order, from the communicator's own
 * point-to-point messages and broadcast. */
#include <stdlib.h>

#include "core/error.h"
#include "tandem/comm.h"

tdm_status tdm_comm_sum_floats(tdm_comm *comm, float *data, size_t count)
{
    if (comm->size == 1)
        return TDM_OK;
    int rank = comm->rank, last = comm->size - 1;
    size_t bytes = count * sizeof(float);
    float *total = malloc(bytes + 1);
    if (!total)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "comm: out of host memory");
    tdm_status status = rank > 0 ? comm->ops->receive(comm, total, bytes, rank - 1) : TDM_OK;
    for (size_t i = 0; status == TDM_OK && i < count; i++)
        data[i] = rank > 0 ? total[i] + data[i] : data[i];
    if (status == TDM_OK && rank < last)
        status = comm->ops->send(comm, data, bytes, rank + 1);
    if (status == TDM_OK)
        status = comm->ops->broadcast(comm, data, bytes, last);
    free(total);
    return status;
}

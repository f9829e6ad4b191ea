/* What a process of a distributed fit needs of the others: its share of
 * the shards, sums over all shards in a fixed order, the rows it does not
 * hold. With one process every call is local. */
#include <stdlib.h>
#include <string.h>

#include "comm/comm_internal.h"
#include "core/error.h"
#include "em/em_internal.h"

static size_t shard_count(size_t total_rows, size_t shard_rows)
{
    return total_rows / shard_rows + (total_rows % shard_rows != 0);
}

/* Process `rank` holds shards [first, end). */
static void shard_range(size_t shards, int rank, int size, size_t *first, size_t *end)
{
    *first = shards * (size_t)rank / (size_t)size;
    *end = shards * ((size_t)rank + 1) / (size_t)size;
}

void tdm_em_share(size_t total_rows, size_t shard_rows, int rank, int size, size_t *first,
                  size_t *count)
{
    size_t shards = shard_count(total_rows, shard_rows), low, high;
    shard_range(shards, rank, size, &low, &high);
    size_t begin = low * shard_rows, end = high * shard_rows;
    *first = begin < total_rows ? begin : total_rows;
    *count = (end < total_rows ? end : total_rows) - *first;
}

static size_t shards_of(const em_part *part, int rank)
{
    size_t low, high;
    shard_range(shard_count(part->total_rows, part->shard_rows), rank, part->comm->size, &low,
                &high);
    return high - low;
}

size_t tdm_em_local_shards(const em_part *part)
{
    return shards_of(part, part->comm->rank);
}

static int owner_of(const em_part *part, size_t row)
{
    size_t shards = shard_count(part->total_rows, part->shard_rows), shard = row / part->shard_rows;
    int rank = 0;
    for (size_t low, high; rank < part->comm->size - 1; rank++) {
        shard_range(shards, rank, part->comm->size, &low, &high);
        if (shard < high)
            break;
    }
    return rank;
}

/* total += every shard's values, the shards in order. */
static void add_in_order(const double *shards, size_t count, size_t stride, double *total)
{
    for (size_t shard = 0; shard < count; shard++)
        for (size_t i = 0; i < stride; i++)
            total[i] += shards[shard * stride + i];
}

typedef struct own_shards {
    const double *partials;
    size_t count, stride;
} own_shards;

static void add_own_shards(void *total, void *user)
{
    const own_shards *own = user;
    add_in_order(own->partials, own->count, own->stride, total);
}

/* A running total passed along the processes, each adding its shards: the
 * additions of one process, and one total's worth sent per process whatever
 * the rows (a gather of every shard to one process would bring it all of
 * them). */
tdm_status tdm_em_sum_shards(const em_part *part, const double *partials, size_t stride,
                             double *total)
{
    own_shards own = {partials, tdm_em_local_shards(part), stride};
    memset(total, 0, stride * sizeof(double));
    return tdm_comm_running_total(part->comm, total, stride * sizeof(double), add_own_shards, &own);
}

tdm_status tdm_em_fetch_row(const em_part *part, size_t row, uint64_t *words)
{
    const tdm_binary_data *data = part->data;
    int owner = owner_of(part, row);
    if (owner == part->comm->rank)
        memcpy(words, data->bits + (row - part->first_row) * data->row_words,
               data->row_words * sizeof(uint64_t));
    return part->comm->ops->broadcast(part->comm, words, data->row_words * sizeof(uint64_t), owner);
}

tdm_status tdm_em_allgather_doubles(const em_part *part, const double *mine, size_t count,
                                    double *all)
{
    return part->comm->ops->allgather(part->comm, mine, count * sizeof(double), all);
}

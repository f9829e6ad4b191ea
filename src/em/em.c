/* EM for a mixture of Bernoullis. Each pass over the data goes block by
 * block: scores = X W^T + b, a row softmax (responsibilities and the per-row
 * log-likelihood), then S = eta^T X and N = eta^T 1. The method "gemm" makes
 * the products GEMMs on floats widened from the bits; "bits" computes them
 * from the packed bits (bits_scores by table lookup, bits_sums). The blocks'
 * S, N and log-likelihoods are added on the host in double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tandem/config.h"
#include "core/error.h"
#include "em/em_internal.h"

void tdm_em_options_init(tdm_em_options *o)
{
    *o = (tdm_em_options){.components = 10,
                          .max_iter = 100,
                          .tol = 1e-4,
                          .n_init = 1,
                          .init = TDM_EM_INIT_KMEANS_PLUS_PLUS,
                          .seed = 1,
                          .prior_a = 2.0,
                          .prior_b = 2.0,
                          .clamp = 1e-6,
                          .block_rows = 0,
                          .shard_rows = 131072,
                          .cache_bytes = (size_t)1 << 30,
                          .method = TDM_EM_METHOD_AUTO};
}

static tdm_status set_init(tdm_em_options *o, const char *value)
{
    static const char *const names[] = {"kmeans++", "random_rows", "random_responsibilities"};
    for (int i = 0; i < 3; i++) {
        if (strcmp(value, names[i]) == 0) {
            o->init = (tdm_em_init)i;
            return TDM_OK;
        }
    }
    return TDM_FAIL(TDM_ERR_CONFIG,
                    "init must be kmeans++, random_rows or random_responsibilities, got '%s'",
                    value);
}

static tdm_status set_method(tdm_em_options *o, const char *value)
{
    static const char *const names[] = {"auto", "bits", "gemm"}; /* tdm_em_method's order */
    for (int i = 0; i < 3; i++) {
        if (strcmp(value, names[i]) == 0) {
            o->method = (tdm_em_method)i;
            return TDM_OK;
        }
    }
    return TDM_FAIL(TDM_ERR_CONFIG, "method must be auto, bits or gemm, got '%s'", value);
}

tdm_status tdm_em_options_set(void *target, const char *key, const char *value)
{
    tdm_em_options *o = target;
    const size_t most = (size_t)1 << 40;
    if (strcmp(key, "components") == 0)
        return tdm_parse_size(key, value, 1, most, &o->components);
    if (strcmp(key, "max_iter") == 0)
        return tdm_parse_size(key, value, 1, most, &o->max_iter);
    if (strcmp(key, "n_init") == 0)
        return tdm_parse_size(key, value, 1, 100000, &o->n_init);
    if (strcmp(key, "block_rows") == 0)
        return tdm_parse_size(key, value, 0, most, &o->block_rows);
    if (strcmp(key, "shard_rows") == 0)
        return tdm_parse_size(key, value, 1, most, &o->shard_rows);
    if (strcmp(key, "seed") == 0) {
        size_t seed = 0;
        TDM_TRY(tdm_parse_size(key, value, 0, SIZE_MAX, &seed));
        o->seed = seed;
        return TDM_OK;
    }
    if (strcmp(key, "init") == 0)
        return set_init(o, value);
    if (strcmp(key, "method") == 0)
        return set_method(o, value);
    if (strcmp(key, "tol") == 0)
        return tdm_parse_double(key, value, 0.0, 1e9, &o->tol);
    if (strcmp(key, "prior_a") == 0)
        return tdm_parse_double(key, value, 1.0, 1e9, &o->prior_a);
    if (strcmp(key, "prior_b") == 0)
        return tdm_parse_double(key, value, 1.0, 1e9, &o->prior_b);
    if (strcmp(key, "clamp") == 0)
        return tdm_parse_double(key, value, 1e-30, 0.49, &o->clamp);
    return TDM_FAIL(TDM_ERR_CONFIG,
                    "unknown key '%s' (known: components max_iter tol n_init init seed prior_a "
                    "prior_b clamp block_rows shard_rows method)",
                    key);
}

void tdm_em_result_free(tdm_em_result *r)
{
    if (!r)
        return;
    free(r->p);
    free(r->pi);
    free(r->history);
    free(r->objective);
    memset(r, 0, sizeof *r);
}

/* ---------- the device side of a pass ---------- */

typedef struct em_device {
    tdm_backend *backend;
    const tdm_binary_data *data;
    size_t k_count, cols, block;
    tdm_buffer *x_all;         /* the whole float matrix, when it fits cache_bytes */
    tdm_buffer *x_block;       /* else one block at a time */
    tdm_buffer *weights;       /* W (K x D), then b (K) */
    tdm_buffer *scores;        /* block x K */
    tdm_buffer *lse;           /* block */
    tdm_buffer *stats;         /* S (K x D), then N (K) */
    tdm_buffer *ones;          /* block */
    float *host;               /* room for a block of X, or for the stats */
    float byte_floats[256][8]; /* the 8 bits of every byte value, as floats */
    /* method = bits: the packed rows instead of X, a lookup table instead of W */
    bool bits;
    tdm_bits_shape shape;  /* rows: the block */
    tdm_buffer *words_all; /* every row's words, when they fit cache_bytes on a device */
    double *group_table;   /* 256 x K: one group's table, built in double; then b (K) */
} em_device;

static void free_device(em_device *dev)
{
    tdm_buffer *buffers[] = {dev->x_all, dev->x_block, dev->weights, dev->scores,
                             dev->lse,   dev->stats,   dev->ones,    dev->words_all};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++)
        tdm_buffer_free(buffers[i]);
    free(dev->host);
    free(dev->group_table);
}

static tdm_status alloc_floats(tdm_backend *backend, size_t count, tdm_buffer **out)
{
    return tdm_buffer_alloc(backend, (count ? count : 1) * sizeof(float), out);
}

/* The rows [first, first + count) as floats in dev->host, unpacked from
 * their bits on the backend's host threads. */
static void widen_rows(const em_device *dev, size_t first, size_t count)
{
    const tdm_binary_data *data = dev->data;
    float *out = dev->host;
    size_t cols = dev->cols;
    int team = count * cols < 65536 ? 1 : (int)tdm_backend_host_threads(dev->backend);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t r = 0; r < count; r++) {
        const uint64_t *words = data->bits + (first + r) * data->row_words;
        float *row = out + r * cols;
        for (size_t b = 0; b < cols / 8; b++) /* whole bytes: 8 floats from the table */
            memcpy(row + 8 * b, dev->byte_floats[words[b / 8] >> (8 * (b % 8)) & 0xFF],
                   8 * sizeof(float));
        for (size_t c = cols / 8 * 8; c < cols; c++)
            row[c] = (float)(words[c / 64] >> (c % 64) & 1u);
    }
}

/* Keeps the float matrix on a device with its own memory when it fits, so
 * each pass reads it there; else each block is widened from the bytes when
 * used, while it is small enough to stay in cache for both of its GEMMs. */
enum {
    STREAMED_ROWS_PER_THREAD = 256,
    STREAMED_BLOCK_MIN = 512,
    CACHED_BLOCK = 8192,
    BITS_BLOCK = 8192, /* rows per bits_scores / bits_sums call, or a GPU's (bits_block) */
    BLOCK_SCORES_BYTES = 64 << 20
};

/* Streamed blocks give each host thread 256 rows (800 KB of floats at
 * D = 784, about an L2 cache), so a block stays in cache for both GEMMs
 * however many threads share it. */
static size_t streamed_block(const tdm_backend *backend)
{
    size_t rows = STREAMED_ROWS_PER_THREAD * tdm_backend_host_threads(backend);
    return rows > STREAMED_BLOCK_MIN ? rows : STREAMED_BLOCK_MIN;
}

/* The bits method's block: BITS_BLOCK rows, or the more rows that keep the
 * device busy (a GPU: 8192 rows a block kept an H100 6% occupied, 13 launches
 * of each kernel and 26 waits a pass at n = 100000), as long as their scores
 * stay within BLOCK_SCORES_BYTES. */
static size_t bits_block(const tdm_backend *backend, size_t k_count)
{
    size_t rows = tdm_backend_parallel_rows(backend);
    size_t most = BLOCK_SCORES_BYTES / sizeof(float) / k_count;
    rows = rows < most ? rows : most;
    return rows > BITS_BLOCK ? rows : BITS_BLOCK;
}

/* What the whole data may take on the device: cache_bytes, within one
 * buffer (a device's CL_DEVICE_MAX_MEM_ALLOC_SIZE: past it, stream). */
static size_t device_budget(const tdm_backend *backend, size_t cache_bytes)
{
    size_t most = tdm_backend_max_buffer_bytes(backend);
    return cache_bytes < most ? cache_bytes : most;
}

static bool keep_on_device(const em_device *dev, size_t cache_bytes)
{
    size_t rows = dev->data->rows, cols = dev->cols;
    return !tdm_backend_uses_host_memory(dev->backend) && rows > 0 &&
           rows <= device_budget(dev->backend, cache_bytes) / sizeof(float) / cols;
}

static tdm_status place_matrix(em_device *dev, bool cached)
{
    size_t rows = dev->data->rows, cols = dev->cols;
    if (!cached)
        return alloc_floats(dev->backend, dev->block * cols, &dev->x_block);
    TDM_TRY(alloc_floats(dev->backend, rows * cols, &dev->x_all));
    for (size_t first = 0; first < rows; first += dev->block) {
        size_t count = rows - first < dev->block ? rows - first : dev->block;
        widen_rows(dev, first, count);
        TDM_TRY(tdm_buffer_upload(dev->x_all, first * cols * sizeof(float), dev->host,
                                  count * cols * sizeof(float)));
    }
    return TDM_OK;
}

/* method = auto is bits: table lookups beat widening to floats for a GEMM
 * on every device measured (docs/benchmarks.md: the cpu backend, PoCL, an
 * H100). */
static bool use_bits(const tdm_em_options *o)
{
    return o->method != TDM_EM_METHOD_GEMM;
}

/* The packed rows stay on a device with its own memory when they fit. */
static tdm_status place_words(em_device *dev, size_t cache_bytes)
{
    const tdm_binary_data *data = dev->data;
    size_t bytes = data->row_words * sizeof(uint64_t);
    if (tdm_backend_uses_host_memory(dev->backend) || data->rows == 0 ||
        data->rows > device_budget(dev->backend, cache_bytes) / bytes)
        return alloc_floats(dev->backend, 2 * dev->block * data->row_words, &dev->x_block);
    TDM_TRY(tdm_buffer_alloc(dev->backend, data->rows * bytes, &dev->words_all));
    return tdm_buffer_upload(dev->words_all, 0, data->bits, data->rows * bytes);
}

/* W and b, or the lookup table and b. */
static size_t weight_floats(const em_device *dev)
{
    size_t k_count = dev->k_count;
    return dev->bits ? tdm_bits_groups(&dev->shape) * TDM_BITS_PATTERNS * k_count + k_count
                     : k_count * (dev->cols + 1);
}

/* Room for what a pass stages on the host: the weights, the stats, and a
 * block of X for the GEMM method. */
static size_t host_floats_needed(const em_device *dev)
{
    size_t stats = dev->k_count * (dev->cols + 1), weights = weight_floats(dev);
    size_t most = weights > stats ? weights : stats;
    return dev->bits || dev->block * dev->cols < most ? most : dev->block * dev->cols;
}

/* The default block, fewer rows where a block's widest buffer (its floats,
 * its packed words as float pairs, or its scores) would pass the device's
 * largest buffer. */
static size_t block_within_buffer(const em_device *dev, size_t block)
{
    size_t widest = dev->bits ? 2 * dev->data->row_words : dev->cols;
    widest = widest > dev->k_count ? widest : dev->k_count;
    size_t rows = tdm_backend_max_buffer_bytes(dev->backend) / sizeof(float) / widest;
    return block < rows ? block : rows > 0 ? rows : 1;
}

/* The block of block_rows = 0 (auto). */
static size_t default_block(const em_device *dev, bool cached)
{
    size_t rows = dev->bits ? bits_block(dev->backend, dev->k_count)
                  : cached  ? CACHED_BLOCK
                            : streamed_block(dev->backend);
    return block_within_buffer(dev, rows);
}

static tdm_status open_device(tdm_backend *backend, const tdm_binary_data *data, size_t k_count,
                              const tdm_em_options *o, em_device *dev)
{
    memset(dev, 0, sizeof *dev);
    *dev = (em_device){.backend = backend, .data = data, .k_count = k_count, .cols = data->cols};
    bool cached = keep_on_device(dev, o->cache_bytes);
    dev->bits = use_bits(o);
    size_t block = o->block_rows ? o->block_rows : default_block(dev, cached);
    if (block > o->shard_rows)
        block = o->shard_rows; /* a block never spans two shards */
    dev->block = block < data->rows ? block : data->rows > 0 ? data->rows : 1;
    dev->shape = (tdm_bits_shape){.rows = dev->block,
                                  .cols = data->cols,
                                  .row_words = data->row_words,
                                  .components = k_count};
    dev->host = malloc(host_floats_needed(dev) * sizeof(float));
    if (dev->bits)
        dev->group_table = malloc((TDM_BITS_PATTERNS + 1) * k_count * sizeof(double));
    else
        for (unsigned byte = 0; byte < 256; byte++)
            for (unsigned bit = 0; bit < 8; bit++)
                dev->byte_floats[byte][bit] = (float)(byte >> bit & 1u);
    if (!dev->host || (dev->bits && !dev->group_table))
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "em: out of host memory");
    TDM_TRY(alloc_floats(backend, weight_floats(dev), &dev->weights));
    TDM_TRY(alloc_floats(backend, dev->block * k_count, &dev->scores));
    TDM_TRY(alloc_floats(backend, dev->block, &dev->lse));
    TDM_TRY(alloc_floats(backend, k_count * (dev->cols + 1), &dev->stats));
    TDM_TRY(alloc_floats(backend, dev->block, &dev->ones));
    TDM_TRY(tdm_fill(backend, (tdm_view){dev->ones, 0}, dev->block, 1.0f));
    return dev->bits ? place_words(dev, o->cache_bytes) : place_matrix(dev, cached);
}

/* One group's table in double: entry [p][k] is the sum of W[k][8g + j] over
 * the bits j set in p (columns past the last weigh 0); the group's
 * log(1 - p) are added to bias. The single-bit entries
 * are the weights; every other entry adds its lowest bit's entry to the entry
 * without that bit. */
static void build_group_table(em_device *dev, const double *p, size_t g, double *bias)
{
    size_t k_count = dev->k_count, cols = dev->cols;
    double *t = dev->group_table;
    for (size_t k = 0; k < k_count; k++)
        t[k] = 0.0;
    for (unsigned j = 0; j < TDM_BITS_GROUP; j++) {
        size_t col = g * TDM_BITS_GROUP + j;
        for (size_t k = 0; k < k_count; k++) {
            double q = col < cols ? p[k * cols + col] : 0.5, log_q1 = log1p(-q);
            t[(1u << j) * k_count + k] = col < cols ? log(q) - log_q1 : 0.0;
            bias[k] += col < cols ? log_q1 : 0.0;
        }
    }
    for (unsigned pattern = 3; pattern < TDM_BITS_PATTERNS; pattern++) {
        unsigned rest = pattern & (pattern - 1), lowest = pattern & ~rest;
        if (rest == 0)
            continue; /* a single bit: set above */
        for (size_t k = 0; k < k_count; k++)
            t[pattern * k_count + k] = t[rest * k_count + k] + t[lowest * k_count + k];
    }
}

/* The lookup table of W = log p - log(1 - p) for bits_scores, then b. */
static tdm_status upload_table(em_device *dev, const double *p, const double *pi)
{
    size_t k_count = dev->k_count, groups = tdm_bits_groups(&dev->shape);
    size_t entries = TDM_BITS_PATTERNS * k_count;
    double *bias = dev->group_table + entries; /* b = log pi + sum_d log(1 - p), in d order */
    for (size_t k = 0; k < k_count; k++)
        bias[k] = log(pi[k]);
    for (size_t g = 0; g < groups; g++) {
        build_group_table(dev, p, g, bias);
        for (size_t i = 0; i < entries; i++)
            dev->host[g * entries + i] = (float)dev->group_table[i];
    }
    for (size_t k = 0; k < k_count; k++)
        dev->host[groups * entries + k] = (float)bias[k];
    return tdm_buffer_upload(dev->weights, 0, dev->host,
                             (groups * entries + k_count) * sizeof(float));
}

/* W = log p - log(1 - p) and b = log pi + sum_d log(1 - p), uploaded (as a
 * lookup table for the bits method). */
static tdm_status upload_weights(em_device *dev, const double *p, const double *pi)
{
    size_t k_count = dev->k_count, cols = dev->cols;
    if (dev->bits)
        return upload_table(dev, p, pi);
    for (size_t k = 0; k < k_count; k++) {
        double bias = log(pi[k]);
        for (size_t d = 0; d < cols; d++) {
            double q = p[k * cols + d];
            dev->host[k * cols + d] = (float)(log(q) - log1p(-q));
            bias += log1p(-q);
        }
        dev->host[k_count * cols + k] = (float)bias;
    }
    return tdm_buffer_upload(dev->weights, 0, dev->host, k_count * (cols + 1) * sizeof(float));
}

/* E step of rows [first, first + count): responsibilities in dev->scores,
 * per-row log-likelihoods in dev->lse. */
/* The block's packed rows as a view of words on the device. */
static tdm_status block_words(em_device *dev, size_t first, size_t count, tdm_view *x)
{
    size_t words = dev->data->row_words;
    if (dev->words_all) {
        *x = (tdm_view){dev->words_all, 2 * first * words};
        return TDM_OK;
    }
    *x = (tdm_view){dev->x_block, 0};
    return tdm_buffer_upload(dev->x_block, 0, dev->data->bits + first * words,
                             count * words * sizeof(uint64_t));
}

/* scores = X W^T + b by lookup in the table, from the block's bits. */
static tdm_status bits_e_step(em_device *dev, size_t first, size_t count, tdm_view *x)
{
    TDM_TRY(block_words(dev, first, count, x));
    tdm_bits_shape shape = dev->shape;
    shape.rows = count;
    size_t table_floats = tdm_bits_groups(&shape) * TDM_BITS_PATTERNS * dev->k_count;
    TDM_TRY(tdm_bits_scores(dev->backend, &shape, *x, (tdm_view){dev->weights, 0},
                            (tdm_view){dev->weights, table_floats}, (tdm_view){dev->scores, 0}));
    return tdm_softmax_rows(dev->backend, count, dev->k_count, (tdm_view){dev->scores, 0},
                            (tdm_view){dev->lse, 0});
}

static tdm_status e_step_block(em_device *dev, size_t first, size_t count, tdm_view *x)
{
    size_t k_count = dev->k_count, cols = dev->cols;
    if (dev->bits)
        return bits_e_step(dev, first, count, x);
    if (dev->x_all) {
        *x = (tdm_view){dev->x_all, first * cols};
    } else {
        widen_rows(dev, first, count);
        TDM_TRY(tdm_buffer_upload(dev->x_block, 0, dev->host, count * cols * sizeof(float)));
        *x = (tdm_view){dev->x_block, 0};
    }
    tdm_view scores = {dev->scores, 0};
    /* scores [count][K] = X [count][D] * W^T + b */
    tdm_sgemm_args e = tdm_gemm_args(TDM_NO_TRANS, TDM_TRANS, count, k_count, cols, *x, cols,
                                     (tdm_view){dev->weights, 0}, cols, 0.0f, scores, k_count);
    TDM_TRY(tdm_sgemm(dev->backend, &e));
    TDM_TRY(tdm_bias_add(dev->backend, count, k_count, 1, (tdm_view){dev->weights, k_count * cols},
                         scores));
    return tdm_softmax_rows(dev->backend, count, k_count, scores, (tdm_view){dev->lse, 0});
}

/* S = eta^T X and N = eta^T 1 for the block, in dev->stats: two GEMMs, or
 * bits_sums from the packed rows. */
static tdm_status block_stats(em_device *dev, size_t count, tdm_view x)
{
    size_t k_count = dev->k_count, cols = dev->cols;
    tdm_view eta = {dev->scores, 0};
    if (dev->bits) {
        tdm_bits_shape shape = dev->shape;
        shape.rows = count;
        return tdm_bits_sums(dev->backend, &shape, x, eta, (tdm_view){dev->stats, 0});
    }
    tdm_sgemm_args s = tdm_gemm_args(TDM_TRANS, TDM_NO_TRANS, k_count, cols, count, eta, k_count, x,
                                     cols, 0.0f, (tdm_view){dev->stats, 0}, cols);
    tdm_sgemm_args n =
        tdm_gemm_args(TDM_TRANS, TDM_NO_TRANS, k_count, 1, count, eta, k_count,
                      (tdm_view){dev->ones, 0}, 1, 0.0f, (tdm_view){dev->stats, k_count * cols}, 1);
    TDM_TRY(tdm_sgemm(dev->backend, &s));
    return tdm_sgemm(dev->backend, &n);
}

/* s += eta^T X and n += eta^T 1 for the block, in double. */
static tdm_status m_sums_block(em_device *dev, size_t count, tdm_view x, double *s, double *n)
{
    size_t k_count = dev->k_count, cols = dev->cols;
    TDM_TRY(block_stats(dev, count, x));
    TDM_TRY(tdm_buffer_download(dev->stats, 0, dev->host, k_count * (cols + 1) * sizeof(float)));
    for (size_t i = 0; i < k_count * cols; i++)
        s[i] += dev->host[i];
    for (size_t k = 0; k < k_count; k++)
        n[k] += dev->host[k_count * cols + k];
    return TDM_OK;
}

/* What a pass collects; any may be NULL. Per shard of this process's rows,
 * shard_sums holds S (K x D), N (K) and the log-likelihood with `sums`,
 * else the log-likelihood alone. */
typedef struct pass_outputs {
    double *shard_sums;
    bool sums;
    double *row_log_likelihood; /* n */
    float *responsibilities;    /* n x K */
} pass_outputs;

static size_t shard_stride(size_t k_count, size_t cols, bool sums)
{
    return sums ? k_count * (cols + 1) + 1 : 1;
}

/* One block: the E step, its sums into `shard` (when wanted) and its rows'
 * outputs. */
static tdm_status pass_block(em_device *dev, size_t first, size_t count, pass_outputs *out,
                             double *shard, float *lse)
{
    size_t k_count = dev->k_count;
    tdm_view x;
    TDM_TRY(e_step_block(dev, first, count, &x));
    if (shard && out->sums)
        TDM_TRY(m_sums_block(dev, count, x, shard, shard + k_count * dev->cols));
    if (out->responsibilities)
        TDM_TRY(tdm_buffer_download(dev->scores, 0, out->responsibilities + first * k_count,
                                    count * k_count * sizeof(float)));
    TDM_TRY(tdm_buffer_download(dev->lse, 0, lse, count * sizeof(float)));
    double *log_likelihood = shard ? shard + shard_stride(k_count, dev->cols, out->sums) - 1 : NULL;
    for (size_t i = 0; i < count; i++) {
        if (log_likelihood)
            *log_likelihood += lse[i];
        if (out->row_log_likelihood)
            out->row_log_likelihood[first + i] = lse[i];
    }
    return TDM_OK;
}

/* Every row of this process, shard by shard, block by block: a block ends
 * where its shard does. */
static tdm_status em_pass(em_device *dev, const double *p, const double *pi, size_t shard_rows,
                          pass_outputs *out)
{
    size_t rows = dev->data->rows, stride = shard_stride(dev->k_count, dev->cols, out->sums);
    float *lse = malloc(dev->block * sizeof(float));
    if (!lse)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "em: out of host memory");
    tdm_status status = upload_weights(dev, p, pi);
    for (size_t start = 0; status == TDM_OK && start < rows; start += shard_rows) {
        size_t end = rows - start < shard_rows ? rows : start + shard_rows;
        double *shard = out->shard_sums ? out->shard_sums + start / shard_rows * stride : NULL;
        if (shard)
            memset(shard, 0, stride * sizeof(double));
        for (size_t first = start; status == TDM_OK && first < end; first += dev->block) {
            size_t count = end - first < dev->block ? end - first : dev->block;
            status = pass_block(dev, first, count, out, shard, lse);
        }
    }
    free(lse);
    return status;
}

/* ---------- fitting ---------- */

static double log_prior(const double *p, size_t count, const tdm_em_options *o)
{
    double sum = 0.0;
    for (size_t i = 0; i < count; i++)
        sum += (o->prior_a - 1.0) * log(p[i]) + (o->prior_b - 1.0) * log1p(-p[i]);
    return sum;
}

static tdm_status check_fit(const em_part *part, const tdm_em_options *o)
{
    size_t rows = part->total_rows;
    if (rows == 0 || part->data->cols == 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "em: the data has no rows or no columns");
    if (o->components == 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "em: the number of components K must be > 0");
    if (o->components > rows)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "em: K = %zu components for %zu rows: K must not exceed the rows",
                        o->components, rows);
    if (o->max_iter == 0 || o->n_init == 0 || o->shard_rows == 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "em: max_iter, n_init and shard_rows must be > 0");
    if (!(o->prior_a >= 1.0) || !(o->prior_b >= 1.0) || !(o->clamp > 0.0 && o->clamp < 0.5) ||
        !(o->tol >= 0.0))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "em: the prior needs a, b >= 1, the clamp (0, 0.5) and tol >= 0");
    return TDM_OK;
}

enum { PART_TOTAL, PART_COLS, PART_SHARD_ROWS, PART_COMPONENTS, PART_FIRST, PART_ROWS, PART_KEYS };

/* Every process must hold its own share of the same matrix and fit it with
 * the same K and shards: checked on all of them alike, so all fail together. */
static tdm_status check_part(const em_part *part, const tdm_em_options *o)
{
    const tdm_binary_data *data = part->data;
    int size = part->comm->size;
    double mine[PART_KEYS] = {(double)part->total_rows, (double)data->cols,
                              (double)o->shard_rows,    (double)o->components,
                              (double)part->first_row,  (double)data->rows};
    double *all = malloc((size_t)size * sizeof mine);
    if (!all)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "em: out of host memory");
    tdm_status status = tdm_em_allgather_doubles(part, mine, PART_KEYS, all);
    for (int r = 0; status == TDM_OK && r < size; r++) {
        const double *theirs = all + (size_t)r * PART_KEYS;
        size_t first = 0, count = 0;
        if (memcmp(theirs, all, PART_FIRST * sizeof(double)) != 0)
            status = TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                              "em: process %d fits %.0f rows of %.0f columns in shards of %.0f "
                              "with K = %.0f, process 0 %.0f rows of %.0f in %.0f with K = %.0f",
                              r, theirs[0], theirs[1], theirs[2], theirs[3], all[0], all[1], all[2],
                              all[3]);
        if (status != TDM_OK)
            break;
        tdm_em_share(part->total_rows, o->shard_rows ? o->shard_rows : 1, r, size, &first, &count);
        if (theirs[PART_FIRST] != (double)first || theirs[PART_ROWS] != (double)count)
            status = TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                              "em: process %d holds rows %.0f..%.0f, but its share is %zu..%zu "
                              "(tdm_em_share)",
                              r, theirs[PART_FIRST], theirs[PART_FIRST] + theirs[PART_ROWS], first,
                              first + count);
    }
    free(all);
    return status;
}

typedef struct fit_state {
    em_device *dev;
    em_part part;
    const tdm_em_options *options;
    double *p, *pi, *row_ll;
    double *partials; /* this process's shards' sums */
    double *totals;   /* all shards': S, N, then the log-likelihood */
    em_sums sums;     /* into totals */
    uint64_t *row;    /* one row's words */
    bool *empty;
} fit_state;

/* The worst-explained row after (floor, after_row) in (log-likelihood,
 * row) order, over every process: each offers its own, the least wins. */
static tdm_status worst_row(fit_state *f, double floor, size_t after_row, double *worst_ll,
                            size_t *worst)
{
    const em_part *part = &f->part;
    double mine[2] = {INFINITY, 0.0};
    for (size_t i = 0; i < part->data->rows; i++) {
        double ll = f->row_ll[i];
        size_t row = part->first_row + i;
        bool after = ll > floor || (ll == floor && row > after_row); /* SIZE_MAX: none used */
        if (after && ll < mine[0]) {
            mine[0] = ll;
            mine[1] = (double)row;
        }
    }
    int size = part->comm->size;
    double *all = malloc(2 * (size_t)size * sizeof(double));
    if (!all)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "em: out of host memory");
    tdm_status status = tdm_em_allgather_doubles(part, mine, 2, all);
    *worst_ll = INFINITY;
    *worst = 0; /* no row left: row 0 */
    for (int r = 0; status == TDM_OK && r < size; r++)
        if (all[2 * r] < *worst_ll) {
            *worst_ll = all[2 * r];
            *worst = (size_t)all[2 * r + 1];
        }
    free(all);
    return status;
}

/* Empty components take the rows the model explains worst, one each. */
static tdm_status reseed_empty(fit_state *f, size_t *reseeded)
{
    const tdm_em_options *o = f->options;
    size_t k_count = o->components, last_used = SIZE_MAX, cols = f->part.data->cols;
    double total = 0.0, floor = -INFINITY;
    for (size_t k = 0; k < k_count; k++) {
        if (f->empty[k]) {
            TDM_TRY(worst_row(f, floor, last_used, &floor, &last_used));
            TDM_TRY(tdm_em_fetch_row(&f->part, last_used, f->row));
            tdm_em_seed_component(f->row, cols, f->part.total_rows, k, o, f->p, f->pi);
            (*reseeded)++;
        }
        total += f->pi[k];
    }
    for (size_t k = 0; k < k_count; k++)
        f->pi[k] /= total;
    return TDM_OK;
}

/* A pass over every process's rows: the shards' sums (or log-likelihood
 * alone) added in order into f->totals; with sums, the rows'
 * log-likelihoods too, for re-seeding. */
static tdm_status global_pass(fit_state *f, bool sums)
{
    pass_outputs out = {
        .shard_sums = f->partials, .sums = sums, .row_log_likelihood = sums ? f->row_ll : NULL};
    TDM_TRY(em_pass(f->dev, f->p, f->pi, f->options->shard_rows, &out));
    size_t stride = shard_stride(f->options->components, f->part.data->cols, sums);
    return tdm_em_sum_shards(&f->part, f->partials, stride, f->totals);
}

/* EM from the current p and pi until tol or max_iter; fills r's history. */
static tdm_status iterate(fit_state *f, size_t restart, tdm_em_result *r)
{
    const tdm_em_options *o = f->options;
    size_t k_count = o->components, cols = f->part.data->cols, n = f->part.total_rows;
    for (size_t it = 0; it < o->max_iter; it++) {
        TDM_TRY(global_pass(f, true));
        double ll = f->totals[k_count * (cols + 1)];
        r->history[it] = ll / (double)n;
        r->objective[it] = (ll + log_prior(f->p, k_count * cols, o)) / (double)n;
        r->iterations = it + 1;
        if (o->on_iteration)
            o->on_iteration(o->user, restart, it + 1, r->history[it]);
        if (!isfinite(ll))
            return TDM_FAIL(TDM_ERR_NUMERIC, "em: the log-likelihood is %g at iteration %zu", ll,
                            it + 1);
        if (tdm_em_m_step(&f->sums, n, k_count, cols, o, f->p, f->pi, f->empty) > 0)
            TDM_TRY(reseed_empty(f, &r->reseeded));
        if (it > 0 && fabs(r->history[it] - r->history[it - 1]) < o->tol) {
            r->converged = true;
            break;
        }
    }
    TDM_TRY(global_pass(f, false));
    r->log_likelihood = f->totals[0];
    return TDM_OK;
}

static tdm_status alloc_result(size_t k_count, size_t cols, size_t max_iter, tdm_em_result *r)
{
    memset(r, 0, sizeof *r);
    r->components = k_count;
    r->cols = cols;
    r->p = malloc(k_count * cols * sizeof(float));
    r->pi = malloc(k_count * sizeof(float));
    r->history = calloc(max_iter, sizeof(double));
    r->objective = calloc(max_iter, sizeof(double));
    if (!r->p || !r->pi || !r->history || !r->objective) {
        tdm_em_result_free(r);
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "em: out of host memory");
    }
    return TDM_OK;
}

static void store_parameters(const fit_state *f, tdm_em_result *r)
{
    for (size_t i = 0; i < r->components * r->cols; i++)
        r->p[i] = (float)f->p[i];
    for (size_t k = 0; k < r->components; k++)
        r->pi[k] = (float)f->pi[k];
}

/* Restart `index`: its own seed, its own EM run; kept in best if better. */
static tdm_status restart(fit_state *f, size_t index, tdm_em_result *best)
{
    tdm_em_result run;
    TDM_TRY(alloc_result(f->options->components, f->part.data->cols, f->options->max_iter, &run));
    tdm_rng rng = tdm_rng_skip((tdm_rng){f->options->seed}, index + 1);
    tdm_rng_next(&rng);
    tdm_status status = tdm_em_initialize(&f->part, f->options, &rng, f->p, f->pi);
    if (status == TDM_OK)
        status = iterate(f, index, &run);
    if (status == TDM_OK && (index == 0 || run.log_likelihood > best->log_likelihood)) {
        store_parameters(f, &run);
        run.best_init = index;
        tdm_em_result_free(best);
        *best = run;
        return TDM_OK;
    }
    tdm_em_result_free(&run);
    return status;
}

/* The host arrays of a fit, in one allocation. */
static tdm_status alloc_state(fit_state *f)
{
    const tdm_binary_data *data = f->part.data;
    size_t k_count = f->options->components, cols = data->cols;
    size_t stride = shard_stride(k_count, cols, true), shards = tdm_em_local_shards(&f->part);
    size_t doubles = k_count * cols + k_count + stride + data->rows + shards * stride;
    double *block = malloc(doubles * sizeof(double));
    f->row = malloc(data->row_words * sizeof(uint64_t));
    f->empty = malloc(k_count * sizeof(bool));
    if (!block || !f->row || !f->empty) {
        free(block);
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "em: out of host memory");
    }
    f->p = block;
    f->pi = f->p + k_count * cols;
    f->totals = f->pi + k_count;
    f->sums = (em_sums){.s = f->totals, .n = f->totals + k_count * cols};
    f->row_ll = f->totals + stride;
    f->partials = f->row_ll + data->rows;
    return TDM_OK;
}

static tdm_status fit(tdm_backend *backend, const em_part *part, const tdm_em_options *o,
                      tdm_em_result *result)
{
    memset(result, 0, sizeof *result);
    TDM_TRY(check_part(part, o));
    TDM_TRY(check_fit(part, o));
    em_device dev;
    memset(&dev, 0, sizeof dev);
    fit_state f = {.dev = &dev, .part = *part, .options = o};
    f.part.threads = tdm_backend_host_threads(backend);
    tdm_status status = alloc_state(&f);
    if (status == TDM_OK)
        status = open_device(backend, part->data, o->components, o, &dev);
    for (size_t r = 0; status == TDM_OK && r < o->n_init; r++)
        status = restart(&f, r, result);
    free_device(&dev);
    free(f.p);
    free(f.row);
    free(f.empty);
    if (status != TDM_OK)
        tdm_em_result_free(result);
    return status;
}

tdm_status tdm_em_fit_distributed(tdm_backend *backend, tdm_comm *comm, const tdm_binary_data *data,
                                  const tdm_em_options *o, tdm_em_result *result)
{
    em_part part = {.data = data,
                    .comm = comm,
                    .first_row = data->first_row,
                    .total_rows = data->total_rows ? data->total_rows : data->rows,
                    .shard_rows = o->shard_rows};
    return fit(backend, &part, o, result);
}

/* The rows of data alone, whatever larger matrix they may be part of. */
tdm_status tdm_em_fit(tdm_backend *backend, const tdm_binary_data *data, const tdm_em_options *o,
                      tdm_em_result *result)
{
    tdm_comm *single = NULL;
    memset(result, 0, sizeof *result);
    TDM_TRY(tdm_comm_single(&single));
    em_part part = {
        .data = data, .comm = single, .total_rows = data->rows, .shard_rows = o->shard_rows};
    tdm_status status = fit(backend, &part, o, result);
    tdm_comm_free(single);
    return status;
}

/* ---------- using a fit ---------- */

static tdm_status predict_pass(tdm_backend *backend, const tdm_binary_data *data,
                               const tdm_em_result *r, pass_outputs *out)
{
    if (data->cols != r->cols)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "em: the data has %zu columns, the model %zu",
                        data->cols, r->cols);
    tdm_em_options o;
    tdm_em_options_init(&o);
    size_t k_count = r->components;
    double *params = malloc((k_count * r->cols + k_count) * sizeof(double));
    em_device dev;
    memset(&dev, 0, sizeof dev);
    tdm_status status = params ? open_device(backend, data, k_count, &o, &dev)
                               : TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "em: out of host memory");
    for (size_t i = 0; params && i < k_count * r->cols; i++)
        params[i] = r->p[i];
    for (size_t k = 0; params && k < k_count; k++)
        params[k_count * r->cols + k] = r->pi[k];
    if (status == TDM_OK)
        status = em_pass(&dev, params, params + k_count * r->cols, o.shard_rows, out);
    free_device(&dev);
    free(params);
    return status;
}

tdm_status tdm_em_score_samples(tdm_backend *backend, const tdm_binary_data *data,
                                const tdm_em_result *r, double *out)
{
    pass_outputs want = {.row_log_likelihood = out};
    return predict_pass(backend, data, r, &want);
}

tdm_status tdm_em_predict_proba(tdm_backend *backend, const tdm_binary_data *data,
                                const tdm_em_result *r, float *out)
{
    pass_outputs want = {.responsibilities = out};
    return predict_pass(backend, data, r, &want);
}

tdm_status tdm_em_predict(tdm_backend *backend, const tdm_binary_data *data, const tdm_em_result *r,
                          int32_t *out)
{
    float *proba = malloc(data->rows * r->components * sizeof(float) + 1);
    if (!proba)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "em: out of host memory");
    tdm_status status = tdm_em_predict_proba(backend, data, r, proba);
    for (size_t i = 0; status == TDM_OK && i < data->rows; i++) {
        size_t best = 0;
        for (size_t k = 1; k < r->components; k++)
            best = proba[i * r->components + k] > proba[i * r->components + best] ? k : best;
        out[i] = (int32_t)best;
    }
    free(proba);
    return status;
}

static double free_parameters(const tdm_em_result *r)
{
    return (double)(r->components * r->cols + r->components - 1);
}

double tdm_em_bic(const tdm_em_result *r, size_t rows)
{
    return -2.0 * r->log_likelihood + free_parameters(r) * log((double)rows);
}

double tdm_em_aic(const tdm_em_result *r, size_t rows)
{
    (void)rows; /* AIC does not depend on n; the argument mirrors tdm_em_bic */
    return -2.0 * r->log_likelihood + 2.0 * free_parameters(r);
}

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
                    "prior_b clamp block_rows method)",
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
    BITS_BLOCK = 8192 /* rows per bits_scores / bits_sums call */
};

/* Streamed blocks give each host thread 256 rows (800 KB of floats at
 * D = 784, about an L2 cache), so a block stays in cache for both GEMMs
 * however many threads share it. */
static size_t streamed_block(const tdm_backend *backend)
{
    size_t rows = STREAMED_ROWS_PER_THREAD * tdm_backend_host_threads(backend);
    return rows > STREAMED_BLOCK_MIN ? rows : STREAMED_BLOCK_MIN;
}

static bool keep_on_device(const em_device *dev, size_t cache_bytes)
{
    size_t rows = dev->data->rows, cols = dev->cols;
    return !tdm_backend_uses_host_memory(dev->backend) &&
           rows <= cache_bytes / sizeof(float) / cols;
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
    if (tdm_backend_uses_host_memory(dev->backend) || data->rows > cache_bytes / bytes)
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

static tdm_status open_device(tdm_backend *backend, const tdm_binary_data *data, size_t k_count,
                              const tdm_em_options *o, em_device *dev)
{
    memset(dev, 0, sizeof *dev);
    *dev = (em_device){.backend = backend, .data = data, .k_count = k_count, .cols = data->cols};
    bool cached = keep_on_device(dev, o->cache_bytes);
    dev->bits = use_bits(o);
    size_t block = o->block_rows ? o->block_rows
                   : dev->bits   ? BITS_BLOCK
                   : cached      ? CACHED_BLOCK
                                 : streamed_block(backend);
    dev->block = block < data->rows ? block : data->rows;
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

/* S += eta^T X and N += eta^T 1 for the block, in double. */
static tdm_status m_sums_block(em_device *dev, size_t count, tdm_view x, em_sums *sums)
{
    size_t k_count = dev->k_count, cols = dev->cols;
    TDM_TRY(block_stats(dev, count, x));
    TDM_TRY(tdm_buffer_download(dev->stats, 0, dev->host, k_count * (cols + 1) * sizeof(float)));
    for (size_t i = 0; i < k_count * cols; i++)
        sums->s[i] += dev->host[i];
    for (size_t k = 0; k < k_count; k++)
        sums->n[k] += dev->host[k_count * cols + k];
    return TDM_OK;
}

/* What a pass collects; any may be NULL. */
typedef struct pass_outputs {
    em_sums *sums;
    double *row_log_likelihood; /* n */
    float *responsibilities;    /* n x K */
} pass_outputs;

static tdm_status em_pass(em_device *dev, const double *p, const double *pi, pass_outputs *out,
                          double *log_likelihood)
{
    size_t rows = dev->data->rows, k_count = dev->k_count;
    float *lse = malloc(dev->block * sizeof(float));
    if (!lse)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "em: out of host memory");
    if (out->sums) {
        memset(out->sums->s, 0, k_count * dev->cols * sizeof(double));
        memset(out->sums->n, 0, k_count * sizeof(double));
    }
    tdm_status status = upload_weights(dev, p, pi);
    *log_likelihood = 0.0;
    for (size_t first = 0; status == TDM_OK && first < rows; first += dev->block) {
        size_t count = rows - first < dev->block ? rows - first : dev->block;
        tdm_view x;
        status = e_step_block(dev, first, count, &x);
        if (status == TDM_OK && out->sums)
            status = m_sums_block(dev, count, x, out->sums);
        if (status == TDM_OK && out->responsibilities)
            status = tdm_buffer_download(dev->scores, 0, out->responsibilities + first * k_count,
                                         count * k_count * sizeof(float));
        if (status == TDM_OK)
            status = tdm_buffer_download(dev->lse, 0, lse, count * sizeof(float));
        for (size_t i = 0; status == TDM_OK && i < count; i++) {
            *log_likelihood += lse[i];
            if (out->row_log_likelihood)
                out->row_log_likelihood[first + i] = lse[i];
        }
    }
    free(lse);
    return status;
}

/* ---------- fitting ---------- */

static tdm_status check_fit(const tdm_binary_data *data, const tdm_em_options *o)
{
    if (data->rows == 0 || data->cols == 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "em: the data has no rows or no columns");
    if (o->components == 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "em: the number of components K must be > 0");
    if (o->components > data->rows)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "em: K = %zu components for %zu rows: K must not exceed the rows",
                        o->components, data->rows);
    if (o->max_iter == 0 || o->n_init == 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "em: max_iter and n_init must be > 0");
    if (!(o->prior_a >= 1.0) || !(o->prior_b >= 1.0) || !(o->clamp > 0.0 && o->clamp < 0.5) ||
        !(o->tol >= 0.0))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "em: the prior needs a, b >= 1, the clamp (0, 0.5) and tol >= 0");
    return TDM_OK;
}

static double log_prior(const double *p, size_t count, const tdm_em_options *o)
{
    double sum = 0.0;
    for (size_t i = 0; i < count; i++)
        sum += (o->prior_a - 1.0) * log(p[i]) + (o->prior_b - 1.0) * log1p(-p[i]);
    return sum;
}

/* Empty components take the rows the model explains worst, one each. */
static void reseed_empty(const tdm_binary_data *data, const tdm_em_options *o, const double *row_ll,
                         const bool *empty, double *p, double *pi, size_t *reseeded)
{
    size_t k_count = o->components, last_used = SIZE_MAX;
    double total = 0.0, floor = -INFINITY;
    for (size_t k = 0; k < k_count; k++) {
        if (empty[k]) {
            size_t worst = 0;
            double worst_ll = INFINITY;
            for (size_t i = 0; i < data->rows; i++) {
                bool after = row_ll[i] > floor || (row_ll[i] == floor && i > last_used);
                if (after && row_ll[i] < worst_ll) {
                    worst = i;
                    worst_ll = row_ll[i];
                }
            }
            floor = worst_ll;
            last_used = worst;
            tdm_em_seed_component(data, worst, k, o, p, pi);
            (*reseeded)++;
        }
        total += pi[k];
    }
    for (size_t k = 0; k < k_count; k++)
        pi[k] /= total;
}

typedef struct fit_state {
    em_device *dev;
    const tdm_binary_data *data;
    const tdm_em_options *options;
    double *p, *pi, *row_ll;
    em_sums sums;
    bool *empty;
} fit_state;

/* EM from the current p and pi until tol or max_iter; fills r's history. */
static tdm_status iterate(fit_state *f, size_t restart, tdm_em_result *r)
{
    const tdm_em_options *o = f->options;
    size_t k_count = o->components, cols = f->data->cols, n = f->data->rows;
    pass_outputs out = {.sums = &f->sums, .row_log_likelihood = f->row_ll};
    for (size_t it = 0; it < o->max_iter; it++) {
        double ll = 0.0;
        TDM_TRY(em_pass(f->dev, f->p, f->pi, &out, &ll));
        r->history[it] = ll / (double)n;
        r->objective[it] = (ll + log_prior(f->p, k_count * cols, o)) / (double)n;
        r->iterations = it + 1;
        if (o->on_iteration)
            o->on_iteration(o->user, restart, it + 1, r->history[it]);
        if (!isfinite(ll))
            return TDM_FAIL(TDM_ERR_NUMERIC, "em: the log-likelihood is %g at iteration %zu", ll,
                            it + 1);
        if (tdm_em_m_step(&f->sums, n, k_count, cols, o, f->p, f->pi, f->empty) > 0)
            reseed_empty(f->data, o, f->row_ll, f->empty, f->p, f->pi, &r->reseeded);
        if (it > 0 && fabs(r->history[it] - r->history[it - 1]) < o->tol) {
            r->converged = true;
            break;
        }
    }
    pass_outputs none = {0};
    return em_pass(f->dev, f->p, f->pi, &none, &r->log_likelihood);
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
    TDM_TRY(alloc_result(f->options->components, f->data->cols, f->options->max_iter, &run));
    tdm_rng rng = {f->options->seed + 0x9E3779B97F4A7C15ull * (index + 1)};
    tdm_rng_next(&rng);
    tdm_status status = tdm_em_initialize(f->data, f->options, &rng, f->p, f->pi);
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

tdm_status tdm_em_fit(tdm_backend *backend, const tdm_binary_data *data, const tdm_em_options *o,
                      tdm_em_result *result)
{
    memset(result, 0, sizeof *result);
    TDM_TRY(check_fit(data, o));
    size_t k_count = o->components, cols = data->cols;
    em_device dev;
    memset(&dev, 0, sizeof dev);
    fit_state f = {.dev = &dev, .data = data, .options = o};
    double *block = malloc((2 * k_count * cols + 2 * k_count + data->rows) * sizeof(double));
    f.empty = malloc(k_count * sizeof(bool));
    tdm_status status = block && f.empty
                            ? open_device(backend, data, k_count, o, &dev)
                            : TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "em: out of host memory");
    if (block) {
        f.p = block;
        f.sums.s = block + k_count * cols;
        f.pi = f.sums.s + k_count * cols;
        f.sums.n = f.pi + k_count;
        f.row_ll = f.sums.n + k_count;
    }
    for (size_t r = 0; status == TDM_OK && r < o->n_init; r++)
        status = restart(&f, r, result);
    free_device(&dev);
    free(block);
    free(f.empty);
    if (status != TDM_OK)
        tdm_em_result_free(result);
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
    double ll = 0.0;
    for (size_t i = 0; params && i < k_count * r->cols; i++)
        params[i] = r->p[i];
    for (size_t k = 0; params && k < k_count; k++)
        params[k_count * r->cols + k] = r->pi[k];
    if (status == TDM_OK)
        status = em_pass(&dev, params, params + k_count * r->cols, out, &ll);
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

/* The M step on host sums, and the initialisations: k-means++ or random
 * rows as centres followed by a hard assignment and one M step, random
 * responsibilities followed by one M step, or given parameters. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "em/em_internal.h"

static double clamp(double value, double low, double high)
{
    return value < low ? low : value > high ? high : value;
}

size_t tdm_em_m_step(const em_sums *sums, size_t rows, size_t k_count, size_t cols,
                     const tdm_em_options *o, double *p, double *pi, bool *empty)
{
    size_t empties = 0;
    double total = 0.0;
    for (size_t k = 0; k < k_count; k++)
        total += sums->n[k];
    for (size_t k = 0; k < k_count; k++) {
        double weight = sums->n[k];
        empty[k] = weight < TDM_EM_EMPTY_WEIGHT;
        empties += empty[k];
        pi[k] = weight / (total > 0.0 ? total : (double)rows);
        if (empty[k])
            continue;
        double denominator = weight + o->prior_a + o->prior_b - 2.0;
        for (size_t d = 0; d < cols; d++) {
            double value = (sums->s[k * cols + d] + o->prior_a - 1.0) / denominator;
            p[k * cols + d] = clamp(value, o->clamp, 1.0 - o->clamp);
        }
    }
    return empties;
}

void tdm_em_seed_component(const uint64_t *words, size_t cols, size_t rows, size_t k,
                           const tdm_em_options *o, double *p, double *pi)
{
    double denominator = 1.0 + o->prior_a + o->prior_b - 2.0;
    for (size_t d = 0; d < cols; d++) {
        double x = (double)(words[d / 64] >> (d % 64) & 1u);
        double value = denominator > 0.0 ? (x + o->prior_a - 1.0) / denominator : x;
        p[k * cols + d] = clamp(value, o->clamp, 1.0 - o->clamp);
    }
    pi[k] = 1.0 / (double)rows;
}

/* The row loops below compiled twice, with the POPCNT instruction and
 * without (Debian builds for baseline x86-64, where __builtin_popcountll is
 * a call into libgcc), the clone for the CPU picked when the library loads. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define POPCOUNT_CLONES __attribute__((target_clones("popcnt", "default")))
#else
#define POPCOUNT_CLONES
#endif

/* Rows a host pass gives each thread at least. */
enum { ROWS_PER_THREAD = 4096 };

/* The threads of a pass over `rows` rows, at most `most` (and at least 1). */
static int team_for(const em_part *part, size_t rows, size_t most)
{
    size_t team = rows / ROWS_PER_THREAD, threads = part->threads > 0 ? part->threads : 1;
    team = team < threads ? team : threads;
    team = team < most ? team : most;
    return (int)(team > 1 ? team : 1);
}

/* The number of columns where two rows differ (padding bits are 0 in both). */
static inline __attribute__((always_inline)) size_t hamming(const uint64_t *x, const uint64_t *y,
                                                            size_t words)
{
    size_t distance = 0;
    for (size_t w = 0; w < words; w++)
        distance += (size_t)__builtin_popcountll(x[w] ^ y[w]);
    return distance;
}

static const uint64_t *row_words(const tdm_binary_data *data, size_t row)
{
    return data->bits + row * data->row_words;
}

/* sums[c] += scale for every column c set in the row. */
static void add_row_bits(const tdm_binary_data *data, size_t row, double scale, double *sums)
{
    const uint64_t *words = row_words(data, row);
    for (size_t w = 0; w < data->row_words; w++)
        for (uint64_t bits = words[w]; bits; bits &= bits - 1)
            sums[w * 64 + (size_t)__builtin_ctzll(bits)] += scale;
}

static double uniform(tdm_rng *rng)
{
    return (double)(tdm_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

/* Every process's `local` total (an integer: every sum below 2^53 is
 * exact): the sum of the earlier processes' and of all. */
static tdm_status process_totals(const em_part *part, double local, double *before, double *total)
{
    int size = part->comm->size;
    double *all = malloc((size_t)size * sizeof(double));
    if (!all)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "em: out of host memory");
    tdm_status status = tdm_em_allgather_doubles(part, &local, 1, all);
    *before = *total = 0.0;
    for (int r = 0; status == TDM_OK && r < size; r++) {
        *before += r < part->comm->rank ? all[r] : 0.0;
        *total += all[r];
    }
    free(all);
    return status;
}

/* The first global row whose running sum of `weights` (integers) passes
 * target, or the last row. Each process scans its rows from `before`, the
 * sum of the earlier processes' weights; the first process with a row wins. */
static tdm_status first_past(const em_part *part, const double *weights, double before,
                             double target, size_t *pick)
{
    int size = part->comm->size;
    double *all = malloc((size_t)size * sizeof(double)), found = INFINITY;
    if (!all)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "em: out of host memory");
    for (size_t i = 0; i < part->data->rows; i++) {
        before += weights[i];
        if (before > target) {
            found = (double)(part->first_row + i);
            break;
        }
    }
    tdm_status status = tdm_em_allgather_doubles(part, &found, 1, all);
    *pick = part->total_rows - 1;
    for (int r = 0; status == TDM_OK && r < size; r++)
        if (all[r] < INFINITY) {
            *pick = (size_t)all[r];
            break;
        }
    free(all);
    return status;
}

/* nearest[i] = min(nearest[i], d^2), d the Hamming distance of row i to
 * the centre, for rows [first, last); returns their sum. */
POPCOUNT_CLONES static uint64_t nearer(const tdm_binary_data *data, const uint64_t *centre,
                                       size_t first, size_t last, double *nearest)
{
    uint64_t sum = 0;
    for (size_t i = first; i < last; i++) {
        double d = (double)hamming(row_words(data, i), centre, data->row_words);
        nearest[i] = fmin(nearest[i], d * d);
        sum += (uint64_t)nearest[i];
    }
    return sum;
}

/* nearer over all rows, a range a thread; the sum in integers, so exact and
 * the same on any number of threads (d^2 <= D^2: below 2^64 for any n * D^2
 * a machine holds). */
static double all_nearer(const em_part *part, const uint64_t *centre, double *nearest)
{
    size_t n = part->data->rows;
    int team = team_for(part, n, SIZE_MAX);
    uint64_t total = 0;
#pragma omp parallel for schedule(static) num_threads(team) reduction(+ : total)
    for (int t = 0; t < team; t++)
        total += nearer(part->data, centre, n * (size_t)t / (size_t)team,
                        n * (size_t)(t + 1) / (size_t)team, nearest);
    return (double)total;
}

/* k-means++: the first centre uniformly, each next one with probability
 * proportional to the squared distance to the nearest centre so far. The
 * centres are rows' words: a centre may be another process's row. */
static tdm_status kmeans_plus_plus(const em_part *part, size_t k_count, tdm_rng *rng,
                                   double *nearest, uint64_t *centres)
{
    const tdm_binary_data *data = part->data;
    size_t n = data->rows, words = data->row_words, total_rows = part->total_rows;
    TDM_TRY(tdm_em_fetch_row(part, (size_t)(tdm_rng_next(rng) % total_rows), centres));
    for (size_t i = 0; i < n; i++)
        nearest[i] = INFINITY;
    for (size_t k = 1; k < k_count; k++) {
        double local = all_nearer(part, centres + (k - 1) * words, nearest), before = 0.0,
               total = 0.0;
        TDM_TRY(process_totals(part, local, &before, &total));
        double target = uniform(rng) * total;
        size_t pick = (size_t)(tdm_rng_next(rng) % total_rows); /* all rows on centres: any row */
        if (total > 0.0)
            TDM_TRY(first_past(part, nearest, before, target, &pick));
        TDM_TRY(tdm_em_fetch_row(part, pick, centres + k * words));
    }
    return TDM_OK;
}

/* k distinct rows by a partial Fisher-Yates shuffle of all rows (the same
 * on every process), fetched from the processes that hold them. */
static tdm_status random_rows(const em_part *part, size_t k_count, tdm_rng *rng, uint64_t *centres)
{
    size_t n = part->total_rows, *order = malloc(n * sizeof(size_t));
    if (!order)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "em: out of host memory");
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    tdm_status status = TDM_OK;
    for (size_t k = 0; k < k_count && status == TDM_OK; k++) {
        size_t j = k + (size_t)(tdm_rng_next(rng) % (n - k)), swap = order[k];
        order[k] = order[j];
        order[j] = swap;
        status = tdm_em_fetch_row(part, order[k], centres + k * part->data->row_words);
    }
    free(order);
    return status;
}

/* Bit j of a byte as lane j, 0 or 1: a row's bits counted 8 columns at a
 * time, without a branch a bit. */
typedef struct byte_lanes {
    uint64_t lane[256][8];
} byte_lanes;

/* Rows [first, last) each to its nearest centre (ties: the first): their
 * count added to n, their bits to counts (K x the row's bytes x 8). */
POPCOUNT_CLONES static void assign_rows(const tdm_binary_data *data, const uint64_t *centres,
                                        size_t k_count, const byte_lanes *restrict bits,
                                        size_t first, size_t last, uint64_t *restrict counts,
                                        uint64_t *n)
{
    size_t words = data->row_words, bytes = (data->cols + 7) / 8;
    for (size_t i = first; i < last; i++) {
        const uint64_t *row = row_words(data, i);
        size_t best = 0, best_distance = SIZE_MAX;
        for (size_t k = 0; k < k_count; k++) {
            size_t d = hamming(row, centres + k * words, words);
            if (d < best_distance) {
                best = k;
                best_distance = d;
            }
        }
        n[best]++;
        uint64_t *column = counts + best * bytes * 8;
        for (size_t j = 0; j < bytes; j++, column += 8) {
            const uint64_t *lanes = bits->lane[row[j / 8] >> (8 * (j % 8)) & 0xFF];
            for (unsigned l = 0; l < 8; l++)
                column[l] += lanes[l];
        }
    }
}

/* The most bytes of per-thread counts a hard assignment takes. */
enum { ASSIGN_COUNTS_BYTES = 64 << 20 };

/* Sums of a hard assignment of every row to its nearest centre: counts and
 * bit sums, integers, so exact whichever thread adds which rows and added
 * across processes exactly. Each thread counts a range of rows on its own. */
static tdm_status assign_to_centres(const em_part *part, const uint64_t *centres, size_t k_count,
                                    em_sums *sums)
{
    const tdm_binary_data *data = part->data;
    size_t cols = data->cols, padded = (cols + 7) / 8 * 8, rows = data->rows;
    size_t stride = k_count * (padded + 1), most = ASSIGN_COUNTS_BYTES / sizeof(uint64_t) / stride;
    int team = team_for(part, rows, most);
    uint64_t *own = calloc((size_t)team * stride, sizeof(uint64_t));
    byte_lanes *bits = malloc(sizeof *bits);
    if (!own || !bits) {
        free(own);
        free(bits);
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "em: out of host memory");
    }
    for (unsigned byte = 0; byte < 256; byte++)
        for (unsigned j = 0; j < 8; j++)
            bits->lane[byte][j] = byte >> j & 1u;
#pragma omp parallel for schedule(static) num_threads(team)
    for (int t = 0; t < team; t++) {
        uint64_t *counts = own + (size_t)t * stride;
        assign_rows(data, centres, k_count, bits, rows * (size_t)t / (size_t)team,
                    rows * (size_t)(t + 1) / (size_t)team, counts, counts + k_count * padded);
    }
    for (int t = 0; t < team; t++) {
        const uint64_t *counts = own + (size_t)t * stride;
        for (size_t k = 0; k < k_count; k++) {
            for (size_t c = 0; c < cols; c++)
                sums->s[k * cols + c] += (double)counts[k * padded + c];
            sums->n[k] += (double)counts[k_count * padded + k];
        }
    }
    free(own);
    free(bits);
    return part->comm->ops->allreduce_sum_double(part->comm, sums->s, k_count * (cols + 1));
}

/* Rows [first, last): K uniforms a row from rng (at row `first`), their
 * shares of the row added to s (K x D) and to n (K, after s) in row order. */
static void share_rows(const tdm_binary_data *data, size_t k_count, tdm_rng rng, size_t first,
                       size_t last, double *eta, double *s)
{
    size_t cols = data->cols;
    double *n = s + k_count * cols;
    for (size_t i = first; i < last; i++) {
        double total = 0.0;
        for (size_t k = 0; k < k_count; k++)
            total += eta[k] = uniform(&rng) + 1e-12;
        for (size_t k = 0; k < k_count; k++) {
            double share = eta[k] / total;
            n[k] += share;
            add_row_bits(data, i, share, s + k * cols);
        }
    }
}

/* Random responsibilities: K uniforms per row, from the RNG moved ahead to
 * the row (tdm_rng_skip), and summed per shard as the E
 * step's sums are: each shard by one thread in row order, so the same bits
 * on any number of threads. sums->s is followed by sums->n. */
static tdm_status random_responsibilities(const em_part *part, size_t k_count, tdm_rng rng,
                                          em_sums *sums)
{
    const tdm_binary_data *data = part->data;
    size_t cols = data->cols, stride = k_count * (cols + 1), shards = tdm_em_local_shards(part);
    double *partials = calloc(shards * stride + 1, sizeof(double));
    double *etas = malloc((shards * k_count + 1) * sizeof(double));
    if (!partials || !etas) {
        free(partials);
        free(etas);
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "em: out of host memory");
    }
    int team = team_for(part, data->rows, shards);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t h = 0; h < shards; h++) {
        size_t first = h * part->shard_rows, last = first + part->shard_rows;
        tdm_rng at = tdm_rng_skip(rng, (uint64_t)((part->first_row + first) * k_count));
        share_rows(data, k_count, at, first, last < data->rows ? last : data->rows,
                   etas + h * k_count, partials + h * stride);
    }
    tdm_status status = tdm_em_sum_shards(part, partials, stride, sums->s);
    free(partials);
    free(etas);
    return status;
}

static tdm_status given_parameters(const tdm_binary_data *data, const tdm_em_options *o, double *p,
                                   double *pi)
{
    size_t k_count = o->components, cols = data->cols;
    if (!o->initial_p || !o->initial_pi)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "em: init = given needs initial p and pi");
    double total = 0.0;
    for (size_t k = 0; k < k_count; k++) {
        if (!(o->initial_pi[k] >= 0.0f) || !isfinite(o->initial_pi[k]))
            return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "em: initial pi[%zu] = %g is not >= 0", k,
                            (double)o->initial_pi[k]);
        total += o->initial_pi[k];
        for (size_t d = 0; d < cols; d++) {
            float value = o->initial_p[k * cols + d];
            if (!(value >= 0.0f && value <= 1.0f))
                return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                                "em: initial p[%zu][%zu] = %g is not in [0, 1]", k, d,
                                (double)value);
            p[k * cols + d] = clamp(value, o->clamp, 1.0 - o->clamp);
        }
    }
    if (!(total > 0.0))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "em: the initial weights pi sum to 0");
    for (size_t k = 0; k < k_count; k++)
        pi[k] = o->initial_pi[k] / total;
    return TDM_OK;
}

/* One M step from sums; an empty component takes its centre (or row k). */
static tdm_status finish(const em_part *part, const tdm_em_options *o, const uint64_t *centres,
                         uint64_t *row, em_sums *sums, double *p, double *pi, bool *empty)
{
    size_t k_count = o->components, cols = part->data->cols, words = part->data->row_words;
    size_t n = part->total_rows;
    if (tdm_em_m_step(sums, n, k_count, cols, o, p, pi, empty) == 0)
        return TDM_OK;
    double total = 0.0;
    for (size_t k = 0; k < k_count; k++) {
        if (empty[k] && centres) {
            tdm_em_seed_component(centres + k * words, cols, n, k, o, p, pi);
        } else if (empty[k]) {
            TDM_TRY(tdm_em_fetch_row(part, k % n, row));
            tdm_em_seed_component(row, cols, n, k, o, p, pi);
        }
        total += pi[k];
    }
    for (size_t k = 0; k < k_count; k++)
        pi[k] /= total;
    return TDM_OK;
}

static tdm_status choose_centres(const em_part *part, const tdm_em_options *o, tdm_rng *rng,
                                 double *nearest, uint64_t *centres)
{
    if (o->init == TDM_EM_INIT_RANDOM_ROWS)
        return random_rows(part, o->components, rng, centres);
    return kmeans_plus_plus(part, o->components, rng, nearest, centres);
}

tdm_status tdm_em_initialize(const em_part *part, const tdm_em_options *o, tdm_rng *rng, double *p,
                             double *pi)
{
    if (o->init == TDM_EM_INIT_GIVEN)
        return given_parameters(part->data, o, p, pi);
    const tdm_binary_data *data = part->data;
    size_t k_count = o->components, cols = data->cols, words = data->row_words;
    double *s = calloc(k_count * (cols + 1) + data->rows, sizeof(double));
    uint64_t *centres = malloc((k_count + 1) * words * sizeof(uint64_t)); /* and one row */
    bool *empty = malloc(k_count * sizeof(bool));
    tdm_status status =
        s && centres && empty ? TDM_OK : TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "em: out of host memory");
    em_sums sums = {.s = s, .n = s ? s + k_count * cols : NULL};
    double *nearest = s ? s + k_count * (cols + 1) : NULL; /* k-means++'s, a value a row */
    bool hard = o->init != TDM_EM_INIT_RANDOM_RESPONSIBILITIES;
    if (status == TDM_OK && hard)
        status = choose_centres(part, o, rng, nearest, centres);
    if (status == TDM_OK && hard)
        status = assign_to_centres(part, centres, k_count, &sums);
    else if (status == TDM_OK)
        status = random_responsibilities(part, k_count, *rng, &sums);
    if (status == TDM_OK)
        status =
            finish(part, o, hard ? centres : NULL, centres + k_count * words, &sums, p, pi, empty);
    free(s);
    free(centres);
    free(empty);
    return status;
}

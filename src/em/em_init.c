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

void tdm_em_seed_component(const tdm_binary_data *data, size_t row, size_t k,
                           const tdm_em_options *o, double *p, double *pi)
{
    double denominator = 1.0 + o->prior_a + o->prior_b - 2.0;
    for (size_t d = 0; d < data->cols; d++) {
        double x = tdm_binary_get(data, row, d);
        double value = denominator > 0.0 ? (x + o->prior_a - 1.0) / denominator : x;
        p[k * data->cols + d] = clamp(value, o->clamp, 1.0 - o->clamp);
    }
    pi[k] = 1.0 / (double)data->rows;
}

/* The number of columns where rows a and b differ (padding bits are 0 in both). */
static size_t hamming(const tdm_binary_data *data, size_t a, size_t b)
{
    const uint64_t *x = data->bits + a * data->row_words, *y = data->bits + b * data->row_words;
    size_t distance = 0;
    for (size_t w = 0; w < data->row_words; w++)
        distance += (size_t)__builtin_popcountll(x[w] ^ y[w]);
    return distance;
}

/* sums[c] += scale for every column c set in the row. */
static void add_row_bits(const tdm_binary_data *data, size_t row, double scale, double *sums)
{
    const uint64_t *words = data->bits + row * data->row_words;
    for (size_t w = 0; w < data->row_words; w++)
        for (uint64_t bits = words[w]; bits; bits &= bits - 1)
            sums[w * 64 + (size_t)__builtin_ctzll(bits)] += scale;
}

static double uniform(tdm_rng *rng)
{
    return (double)(tdm_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

/* k-means++: the first centre uniformly, each next one with probability
 * proportional to the squared distance to the nearest centre so far. */
static void kmeans_plus_plus(const tdm_binary_data *data, size_t k_count, tdm_rng *rng,
                             double *nearest, size_t *centres)
{
    size_t n = data->rows;
    centres[0] = (size_t)(tdm_rng_next(rng) % n);
    for (size_t i = 0; i < n; i++)
        nearest[i] = INFINITY;
    for (size_t k = 1; k < k_count; k++) {
        double total = 0.0;
        for (size_t i = 0; i < n; i++) {
            double d = (double)hamming(data, i, centres[k - 1]);
            nearest[i] = fmin(nearest[i], d * d);
            total += nearest[i];
        }
        double target = uniform(rng) * total;
        size_t pick = (size_t)(tdm_rng_next(rng) % n); /* all rows on centres: any row */
        for (size_t i = 0; total > 0.0 && i < n; i++) {
            target -= nearest[i];
            if (target < 0.0 || i == n - 1) {
                pick = i;
                break;
            }
        }
        centres[k] = pick;
    }
}

/* k distinct rows by a partial Fisher-Yates shuffle. */
static tdm_status random_rows(size_t n, size_t k_count, tdm_rng *rng, size_t *centres)
{
    size_t *order = malloc(n * sizeof(size_t));
    if (!order)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "em: out of host memory");
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t k = 0; k < k_count; k++) {
        size_t j = k + (size_t)(tdm_rng_next(rng) % (n - k)), swap = order[k];
        order[k] = order[j];
        order[j] = swap;
        centres[k] = order[k];
    }
    free(order);
    return TDM_OK;
}

/* Sums of a hard assignment of every row to its nearest centre (ties: the first). */
static void assign_to_centres(const tdm_binary_data *data, const size_t *centres, size_t k_count,
                              em_sums *sums)
{
    size_t cols = data->cols;
    for (size_t i = 0; i < data->rows; i++) {
        size_t best = 0, best_distance = SIZE_MAX;
        for (size_t k = 0; k < k_count; k++) {
            size_t d = hamming(data, i, centres[k]);
            if (d < best_distance) {
                best = k;
                best_distance = d;
            }
        }
        sums->n[best] += 1.0;
        add_row_bits(data, i, 1.0, sums->s + best * cols);
    }
}

static void random_responsibilities(const tdm_binary_data *data, size_t k_count, tdm_rng *rng,
                                    double *eta, em_sums *sums)
{
    size_t cols = data->cols;
    for (size_t i = 0; i < data->rows; i++) {
        double total = 0.0;
        for (size_t k = 0; k < k_count; k++)
            total += eta[k] = uniform(rng) + 1e-12;
        for (size_t k = 0; k < k_count; k++) {
            double share = eta[k] / total;
            sums->n[k] += share;
            add_row_bits(data, i, share, sums->s + k * cols);
        }
    }
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
static void finish(const tdm_binary_data *data, const tdm_em_options *o, const size_t *centres,
                   em_sums *sums, double *p, double *pi, bool *empty)
{
    size_t k_count = o->components;
    if (tdm_em_m_step(sums, data->rows, k_count, data->cols, o, p, pi, empty) == 0)
        return;
    double total = 0.0;
    for (size_t k = 0; k < k_count; k++) {
        if (empty[k])
            tdm_em_seed_component(data, centres ? centres[k] : k % data->rows, k, o, p, pi);
        total += pi[k];
    }
    for (size_t k = 0; k < k_count; k++)
        pi[k] /= total;
}

tdm_status tdm_em_initialize(const tdm_binary_data *data, const tdm_em_options *o, tdm_rng *rng,
                             double *p, double *pi)
{
    if (o->init == TDM_EM_INIT_GIVEN)
        return given_parameters(data, o, p, pi);
    size_t k_count = o->components, cols = data->cols, n = data->rows;
    double *s = calloc(k_count * cols + k_count + n, sizeof(double));
    size_t *centres = malloc(k_count * sizeof(size_t));
    bool *empty = malloc(k_count * sizeof(bool));
    tdm_status status =
        s && centres && empty ? TDM_OK : TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "em: out of host memory");
    em_sums sums = {.s = s, .n = s ? s + k_count * cols : NULL};
    double *scratch = s ? s + k_count * cols + k_count : NULL; /* n values */
    if (status == TDM_OK && o->init == TDM_EM_INIT_RANDOM_RESPONSIBILITIES)
        random_responsibilities(data, k_count, rng, scratch, &sums);
    else if (status == TDM_OK && o->init == TDM_EM_INIT_RANDOM_ROWS)
        status = random_rows(n, k_count, rng, centres);
    else if (status == TDM_OK)
        kmeans_plus_plus(data, k_count, rng, scratch, centres);
    bool hard = o->init != TDM_EM_INIT_RANDOM_RESPONSIBILITIES;
    if (status == TDM_OK && hard)
        assign_to_centres(data, centres, k_count, &sums);
    if (status == TDM_OK)
        finish(data, o, hard ? centres : NULL, &sums, p, pi, empty);
    free(s);
    free(centres);
    free(empty);
    return status;
}

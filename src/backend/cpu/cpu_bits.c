/* EM on bit-packed rows, cpu backend ("four Russians"): scores by one table
 * lookup per group of 4 bits, and the M-step sums by adding each row's
 * weights into an accumulator per (group, pattern), expanded to columns at
 * the end. Both work on K padded to whole 16-float vectors (GCC vector types,
 * compiled for AVX-512, AVX2 and plain x86-64, picked at run time). Threads
 * share rows (scores) or groups (sums): no sum is split between threads, so
 * the bits do not depend on the team. */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_layers.h"
#include "core/error.h"

/* The vector helpers are always inlined, so the ABI of passing vectors in
 * registers, which GCC warns may differ between ISAs, never applies. */
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float vec8 __attribute__((vector_size(32)));
enum { LANES = 8, MAX_VECTORS = 8, GROUPS_PER_TASK = 16 };

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TDM_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TDM_VECTOR_CLONES
#endif

static inline __attribute__((always_inline)) vec8 load(const float *p)
{
    vec8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) void store(float *p, vec8 v)
{
    memcpy(p, &v, sizeof v);
}

static inline unsigned pattern(const uint64_t *words, size_t group)
{
    return (unsigned)(words[group / 16] >> (TDM_BITS_GROUP * (group % 16))) & 15u;
}

/* K rounded up to whole vectors. */
static size_t padded_k(size_t k_count)
{
    return (k_count + LANES - 1) / LANES * LANES;
}

/* table[g][p][K] copied to [g][p][Kp] with zeros in the padding. */
static float *pad_table(const tdm_bits_shape *s, const float *table, size_t kp)
{
    size_t entries = tdm_bits_groups(s) * TDM_BITS_PATTERNS, k_count = s->components;
    float *padded = calloc(entries * kp, sizeof(float));
    for (size_t e = 0; padded && e < entries; e++)
        memcpy(padded + e * kp, table + e * k_count, k_count * sizeof(float));
    return padded;
}

/* One row's scores, `vectors` accumulators held in registers. */
static inline __attribute__((always_inline)) void score_row(const uint64_t *words, size_t groups,
                                                            const float *table, size_t kp,
                                                            size_t vectors, const float *bias,
                                                            float *acc_out)
{
    vec8 acc[MAX_VECTORS];
    for (size_t v = 0; v < vectors; v++)
        acc[v] = load(bias + v * LANES);
    for (size_t g = 0; g < groups; g++) {
        const float *entry = table + (g * TDM_BITS_PATTERNS + pattern(words, g)) * kp;
        for (size_t v = 0; v < vectors; v++)
            acc[v] += load(entry + v * LANES);
    }
    for (size_t v = 0; v < vectors; v++)
        store(acc_out + v * LANES, acc[v]);
}

TDM_VECTOR_CLONES
static void score_rows(const tdm_bits_shape *s, const uint64_t *bits, const float *table,
                       const float *bias, size_t first, size_t last, float *out)
{
    const size_t groups = tdm_bits_groups(s), kp = padded_k(s->components), k = s->components;
    float row_scores[MAX_VECTORS * LANES];
    for (size_t r = first; r < last; r++) {
        const uint64_t *words = bits + r * s->row_words;
        switch (kp / LANES) { /* constant trip counts, so acc stays in registers */
        case 1: score_row(words, groups, table, kp, 1, bias, row_scores); break;
        case 2: score_row(words, groups, table, kp, 2, bias, row_scores); break;
        case 3: score_row(words, groups, table, kp, 3, bias, row_scores); break;
        case 4: score_row(words, groups, table, kp, 4, bias, row_scores); break;
        case 5: score_row(words, groups, table, kp, 5, bias, row_scores); break;
        case 6: score_row(words, groups, table, kp, 6, bias, row_scores); break;
        case 7: score_row(words, groups, table, kp, 7, bias, row_scores); break;
        default: score_row(words, groups, table, kp, 8, bias, row_scores); break;
        }
        memcpy(out + r * k, row_scores, k * sizeof(float));
    }
}

/* K > 64: rows [first, last) summed straight into their output rows, a
 * float at a time (the table's entries are kp apart, the outputs K). */
static void score_rows_wide(const tdm_bits_shape *s, const uint64_t *bits, const float *table,
                            const float *bias, size_t first, size_t last, float *out)
{
    const size_t groups = tdm_bits_groups(s), kp = padded_k(s->components), k = s->components;
    for (size_t r = first; r < last; r++) {
        const uint64_t *words = bits + r * s->row_words;
        float *acc = out + r * k;
        memcpy(acc, bias, k * sizeof(float));
        for (size_t g = 0; g < groups; g++) {
            const float *entry = table + (g * TDM_BITS_PATTERNS + pattern(words, g)) * kp;
            for (size_t i = 0; i < k; i++)
                acc[i] += entry[i];
        }
    }
}

tdm_status tdm_cpu_bits_scores(tdm_backend *backend, const tdm_bits_shape *s, tdm_view bits,
                               tdm_view table, tdm_view bias, tdm_view scores)
{
    const size_t kp = padded_k(s->components), rows = s->rows;
    float *padded = pad_table(s, tdm_view_host_floats(table), kp);
    float *bias_padded = calloc(kp, sizeof(float));
    if (!padded || !bias_padded) {
        free(padded);
        free(bias_padded);
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "cpu: out of host memory");
    }
    memcpy(bias_padded, tdm_view_host_floats(bias), s->components * sizeof(float));
    const uint64_t *words = (const uint64_t *)tdm_view_host_floats(bits);
    float *out = tdm_view_host_floats(scores);
    int team = tdm_cpu_team(backend, rows * tdm_bits_groups(s));
    enum { ROWS_PER_TASK = 64 };
    size_t tasks = (rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t t = 0; t < tasks; t++) {
        size_t first = t * ROWS_PER_TASK,
               last = first + ROWS_PER_TASK < rows ? first + ROWS_PER_TASK : rows;
        if (kp <= MAX_VECTORS * LANES)
            score_rows(s, words, padded, bias_padded, first, last, out);
        else
            score_rows_wide(s, words, padded, bias_padded, first, last, out);
    }
    free(padded);
    free(bias_padded);
    return TDM_OK;
}

/* acc[g][p][Kp] += weights[r] for groups [g0, g1) of every row, rows in order. */
TDM_VECTOR_CLONES
static void accumulate_groups(const tdm_bits_shape *s, const uint64_t *bits, const float *weights,
                              size_t g0, size_t g1, size_t kp, float *acc)
{
    const size_t k_count = s->components, vectors = kp / LANES;
    float w[MAX_VECTORS * LANES] = {0};
    for (size_t r = 0; r < s->rows; r++) {
        const uint64_t *words = bits + r * s->row_words;
        for (size_t k = 0; k < k_count; k++) /* inline: a call per row costs more */
            w[k] = weights[r * k_count + k];
        for (size_t g = g0; g < g1; g++) {
            float *entry = acc + (g * TDM_BITS_PATTERNS + pattern(words, g)) * kp;
            for (size_t v = 0; v < vectors; v++)
                store(entry + v * LANES, load(entry + v * LANES) + load(w + v * LANES));
        }
    }
}

/* The same for K > 64, a float at a time. */
static void accumulate_groups_wide(const tdm_bits_shape *s, const uint64_t *bits,
                                   const float *weights, size_t g0, size_t g1, size_t kp,
                                   float *acc)
{
    const size_t k_count = s->components;
    for (size_t r = 0; r < s->rows; r++) {
        const uint64_t *words = bits + r * s->row_words;
        for (size_t g = g0; g < g1; g++) {
            float *entry = acc + (g * TDM_BITS_PATTERNS + pattern(words, g)) * kp;
            for (size_t k = 0; k < k_count; k++)
                entry[k] += weights[r * k_count + k];
        }
    }
}

/* sums[k][4g + j] = the sum of acc[g][p][k] over the patterns p with bit j. */
static void expand_group(const tdm_bits_shape *s, const float *acc, size_t kp, size_t g,
                         float *sums)
{
    for (size_t j = 0; j < TDM_BITS_GROUP && g * TDM_BITS_GROUP + j < s->cols; j++)
        for (size_t k = 0; k < s->components; k++) {
            float sum = 0.0f;
            for (unsigned p = 0; p < TDM_BITS_PATTERNS; p++)
                if (p >> j & 1u)
                    sum += acc[(g * TDM_BITS_PATTERNS + p) * kp + k];
            sums[k * s->cols + g * TDM_BITS_GROUP + j] = sum;
        }
}

tdm_status tdm_cpu_bits_sums(tdm_backend *backend, const tdm_bits_shape *s, tdm_view bits,
                             tdm_view weights, tdm_view sums)
{
    const size_t kp = padded_k(s->components), groups = tdm_bits_groups(s);
    float *acc = calloc(groups * TDM_BITS_PATTERNS * kp, sizeof(float));
    if (!acc)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "cpu: out of host memory");
    const uint64_t *words = (const uint64_t *)tdm_view_host_floats(bits);
    const float *w = tdm_view_host_floats(weights);
    float *out = tdm_view_host_floats(sums);
    /* Each group sums its rows in order whatever the split, so the tasks can
     * match the team: a whole number of them per thread, each at most
     * GROUPS_PER_TASK groups (their accumulators stay in L1). */
    int team = tdm_cpu_team(backend, s->rows * groups);
    size_t per_round = GROUPS_PER_TASK * (size_t)team;
    size_t tasks = (groups + per_round - 1) / per_round * (size_t)team;
    size_t per_task = (groups + tasks - 1) / tasks;
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t t = 0; t < tasks; t++) {
        size_t g0 = t * per_task < groups ? t * per_task : groups,
               g1 = g0 + per_task < groups ? g0 + per_task : groups;
        if (kp <= MAX_VECTORS * LANES)
            accumulate_groups(s, words, w, g0, g1, kp, acc);
        else
            accumulate_groups_wide(s, words, w, g0, g1, kp, acc);
        for (size_t g = g0; g < g1; g++)
            expand_group(s, acc, kp, g, out);
    }
    free(acc);
    return TDM_OK;
}

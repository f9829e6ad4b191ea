/* EM on bit-packed rows, cpu backend: scores by table lookup, one group of 4
 * bits at a time, and the M-step sums by adding each row's weights into an
 * accumulator per (group, pattern), expanded to columns at the end ("four
 * Russians"). Rows are shared between threads in fixed chunks whose partial
 * sums are added in chunk order, so the bits do not depend on the team. */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_layers.h"
#include "core/error.h"

/* Rows per chunk of the M-step sums: a chunk's accumulators (groups x 16 x K
 * floats, 250 KB at D = 784, K = 20) stay in a core's L2 cache. */
enum { SUM_CHUNK_ROWS = 256 };

static const uint64_t *row_words(tdm_view bits, const tdm_bits_shape *s, size_t row)
{
    return (const uint64_t *)tdm_view_host_floats(bits) + row * s->row_words;
}

static unsigned pattern(const uint64_t *words, size_t group)
{
    return (unsigned)(words[group / 16] >> (TDM_BITS_GROUP * (group % 16))) & 15u;
}

tdm_status tdm_cpu_bits_scores(tdm_backend *backend, const tdm_bits_shape *s, tdm_view bits,
                               tdm_view table, tdm_view bias, tdm_view scores)
{
    const size_t k_count = s->components, groups = tdm_bits_groups(s);
    const float *t = tdm_view_host_floats(table), *b = tdm_view_host_floats(bias);
    float *out = tdm_view_host_floats(scores);
    int team = tdm_cpu_team(backend, s->rows * groups * k_count / 16);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t r = 0; r < s->rows; r++) {
        const uint64_t *words = row_words(bits, s, r);
        float *restrict acc = out + r * k_count;
        memcpy(acc, b, k_count * sizeof(float));
        for (size_t g = 0; g < groups; g++) {
            const float *restrict entry = t + (g * TDM_BITS_PATTERNS + pattern(words, g)) * k_count;
            for (size_t k = 0; k < k_count; k++)
                acc[k] += entry[k];
        }
    }
    return TDM_OK;
}

/* acc[g][p][k] += weights[r][k] for the pattern p of every group of every row
 * of the chunk. */
static void accumulate_chunk(const tdm_bits_shape *s, tdm_view bits, const float *weights,
                             size_t first, size_t last, float *restrict acc)
{
    const size_t k_count = s->components, groups = tdm_bits_groups(s);
    memset(acc, 0, groups * TDM_BITS_PATTERNS * k_count * sizeof(float));
    for (size_t r = first; r < last; r++) {
        const uint64_t *words = row_words(bits, s, r);
        const float *restrict w = weights + r * k_count;
        for (size_t g = 0; g < groups; g++) {
            float *restrict entry = acc + (g * TDM_BITS_PATTERNS + pattern(words, g)) * k_count;
            for (size_t k = 0; k < k_count; k++)
                entry[k] += w[k];
        }
    }
}

/* sums[k][4g + j] = the sum of acc[g][p][k] over the patterns p with bit j. */
static void expand(const tdm_bits_shape *s, const float *acc, float *sums)
{
    const size_t k_count = s->components, groups = tdm_bits_groups(s);
    for (size_t g = 0; g < groups; g++)
        for (size_t j = 0; j < TDM_BITS_GROUP && g * TDM_BITS_GROUP + j < s->cols; j++)
            for (size_t k = 0; k < k_count; k++) {
                float sum = 0.0f;
                for (unsigned p = 0; p < TDM_BITS_PATTERNS; p++)
                    if (p >> j & 1u)
                        sum += acc[(g * TDM_BITS_PATTERNS + p) * k_count + k];
                sums[k * s->cols + g * TDM_BITS_GROUP + j] = sum;
            }
}

tdm_status tdm_cpu_bits_sums(tdm_backend *backend, const tdm_bits_shape *s, tdm_view bits,
                             tdm_view weights, tdm_view sums)
{
    const size_t k_count = s->components,
                 entries = tdm_bits_groups(s) * TDM_BITS_PATTERNS * k_count;
    const size_t chunks = (s->rows + SUM_CHUNK_ROWS - 1) / SUM_CHUNK_ROWS;
    if (chunks > SIZE_MAX / sizeof(float) / entries)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "bits_sums: %zu chunks of %zu sums", chunks,
                        entries);
    float *acc = malloc(chunks * entries * sizeof(float));
    if (!acc)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "cpu: out of host memory");
    const float *w = tdm_view_host_floats(weights);
    int team = tdm_cpu_team(backend, s->rows * entries / TDM_BITS_PATTERNS / 16);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t c = 0; c < chunks; c++) {
        size_t first = c * SUM_CHUNK_ROWS, last = first + SUM_CHUNK_ROWS;
        accumulate_chunk(s, bits, w, first, last < s->rows ? last : s->rows, acc + c * entries);
    }
    team = tdm_cpu_team(backend, chunks * entries);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t i = 0; i < entries; i++) /* the chunks in order, into the first */
        for (size_t c = 1; c < chunks; c++)
            acc[i] += acc[c * entries + i];
    expand(s, acc, tdm_view_host_floats(sums));
    free(acc);
    return TDM_OK;
}

/* EM on bit-packed rows, cpu backend ("four Russians"): scores by one table
 * lookup per byte of a row, and the M-step sums by adding each row's
 * weights into an accumulator per (byte, pattern), expanded to columns at
 * the end. Both work on K rounded up to whole 8-float vectors (GCC vector
 * types, compiled for AVX-512, AVX2 and plain x86-64, picked at run time)
 * and read the table and the weights at their own stride of K floats: the
 * lanes past K carry the next entry's values and are never stored. Threads
 * share rows (scores) or bytes (sums): no sum is split between threads, so
 * the bits do not depend on the team. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_clones.h"
#include "backend/cpu/cpu_layers.h"
#include "core/error.h"

typedef float vec8 __attribute__((vector_size(32)));
enum {
    LANES = 8,
    MAX_VECTORS = 8, /* K <= 64 in registers; wider K a float at a time */
    GROUPS_PER_WORD = 64 / TDM_BITS_GROUP,
    GROUPS_PER_TASK = GROUPS_PER_WORD / 2, /* sums: 98 KB of accumulators at K = 20 */
    ROWS_PER_TASK = 64
};

TDM_INLINE vec8 load(const float *p)
{
    vec8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

TDM_INLINE void store(float *p, vec8 v)
{
    memcpy(p, &v, sizeof v);
}

static unsigned pattern(const uint64_t *words, size_t group)
{
    return (unsigned)(words[group / GROUPS_PER_WORD] >>
                      (TDM_BITS_GROUP * (group % GROUPS_PER_WORD))) &
           (TDM_BITS_PATTERNS - 1);
}

static size_t vectors_for(size_t k_count)
{
    return (k_count + LANES - 1) / LANES;
}

/* How many of `count` rows of k floats can be read as whole vectors
 * without passing the end of the last row. */
static size_t rows_readable_whole(size_t count, size_t k_count)
{
    size_t overrun = vectors_for(k_count) * LANES - k_count; /* floats past a row's end */
    size_t spare = (overrun + k_count - 1) / k_count;        /* rows they cover */
    return count > spare ? count - spare : 0;
}

/* A copy of rows [first, first + count) of k floats, each padded with zeros
 * to whole vectors: the rows rows_readable_whole leaves out. */
static float *padded_tail(const float *rows, size_t first, size_t count, size_t k_count)
{
    size_t kp = vectors_for(k_count) * LANES;
    float *copy = calloc(count ? count * kp : 1, sizeof(float));
    for (size_t r = 0; copy && r < count; r++)
        memcpy(copy + r * kp, rows + (first + r) * k_count, k_count * sizeof(float));
    return copy;
}

/* ---------- scores ---------- */

/* The table of every group but the last, read in place, and the last
 * group's patterns padded (the only entries whose vectors could pass the
 * table's end); the bias padded likewise. */
typedef struct score_table {
    const float *table; /* [groups][256][K] */
    const float *last;  /* [256][kp] */
    size_t last_group, k_count, stride_last;
    float bias[MAX_VECTORS * LANES];
} score_table;

TDM_INLINE const float *score_entry(const score_table *t, size_t g, unsigned p)
{
    if (g == t->last_group)
        return t->last + p * t->stride_last;
    return t->table + (g * TDM_BITS_PATTERNS + p) * t->k_count;
}

/* One row's scores, `vectors` accumulators in registers: whole words a
 * group at a time with the word in a register, the groups in order. */
TDM_INLINE void score_row(const score_table *t, const uint64_t *words, size_t groups,
                          size_t vectors, float *out)
{
    const size_t k_count = t->k_count, full_words = (groups - 1) / GROUPS_PER_WORD;
    vec8 acc[MAX_VECTORS];
    for (size_t v = 0; v < vectors; v++)
        acc[v] = load(t->bias + v * LANES);
    for (size_t i = 0; i < full_words; i++) {
        const uint64_t word = words[i];
        const float *base = t->table + i * GROUPS_PER_WORD * TDM_BITS_PATTERNS * k_count;
#pragma GCC unroll 8
        for (unsigned j = 0; j < GROUPS_PER_WORD; j++) {
            unsigned p = (unsigned)(word >> (TDM_BITS_GROUP * j)) & (TDM_BITS_PATTERNS - 1);
            const float *entry = base + (j * TDM_BITS_PATTERNS + p) * k_count;
            for (size_t v = 0; v < vectors; v++)
                acc[v] += load(entry + v * LANES);
        }
    }
    for (size_t g = full_words * GROUPS_PER_WORD; g < groups; g++) {
        const float *entry = score_entry(t, g, pattern(words, g));
        for (size_t v = 0; v < vectors; v++)
            acc[v] += load(entry + v * LANES);
    }
    float row[MAX_VECTORS * LANES];
    for (size_t v = 0; v < vectors; v++)
        store(row + v * LANES, acc[v]);
    memcpy(out, row, k_count * sizeof(float));
}

#define SCORE_CASE(n)                                                                              \
    case n:                                                                                        \
        for (size_t r = first; r < last; r++)                                                      \
            score_row(t, bits + r * s->row_words, groups, n, out + r * s->components);             \
        break

TDM_VECTOR_CLONES
static void score_rows(const tdm_bits_shape *s, const score_table *t, const uint64_t *bits,
                       size_t first, size_t last, float *out)
{
    const size_t groups = tdm_bits_groups(s);
    switch (vectors_for(s->components)) { /* constant trip counts: acc in registers */
        SCORE_CASE(1);
        SCORE_CASE(2);
        SCORE_CASE(3);
        SCORE_CASE(4);
        SCORE_CASE(5);
        SCORE_CASE(6);
        SCORE_CASE(7);
        SCORE_CASE(8);
    }
}

/* K > 64: rows [first, last) summed straight into their output rows, a
 * float at a time. */
static void score_rows_wide(const tdm_bits_shape *s, const float *table, const float *bias,
                            const uint64_t *bits, size_t first, size_t last, float *out)
{
    const size_t groups = tdm_bits_groups(s), k_count = s->components;
    for (size_t r = first; r < last; r++) {
        const uint64_t *words = bits + r * s->row_words;
        float *acc = out + r * k_count;
        memcpy(acc, bias, k_count * sizeof(float));
        for (size_t g = 0; g < groups; g++) {
            const float *entry = table + (g * TDM_BITS_PATTERNS + pattern(words, g)) * k_count;
            for (size_t k = 0; k < k_count; k++)
                acc[k] += entry[k];
        }
    }
}

tdm_status tdm_cpu_bits_scores(tdm_backend *backend, const tdm_bits_shape *s, tdm_view bits,
                               tdm_view table, tdm_view bias, tdm_view scores)
{
    const size_t rows = s->rows, groups = tdm_bits_groups(s), k_count = s->components;
    const float *t = tdm_view_host_floats(table);
    const uint64_t *words = (const uint64_t *)tdm_view_host_floats(bits);
    float *out = tdm_view_host_floats(scores);
    const bool wide = vectors_for(k_count) > MAX_VECTORS;
    score_table st = {.table = t, .last_group = groups - 1, .k_count = k_count};
    float *last = NULL;
    if (!wide) {
        last = padded_tail(t, (groups - 1) * TDM_BITS_PATTERNS, TDM_BITS_PATTERNS, k_count);
        if (!last)
            return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "cpu: out of host memory");
        st.last = last;
        st.stride_last = vectors_for(k_count) * LANES;
        memcpy(st.bias, tdm_view_host_floats(bias), k_count * sizeof(float));
    }
    int team = tdm_cpu_team(backend, rows * groups);
    size_t tasks = (rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t task = 0; task < tasks; task++) {
        size_t first = task * ROWS_PER_TASK;
        size_t end = first + ROWS_PER_TASK < rows ? first + ROWS_PER_TASK : rows;
        if (wide)
            score_rows_wide(s, t, tdm_view_host_floats(bias), words, first, end, out);
        else
            score_rows(s, &st, words, first, end, out);
    }
    free(last);
    return TDM_OK;
}

/* ---------- sums ---------- */

/* Adds w to the accumulators of `count` groups whose patterns are the low
 * bits of `word`; acc points at the first group's [256][kp]. */
TDM_INLINE void add_to_patterns(uint64_t word, size_t count, float *acc, size_t vectors,
                                const vec8 *w)
{
    const size_t kp = vectors * LANES;
#pragma GCC unroll 8
    for (unsigned j = 0; j < count; j++) {
        unsigned p = (unsigned)(word >> (TDM_BITS_GROUP * j)) & (TDM_BITS_PATTERNS - 1);
        float *entry = acc + (j * TDM_BITS_PATTERNS + p) * kp;
        for (size_t v = 0; v < vectors; v++)
            store(entry + v * LANES, load(entry + v * LANES) + w[v]);
    }
}

/* acc[g - g0][p] += weights[r] for the `count` groups from g0 (inside one
 * word) of rows [first, last), in order; the weights rows `stride` apart. */
TDM_INLINE void accumulate_rows(const tdm_bits_shape *s, const uint64_t *bits, const float *weights,
                                size_t stride, size_t first, size_t last, size_t g0, size_t count,
                                size_t vectors, float *acc)
{
    const size_t word_index = g0 / GROUPS_PER_WORD;
    const unsigned shift = TDM_BITS_GROUP * (unsigned)(g0 % GROUPS_PER_WORD);
    for (size_t r = first; r < last; r++) {
        vec8 w[MAX_VECTORS];
        for (size_t v = 0; v < vectors; v++)
            w[v] = load(weights + (r - first) * stride + v * LANES);
        uint64_t word = bits[r * s->row_words + word_index] >> shift;
        add_to_patterns(word, count, acc, vectors, w);
    }
}

/* The rows read in place, then the tail's padded copy; a full task's group
 * count a constant. */
#define ACCUMULATE_CASE(n)                                                                         \
    case n:                                                                                        \
        if (count == GROUPS_PER_TASK) {                                                            \
            accumulate_rows(s, bits, weights, k, 0, whole, g0, GROUPS_PER_TASK, n, acc);           \
            accumulate_rows(s, bits, tail, n *LANES, whole, s->rows, g0, GROUPS_PER_TASK, n, acc); \
        } else {                                                                                   \
            accumulate_rows(s, bits, weights, k, 0, whole, g0, count, n, acc);                     \
            accumulate_rows(s, bits, tail, n *LANES, whole, s->rows, g0, count, n, acc);           \
        }                                                                                          \
        break

TDM_VECTOR_CLONES
static void accumulate_groups(const tdm_bits_shape *s, const uint64_t *bits, const float *weights,
                              const float *tail, size_t g0, size_t count, float *acc)
{
    const size_t k = s->components, whole = rows_readable_whole(s->rows, k);
    switch (vectors_for(k)) { /* constant trip counts, so w stays in registers */
        ACCUMULATE_CASE(1);
        ACCUMULATE_CASE(2);
        ACCUMULATE_CASE(3);
        ACCUMULATE_CASE(4);
        ACCUMULATE_CASE(5);
        ACCUMULATE_CASE(6);
        ACCUMULATE_CASE(7);
        ACCUMULATE_CASE(8);
    }
}

/* The same for K > 64, a float at a time. */
static void accumulate_groups_wide(const tdm_bits_shape *s, const uint64_t *bits,
                                   const float *weights, size_t g0, size_t count, size_t kp,
                                   float *acc)
{
    const size_t k_count = s->components;
    for (size_t r = 0; r < s->rows; r++) {
        const uint64_t *words = bits + r * s->row_words;
        for (size_t g = g0; g < g0 + count; g++) {
            float *entry = acc + ((g - g0) * TDM_BITS_PATTERNS + pattern(words, g)) * kp;
            for (size_t k = 0; k < k_count; k++)
                entry[k] += weights[r * k_count + k];
        }
    }
}

/* sums[k][8g + j] = the sum of acc[p][k] (group g's) over the patterns p
 * with bit j, from the top bit down: bit j's sum is the upper half of the
 * patterns still unfolded, which is then folded onto the lower half. The
 * accumulators (kp floats a pattern) are used up. */
TDM_VECTOR_CLONES
static void expand_group(const tdm_bits_shape *s, float *acc, size_t kp, size_t g, float *sums)
{
    float sum[MAX_VECTORS * LANES];
    for (unsigned j = TDM_BITS_GROUP; j-- > 0;) {
        const unsigned half = 1u << j;
        const size_t col = g * TDM_BITS_GROUP + j;
        for (size_t k0 = 0; k0 < kp; k0 += MAX_VECTORS * LANES) { /* K > 64 in slices */
            size_t vectors = (kp - k0) / LANES < MAX_VECTORS ? (kp - k0) / LANES : MAX_VECTORS;
            vec8 total[MAX_VECTORS] = {0};
            for (unsigned p = 0; p < half; p++)
                for (size_t v = 0; v < vectors; v++) {
                    float *lower = acc + p * kp + k0 + v * LANES;
                    vec8 upper = load(lower + half * kp);
                    total[v] += upper;
                    store(lower, load(lower) + upper);
                }
            for (size_t v = 0; v < vectors; v++)
                store(sum + v * LANES, total[v]);
            for (size_t k = k0; k < k0 + vectors * LANES && k < s->components; k++)
                if (col < s->cols)
                    sums[k * s->cols + col] = sum[k - k0];
        }
    }
}

/* totals[k] = the sum of the weights of every row, rows in order. */
static void add_totals(const tdm_bits_shape *s, const float *weights, float *totals)
{
    const size_t k_count = s->components;
    memset(totals, 0, k_count * sizeof(float));
    for (size_t r = 0; r < s->rows; r++)
        for (size_t k = 0; k < k_count; k++)
            totals[k] += weights[r * k_count + k];
}

tdm_status tdm_cpu_bits_sums(tdm_backend *backend, const tdm_bits_shape *s, tdm_view bits,
                             tdm_view weights, tdm_view sums)
{
    const size_t k_count = s->components, groups = tdm_bits_groups(s);
    const size_t kp = vectors_for(k_count) * LANES;
    const int team = tdm_cpu_team(backend, s->rows * groups);
    /* one task's accumulators per thread, whole cache lines apart */
    const size_t task_floats = (GROUPS_PER_TASK * TDM_BITS_PATTERNS * kp + 15) / 16 * 16;
    const float *w = tdm_view_host_floats(weights);
    const size_t whole = rows_readable_whole(s->rows, k_count);
    float *acc = aligned_alloc(64, (size_t)team * task_floats * sizeof(float));
    float *tail = padded_tail(w, whole, s->rows - whole, k_count);
    if (!acc || !tail) {
        free(acc);
        free(tail);
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "cpu: out of host memory");
    }
    const uint64_t *words = (const uint64_t *)tdm_view_host_floats(bits);
    float *out = tdm_view_host_floats(sums);
    size_t tasks = (groups + GROUPS_PER_TASK - 1) / GROUPS_PER_TASK;
#pragma omp parallel for schedule(dynamic) num_threads(team)
    for (size_t task = 0; task < tasks; task++) {
        float *mine = acc + (size_t)omp_get_thread_num() * task_floats;
        size_t g0 = task * GROUPS_PER_TASK;
        size_t count = groups - g0 < GROUPS_PER_TASK ? groups - g0 : GROUPS_PER_TASK;
        memset(mine, 0, task_floats * sizeof(float));
        if (kp <= MAX_VECTORS * LANES)
            accumulate_groups(s, words, w, tail, g0, count, mine);
        else
            accumulate_groups_wide(s, words, w, g0, count, kp, mine);
        for (size_t g = g0; g < g0 + count; g++)
            expand_group(s, mine + (g - g0) * TDM_BITS_PATTERNS * kp, kp, g, out);
    }
    free(acc);
    free(tail);
    add_totals(s, w, out + k_count * s->cols);
    return TDM_OK;
}

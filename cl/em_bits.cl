// EM on bit-packed rows (see tandem/backend.h): value c of row r is bit
// c % 64 of word r * row_words + c / 64; groups of 8 bits (bytes) index a
// table. Word offsets arrive in floats (two per word). Each work-item works
// on a short vector (float8, float16) of its own, which a CPU device runs in
// SIMD registers: PoCL does not vectorise across work-items around a loop.

// The table entry of group g for a row's words, from `t` on.
inline __global const float *tdm_bits_entry(__global const float *t, uint g, ulong word,
                                            uint components)
{
    return t + (g * 256 + (uint)(word >> (8 * (g % 8)) & 255ul)) * components;
}

// K < 8: work-items (k, r). The bias, then the table entry of every group in
// order, a word's eight groups from one read of the word.
__kernel void tdm_bits_scores(uint rows, uint row_words, uint groups, uint components,
                              __global const ulong *bits, uint bits_offset,
                              __global const float *table, uint table_offset,
                              __global const float *bias, uint bias_offset, __global float *scores,
                              uint scores_offset)
{
    const uint k = get_global_id(0), r = get_global_id(1);
    if (k >= components || r >= rows)
        return;
    __global const ulong *words = bits + bits_offset / 2 + r * row_words;
    __global const float *t = table + table_offset + k;
    float acc = bias[bias_offset + k];
    for (uint g = 0; g < groups; g++)
        acc += *tdm_bits_entry(t, g, words[g / 8], components);
    scores[scores_offset + r * components + k] = acc;
}

// K >= N (8 or 16): work-items (c, r), c a chunk of N components from
// k0 = min(Nc, K - N): the last chunk overlaps the one before it rather than
// read past the table, and stores only its own lanes. The same sums, in the
// same order, as tdm_bits_scores.
#define TDM_BITS_SCORES_VECTORS(N)                                                                 \
    __kernel void tdm_bits_scores##N(                                                              \
        uint rows, uint row_words, uint groups, uint components, __global const ulong *bits,       \
        uint bits_offset, __global const float *table, uint table_offset,                          \
        __global const float *bias, uint bias_offset, __global float *scores, uint scores_offset)  \
    {                                                                                              \
        const uint c = get_global_id(0), r = get_global_id(1);                                     \
        if (N * c >= components || r >= rows)                                                      \
            return;                                                                                \
        const uint k0 = min(N * c, components - N);                                                \
        __global const ulong *words = bits + bits_offset / 2 + r * row_words;                      \
        __global const float *t = table + table_offset + k0;                                       \
        /* the table's size is checked on the host to fit 32 bits */                               \
        const uint k_count = (uint)components, word_stride = 8 * 256 * k_count;                    \
        float##N acc = vload##N(0, bias + bias_offset + k0);                                       \
        const uint full_words = (groups - 1) / 8; /* the last group is read below */               \
        for (uint w = 0; w < full_words; w++, t += word_stride) {                                  \
            const ulong word = words[w];                                                           \
            _Pragma("unroll") for (uint j = 0; j < 8; j++) acc +=                                  \
                vload##N(0, t + (j * 256 + (uint)(word >> (8 * j) & 255ul)) * k_count);            \
        }                                                                                          \
        const ulong word = words[full_words];                                                      \
        for (uint j = 0; j < groups - 8 * full_words; j++)                                         \
            acc += vload##N(0, t + (j * 256 + (uint)(word >> (8 * j) & 255ul)) * k_count);         \
        float lanes[N];                                                                            \
        vstore##N(acc, 0, lanes);                                                                  \
        __global float *out = scores + scores_offset + r * components;                             \
        for (uint k = N * c; k < k0 + N; k++)                                                      \
            out[k] = lanes[k - k0];                                                                \
    }

TDM_BITS_SCORES_VECTORS(8)
TDM_BITS_SCORES_VECTORS(16)

// Work-items (h, cp): h a run of 16 columns (16h .. 16h + 15, within one
// word); cp = p * quads + c, c eight components from 8c (the last index
// repeated past K, and only the first copy stored), p a part of the rows.
// Over the part's rows in order, the run's bits, as 0 or 1, times each
// component's weight for the row are added to its 16 column sums (exact
// products, so the sum of the weights where a bit is 1). One more run,
// h = (cols + 15) / 16, is a column of ones: the totals. Part p writes
// K x (cols + 1) sums at p * K * (cols + 1); with parts > 1 (on a GPU, so
// that enough work-items run) tdm_bits_sums_reduce adds the parts in order.
__kernel void tdm_bits_sums(uint rows, uint cols, uint row_words, uint components, uint parts,
                            __global const ulong *bits, uint bits_offset,
                            __global const float *weights, uint weights_offset,
                            __global float *sums, uint sums_offset)
{
    const uint quads = (components + 7) / 8, runs = (cols + 15) / 16;
    const uint h = get_global_id(0), y = get_global_id(1), c = y % quads, p = y / quads;
    if (h > runs || p >= parts)
        return;
    const bool totals = h == runs;
    __global const ulong *x = bits + bits_offset / 2 + (totals ? 0 : h / 4);
    __global const float *w = weights + weights_offset;
    const uint k0 = 8 * c;
    const uint first = (ulong)p * rows / parts, last = (ulong)(p + 1) * rows / parts;
    uint k[8];
    for (uint i = 0; i < 8; i++)
        k[i] = min(k0 + i, components - 1);
    const uint shift = 16 * (uint)(h % 4);
    const uint16 lane = (uint16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    float16 acc[8];
    for (uint i = 0; i < 8; i++)
        acc[i] = (float16)(0.0f);
    for (uint r = first; r < last; r++) {
        const uint run = totals ? 1u : (uint)(x[r * row_words] >> shift) & 0xFFFFu;
        const float16 ones = convert_float16(((uint16)(run) >> lane) & 1u);
        __global const float *wr = w + r * components;
#pragma unroll
        for (uint i = 0; i < 8; i++)
            acc[i] += ones * wr[k[i]];
    }
    float lanes[8][16];
    for (uint i = 0; i < 8; i++)
        vstore16(acc[i], 0, lanes[i]);
    __global float *out = sums + sums_offset + p * components * (cols + 1);
    for (uint i = 0; i < 8 && k0 + i < components; i++) {
        if (totals)
            out[components * cols + k0 + i] = lanes[i][0];
        for (uint j = 0; !totals && j < 16 && 16 * h + j < cols; j++)
            out[(k0 + i) * cols + 16 * h + j] = lanes[i][j];
    }
}

// sums[i] = the parts' partials[p * count + i] added in the order of p.
__kernel void tdm_bits_sums_reduce(uint count, uint parts, __global const float *partials,
                                   __global float *sums, uint sums_offset)
{
    const uint i = get_global_id(0);
    if (i >= count)
        return;
    float acc = 0.0f;
    for (uint p = 0; p < parts; p++)
        acc += partials[p * count + i];
    sums[sums_offset + i] = acc;
}

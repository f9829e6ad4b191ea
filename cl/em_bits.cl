// EM on bit-packed rows (see tandem/backend.h): value c of row r is bit
// c % 64 of word r * row_words + c / 64; groups of 4 bits index a table.
// Word offsets arrive in floats (two per word).

inline uint tdm_bits_pattern(__global const ulong *words, ulong group)
{
    return (uint)(words[group / 16] >> (4 * (group % 16))) & 15u;
}

// One work-item per (row, component): the bias, then the table entry of
// every group in order.
__kernel void tdm_bits_scores(ulong rows, ulong row_words, ulong groups, ulong components,
                              __global const ulong *bits, ulong bits_offset,
                              __global const float *table, ulong table_offset,
                              __global const float *bias, ulong bias_offset,
                              __global float *scores, ulong scores_offset)
{
    for (ulong i = get_global_id(0); i < rows * components; i += get_global_size(0)) {
        const ulong r = i / components, k = i % components;
        __global const ulong *words = bits + bits_offset / 2 + r * row_words;
        __global const float *t = table + table_offset + k;
        float acc = bias[bias_offset + k];
        for (ulong g = 0; g < groups; g++)
            acc += t[(g * 16 + tdm_bits_pattern(words, g)) * components];
        scores[scores_offset + i] = acc;
    }
}

// One work-item per (component, column): the weights of the rows whose value
// is 1, summed in row order (a multiply by the bit, no branch).
__kernel void tdm_bits_sums(ulong rows, ulong cols, ulong row_words, ulong components,
                            __global const ulong *bits, ulong bits_offset,
                            __global const float *weights, ulong weights_offset,
                            __global float *sums, ulong sums_offset)
{
    for (ulong i = get_global_id(0); i < components * cols; i += get_global_size(0)) {
        const ulong k = i / cols, c = i % cols;
        __global const ulong *column_words = bits + bits_offset / 2 + c / 64;
        __global const float *w = weights + weights_offset + k;
        const uint shift = (uint)(c % 64);
        float acc = 0.0f;
        for (ulong r = 0; r < rows; r++)
            acc += w[r * components] * (float)((column_words[r * row_words] >> shift) & 1ul);
        sums[sums_offset + i] = acc;
    }
}

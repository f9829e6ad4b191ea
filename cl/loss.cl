// Softmax cross-entropy, one work-item per sample (see tandem/layer_ops.h).
__kernel void tdm_softmax_cross_entropy(uint batch, uint classes, __global const float *logits,
                                        uint logits_offset, __global const int *labels,
                                        uint labels_offset, __global float *losses,
                                        uint losses_offset, int write_wrong, __global float *wrong,
                                        uint wrong_offset, int write_dlogits,
                                        __global float *dlogits, uint dlogits_offset)
{
    const uint n = get_global_id(0);
    if (n >= batch)
        return;
    __global const float *z = logits + logits_offset + n * classes;
    const int label = labels[labels_offset + n];
    const bool valid = label >= 0 && (uint)label < classes;
    uint top = 0;
    const float log_sum = tdm_log_sum_exp(z, classes, &top);
    losses[losses_offset + n] = valid ? log_sum - z[label] : NAN;
    if (write_wrong)
        wrong[wrong_offset + n] = valid && top == (uint)label ? 0.0f : 1.0f;
    for (uint k = 0; write_dlogits && k < classes; k++) {
        const float p = exp(z[k] - log_sum) - ((uint)label == k ? 1.0f : 0.0f);
        dlogits[dlogits_offset + n * classes + k] = valid ? p / (float)batch : NAN;
    }
}

// The E step of EM: per row, the log-sum-exp and then, in place, the
// softmax: one exp a value, kept in the row and divided by the row's sum.
// Eight values at a time (vector exp on a CPU device), then the rest.
__kernel void tdm_softmax_rows(uint rows, uint cols, __global float *x, uint x_offset,
                               __global float *lse, uint lse_offset)
{
    const uint r = get_global_id(0);
    if (r >= rows)
        return;
    __global float *row = x + x_offset + r * cols;
    const uint whole = cols / 8 * 8;
    float top = row[0];
    for (uint j = 0; j < whole; j += 8) {
        const float8 v = vload8(0, row + j);
        const float4 m4 = fmax(v.lo, v.hi);
        const float2 m2 = fmax(m4.lo, m4.hi);
        top = fmax(top, fmax(m2.lo, m2.hi));
    }
    for (uint j = whole; j < cols; j++)
        top = fmax(top, row[j]);
    float8 sums = (float8)(0.0f);
    for (uint j = 0; j < whole; j += 8) {
        const float8 e = exp(vload8(0, row + j) - top);
        vstore8(e, 0, row + j);
        sums += e;
    }
    const float4 s4 = sums.lo + sums.hi;
    const float2 s2 = s4.lo + s4.hi;
    float sum = s2.lo + s2.hi;
    for (uint j = whole; j < cols; j++) {
        const float e = exp(row[j] - top);
        row[j] = e;
        sum += e;
    }
    lse[lse_offset + r] = top + log(sum);
    for (uint j = 0; j < whole; j += 8)
        vstore8(vload8(0, row + j) / sum, 0, row + j);
    for (uint j = whole; j < cols; j++)
        row[j] /= sum;
}

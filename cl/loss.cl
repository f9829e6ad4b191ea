// Softmax cross-entropy, one work-item per sample (see tandem/layer_ops.h).
__kernel void tdm_softmax_cross_entropy(ulong batch, ulong classes, __global const float *logits,
                                        ulong logits_offset, __global const int *labels,
                                        ulong labels_offset, __global float *losses,
                                        ulong losses_offset, int write_wrong,
                                        __global float *wrong, ulong wrong_offset,
                                        int write_dlogits, __global float *dlogits,
                                        ulong dlogits_offset)
{
    for (ulong n = get_global_id(0); n < batch; n += get_global_size(0)) {
        __global const float *z = logits + logits_offset + n * classes;
        const int label = labels[labels_offset + n];
        const bool valid = label >= 0 && (ulong)label < classes;
        ulong top = 0;
        const float log_sum = tdm_log_sum_exp(z, classes, &top);
        losses[losses_offset + n] = valid ? log_sum - z[label] : NAN;
        if (write_wrong)
            wrong[wrong_offset + n] = valid && top == (ulong)label ? 0.0f : 1.0f;
        for (ulong k = 0; write_dlogits && k < classes; k++) {
            const float p = exp(z[k] - log_sum) - ((ulong)label == k ? 1.0f : 0.0f);
            dlogits[dlogits_offset + n * classes + k] = valid ? p / (float)batch : NAN;
        }
    }
}

// The E step of EM: per row, the log-sum-exp and then, in place, the softmax.
__kernel void tdm_softmax_rows(ulong rows, ulong cols, __global float *x, ulong x_offset,
                               __global float *lse, ulong lse_offset)
{
    for (ulong r = get_global_id(0); r < rows; r += get_global_size(0)) {
        __global float *row = x + x_offset + r * cols;
        ulong top = 0;
        const float log_sum = tdm_log_sum_exp(row, cols, &top);
        lse[lse_offset + r] = log_sum;
        for (ulong j = 0; j < cols; j++)
            row[j] = exp(row[j] - log_sum);
    }
}

// BatchNorm2d over (N, spatial) per channel, as torch.nn.BatchNorm2d; the
// formulas are those of the cpu backend (src/backend/cpu/cpu_layers.c).

// Training statistics, one work-group per channel: mean, biased variance
// (two passes, so no cancellation), invstd, and the running statistics
// updated with the unbiased variance.
__kernel __attribute__((reqd_work_group_size(TDM_GROUP_SIZE, 1, 1))) void
tdm_batchnorm_stats(ulong batch, ulong channels, ulong spatial, float eps, float momentum,
                    __global const float *x, ulong x_offset, __global float *running_mean,
                    ulong running_mean_offset, __global float *running_var,
                    ulong running_var_offset, __global float *save_mean, ulong save_mean_offset,
                    __global float *save_invstd, ulong save_invstd_offset)
{
    __local float partial[TDM_GROUP_SIZE];
    const ulong c = get_group_id(0), count = batch * spatial;
    float sum = 0.0f;
    for (ulong k = get_local_id(0); k < count; k += TDM_GROUP_SIZE)
        sum += x[x_offset + tdm_channel_index(k, c, channels, spatial)];
    const float mean = tdm_group_sum(sum, partial) / (float)count;
    float squares = 0.0f;
    for (ulong k = get_local_id(0); k < count; k += TDM_GROUP_SIZE) {
        const float centered = x[x_offset + tdm_channel_index(k, c, channels, spatial)] - mean;
        squares += centered * centered;
    }
    const float var = tdm_group_sum(squares, partial) / (float)count;
    if (get_local_id(0) == 0) {
        save_mean[save_mean_offset + c] = mean;
        save_invstd[save_invstd_offset + c] = 1.0f / sqrt(var + eps);
        const float unbiased = var * ((float)count / (float)(count - 1));
        __global float *rm = &running_mean[running_mean_offset + c];
        __global float *rv = &running_var[running_var_offset + c];
        *rm = (1.0f - momentum) * *rm + momentum * mean;
        *rv = (1.0f - momentum) * *rv + momentum * unbiased;
    }
}

// y = (x - mean) * invstd * gamma + beta; in evaluation mode `scale` holds
// the running variance and invstd = 1 / sqrt(var + eps); relu: max(y, 0).
__kernel void tdm_batchnorm_normalize(ulong batch, ulong channels, ulong spatial,
                                      __global const float *x, ulong x_offset,
                                      __global const float *mean, ulong mean_offset,
                                      __global const float *scale, ulong scale_offset,
                                      int scale_is_variance, float eps,
                                      __global const float *gamma, ulong gamma_offset,
                                      __global const float *beta, ulong beta_offset,
                                      int relu, __global float *y, ulong y_offset)
{
    const ulong total = batch * channels * spatial;
    for (ulong id = get_global_id(0); id < total; id += get_global_size(0)) {
        const ulong c = (id / spatial) % channels;
        const float s = scale[scale_offset + c];
        const float invstd = scale_is_variance ? 1.0f / sqrt(s + eps) : s;
        const float value = (x[x_offset + id] - mean[mean_offset + c]) * invstd *
                                gamma[gamma_offset + c] +
                            beta[beta_offset + c];
        y[y_offset + id] = relu && value < 0.0f ? 0.0f : value; // NaN is not < 0
    }
}

// Backward, pass 1 (one work-group per channel): dgamma += sum(dy * xhat),
// dbeta += sum(dy); means[2c], means[2c+1] = their means for pass 2.
__kernel __attribute__((reqd_work_group_size(TDM_GROUP_SIZE, 1, 1))) void
tdm_batchnorm_backward_reduce(ulong batch, ulong channels, ulong spatial,
                              __global const float *x, ulong x_offset, __global const float *dy,
                              ulong dy_offset, __global const float *save_mean,
                              ulong save_mean_offset, __global const float *save_invstd,
                              ulong save_invstd_offset, __global float *dgamma,
                              ulong dgamma_offset, __global float *dbeta, ulong dbeta_offset,
                              __global float *means, ulong means_offset)
{
    __local float2 partial[TDM_GROUP_SIZE];
    const ulong c = get_group_id(0), count = batch * spatial;
    const float mean = save_mean[save_mean_offset + c];
    const float invstd = save_invstd[save_invstd_offset + c];
    float2 sums = (float2)(0.0f, 0.0f); // sum(dy), sum(dy * xhat)
    for (ulong k = get_local_id(0); k < count; k += TDM_GROUP_SIZE) {
        const ulong index = tdm_channel_index(k, c, channels, spatial);
        const float g = dy[dy_offset + index];
        sums += (float2)(g, g * ((x[x_offset + index] - mean) * invstd));
    }
    sums = tdm_group_sum2(sums, partial);
    if (get_local_id(0) == 0) {
        dgamma[dgamma_offset + c] += sums.y;
        dbeta[dbeta_offset + c] += sums.x;
        means[means_offset + 2 * c] = sums.x / (float)count;
        means[means_offset + 2 * c + 1] = sums.y / (float)count;
    }
}

// Backward, pass 2: dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)).
__kernel void tdm_batchnorm_backward_apply(ulong batch, ulong channels, ulong spatial,
                                           __global const float *x, ulong x_offset,
                                           __global const float *dy, ulong dy_offset,
                                           __global const float *save_mean,
                                           ulong save_mean_offset,
                                           __global const float *save_invstd,
                                           ulong save_invstd_offset, __global const float *gamma,
                                           ulong gamma_offset, __global const float *means,
                                           ulong means_offset, __global float *dx,
                                           ulong dx_offset)
{
    const ulong total = batch * channels * spatial;
    for (ulong id = get_global_id(0); id < total; id += get_global_size(0)) {
        const ulong c = (id / spatial) % channels;
        const float invstd = save_invstd[save_invstd_offset + c];
        const float xhat = (x[x_offset + id] - save_mean[save_mean_offset + c]) * invstd;
        const float scale = gamma[gamma_offset + c] * invstd;
        dx[dx_offset + id] = scale * (dy[dy_offset + id] - means[means_offset + 2 * c] -
                                      xhat * means[means_offset + 2 * c + 1]);
    }
}

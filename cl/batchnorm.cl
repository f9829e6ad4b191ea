// BatchNorm2d over (N, spatial) per channel, as torch.nn.BatchNorm2d; the
// formulas are those of the cpu backend (src/backend/cpu/cpu_layers.c).
// Training: statistics per channel (one work-group each), then the
// normalisation, in one kernel when a channel's values are few (the
// host decides: tdm_opencl_batchnorm_forward) or in two. Backward alike.
// The one-kernel forms also run a 2x2 max-pool at stride 2 that reads y
// alone (TDM_BN_POOL: forward its values, backward its gradient's route).

// The pool's arguments: pool (0: none), the images' width, the outputs'
// width and count an image, the pooled values (its gradient backward) and
// argmax; at the end of a kernel's arguments.
#define TDM_BN_POOL                                                                                \
    uint pool, tdm_divisor width, tdm_divisor out_w, tdm_divisor out_spatial,                      \
        __global float *pooled, uint pooled_offset, __global int *argmax, uint argmax_offset

// The 2x2 max-pool of channel c's planes of y (tdm_maxpool2d_2x2's values
// and argmax), a window a work-item of the group in turn, once the group
// has written y; y at the channel's first value.
inline void tdm_bn_pool(__global const float *y, uint c, uint batch, uint channels, uint stride,
                        TDM_BN_POOL)
{
    barrier(CLK_GLOBAL_MEM_FENCE);
    for (uint u = get_local_id(0); u < batch * out_spatial.x; u += TDM_GROUP_SIZE) {
        const uint n = tdm_div(u, out_spatial), o = u - n * out_spatial.x;
        const uint oh = tdm_div(o, out_w), ow = o - oh * out_w.x;
        const uint at = (n * channels + c) * out_spatial.x + o;
        float best;
        uint best_index;
        tdm_window_2x2(y + n * stride, 2 * oh * width.x + 2 * ow, width.x, &best, &best_index);
        pooled[pooled_offset + at] = best;
        argmax[argmax_offset + at] = (int)best_index;
    }
}

// Channel c's dy from the pool's gradient (in `pooled`), as
// tdm_maxpool2d_backward_2x2 routes it: 0 + the gradient at each window's
// argmax, 0 elsewhere; then a barrier, so that the group reads it. dy at
// the channel's first value.
inline void tdm_bn_unpool(__global float *dy, uint c, uint batch, uint channels, uint stride,
                          tdm_divisor spatial, TDM_BN_POOL)
{
    const uint out_h = out_spatial.x / out_w.x;
    for (uint u = get_local_id(0); u < batch * spatial.x; u += TDM_GROUP_SIZE) {
        const uint n = tdm_div(u, spatial), q = u - n * spatial.x;
        const uint h = tdm_div(q, width), w = q - h * width.x, oh = h / 2, ow = w / 2;
        const uint window = (n * channels + c) * out_spatial.x + min(oh, out_h - 1) * out_w.x +
                            min(ow, out_w.x - 1);
        const bool mine = oh < out_h && ow < out_w.x && (uint)argmax[argmax_offset + window] == q;
        const float gradient = 0.0f + pooled[pooled_offset + window];
        dy[n * stride + q] = mine ? gradient : 0.0f;
    }
    barrier(CLK_GLOBAL_MEM_FENCE);
}

// The sum of (x[i] - mean)^2 over [first, end), in the order of tdm_run_sum.
inline float tdm_run_squares(__global const float *x, uint first, uint end, float mean)
{
    float4 sums = (float4)(0.0f);
    uint i = first;
    for (; i + 4 <= end; i += 4) {
        const float4 centered = vload4(0, x + i) - mean;
        sums += centered * centered;
    }
    float sum = (sums.x + sums.y) + (sums.z + sums.w);
    for (; i < end; i++) {
        const float centered = x[i] - mean;
        sum += centered * centered;
    }
    return sum;
}

// Channel c's mean and biased variance (two passes, so no cancellation),
// the same in every work-item of the group; x at the channel's first value.
inline float2 tdm_bn_statistics(__global const float *x, uint batch, uint stride, uint spatial,
                                __local float *partial)
{
    const float count = (float)(batch * spatial);
    const float mean = tdm_group_sum(tdm_channel_sum(x, batch, stride, spatial), partial) / count;
    const uint parts = tdm_channel_parts(batch);
    float squares = 0.0f;
    for (uint u = get_local_id(0); u < batch * parts; u += TDM_GROUP_SIZE) {
        const uint2 piece = tdm_channel_piece(u, parts, stride, spatial);
        squares += tdm_run_squares(x, piece.x, piece.y, mean);
    }
    return (float2)(mean, tdm_group_sum(squares, partial) / count);
}

// Work-item 0 saves mean and invstd and updates the running statistics
// (unbiased variance); returns invstd.
inline float tdm_bn_save(float2 stats, uint c, uint count, float eps, float momentum,
                         __global float *running_mean, __global float *running_var,
                         __global float *save_mean, __global float *save_invstd)
{
    const float invstd = 1.0f / sqrt(stats.y + eps);
    if (get_local_id(0) == 0) {
        save_mean[c] = stats.x;
        save_invstd[c] = invstd;
        const float unbiased = stats.y * ((float)count / (float)(count - 1));
        running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * stats.x;
        running_var[c] = (1.0f - momentum) * running_var[c] + momentum * unbiased;
    }
    return invstd;
}

// (x[i] - mean) * invstd * gamma + beta, plus r[i] with add (rounded
// first: the sum tdm_add makes), then max(., 0) with relu. Without add the
// host passes x again as r, unread.
inline float tdm_bn_value(__global const float *x, __global const float *r, uint i, float mean,
                          float invstd, float gamma, float beta, int add, int relu)
{
    float value = (x[i] - mean) * invstd * gamma + beta;
    if (add)
        value += r[i];
    return relu && value < 0.0f ? 0.0f : value; // NaN is not < 0
}

// y[i] = tdm_bn_value(i) over [first, end), four values at a time (the
// same formula a lane: the same bits).
inline void tdm_bn_values(__global const float *x, __global const float *r, __global float *y,
                          uint first, uint end, float mean, float invstd, float gamma, float beta,
                          int add, int relu)
{
    uint i = first;
    for (; i + 4 <= end; i += 4) {
        float4 value = (vload4(0, x + i) - mean) * invstd * gamma + beta;
        if (add)
            value += vload4(0, r + i);
        const int4 negative = value < (float4)(0.0f); // NaN is not < 0
        vstore4(relu ? select(value, (float4)(0.0f), negative) : value, 0, y + i);
    }
    for (; i < end; i++)
        y[i] = tdm_bn_value(x, r, i, mean, invstd, gamma, beta, add, relu);
}

// The channel's y, the work-items sharing its values as in tdm_channel_sum;
// x, r and y at the channel's first value.
inline void tdm_bn_channel_values(__global const float *x, __global const float *r,
                                  __global float *y, uint batch, uint stride, uint spatial,
                                  float mean, float invstd, float gamma, float beta, int add,
                                  int relu)
{
    const uint parts = tdm_channel_parts(batch);
    for (uint u = get_local_id(0); u < batch * parts; u += TDM_GROUP_SIZE) {
        const uint2 piece = tdm_channel_piece(u, parts, stride, spatial);
        tdm_bn_values(x, r, y, piece.x, piece.y, mean, invstd, gamma, beta, add, relu);
    }
}

// Training statistics only, one work-group per channel.
__kernel __attribute__((reqd_work_group_size(TDM_GROUP_SIZE, 1, 1))) void
tdm_batchnorm_stats(uint batch, tdm_divisor channels, tdm_divisor spatial, float eps,
                    float momentum, __global const float *x, uint x_offset,
                    __global float *running_mean, uint running_mean_offset,
                    __global float *running_var, uint running_var_offset, __global float *save_mean,
                    uint save_mean_offset, __global float *save_invstd, uint save_invstd_offset)
{
    __local float partial[TDM_GROUP_SIZE + 1];
    const uint c = get_group_id(0), stride = channels.x * spatial.x;
    const float2 stats =
        tdm_bn_statistics(x + x_offset + c * spatial.x, batch, stride, spatial.x, partial);
    tdm_bn_save(stats, c, batch * spatial.x, eps, momentum, running_mean + running_mean_offset,
                running_var + running_var_offset, save_mean + save_mean_offset,
                save_invstd + save_invstd_offset);
}

// The statistics and then the channel's y, one work-group per channel: the
// same values as tdm_batchnorm_stats then tdm_batchnorm_normalize, in one
// launch; then the pool's.
__kernel __attribute__((reqd_work_group_size(TDM_GROUP_SIZE, 1, 1))) void
tdm_batchnorm_train(uint batch, tdm_divisor channels, tdm_divisor spatial, float eps,
                    float momentum, __global const float *x, uint x_offset,
                    __global float *running_mean, uint running_mean_offset,
                    __global float *running_var, uint running_var_offset, __global float *save_mean,
                    uint save_mean_offset, __global float *save_invstd, uint save_invstd_offset,
                    __global const float *gamma, uint gamma_offset, __global const float *beta,
                    uint beta_offset, __global const float *residual, uint residual_offset, int add,
                    int relu, __global float *y, uint y_offset, TDM_BN_POOL)
{
    __local float partial[TDM_GROUP_SIZE + 1];
    const uint c = get_group_id(0), stride = channels.x * spatial.x, first = c * spatial.x;
    const float2 stats = tdm_bn_statistics(x + x_offset + first, batch, stride, spatial.x, partial);
    const float invstd =
        tdm_bn_save(stats, c, batch * spatial.x, eps, momentum, running_mean + running_mean_offset,
                    running_var + running_var_offset, save_mean + save_mean_offset,
                    save_invstd + save_invstd_offset);
    tdm_bn_channel_values(x + x_offset + first, residual + residual_offset + first,
                          y + y_offset + first, batch, stride, spatial.x, stats.x, invstd,
                          gamma[gamma_offset + c], beta[beta_offset + c], add, relu);
    if (pool)
        tdm_bn_pool(y + y_offset + first, c, batch, channels.x, stride, pool, width, out_w,
                    out_spatial, pooled, pooled_offset, argmax, argmax_offset);
}

// The normalize kernels' invstd: `scale` itself, or in evaluation mode the
// running variance it holds made 1 / sqrt(var + eps).
inline float tdm_bn_invstd(float scale, int scale_is_variance, float eps)
{
    return scale_is_variance ? 1.0f / sqrt(scale + eps) : scale;
}

// y over all values, one work-item each: (s, plane), plane = n * C + c, so
// that a CPU device runs a plane's values as one vector loop. mean and
// invstd the saved ones, or in evaluation mode `scale` holds the running
// variance and invstd = 1 / sqrt(var + eps).
__kernel void tdm_batchnorm_normalize(
    uint batch, tdm_divisor channels, tdm_divisor spatial, __global const float *x, uint x_offset,
    __global const float *mean, uint mean_offset, __global const float *scale, uint scale_offset,
    int scale_is_variance, float eps, __global const float *gamma, uint gamma_offset,
    __global const float *beta, uint beta_offset, __global const float *residual,
    uint residual_offset, int add, int relu, __global float *y, uint y_offset)
{
    const uint s = get_global_id(0), plane = tdm_plane();
    if (s >= spatial.x || plane >= batch * channels.x)
        return;
    const uint c = tdm_mod(plane, channels), id = plane * spatial.x + s;
    const float invstd = tdm_bn_invstd(scale[scale_offset + c], scale_is_variance, eps);
    y[y_offset + id] =
        tdm_bn_value(x + x_offset, residual + residual_offset, id, mean[mean_offset + c], invstd,
                     gamma[gamma_offset + c], beta[beta_offset + c], add, relu);
}

// The same values, one work-group a channel (a CPU device: one work-item,
// which takes the channel's runs of values in order).
__kernel __attribute__((reqd_work_group_size(TDM_GROUP_SIZE, 1, 1))) void
tdm_batchnorm_normalize_channels(uint batch, tdm_divisor channels, tdm_divisor spatial,
                                 __global const float *x, uint x_offset, __global const float *mean,
                                 uint mean_offset, __global const float *scale, uint scale_offset,
                                 int scale_is_variance, float eps, __global const float *gamma,
                                 uint gamma_offset, __global const float *beta, uint beta_offset,
                                 __global const float *residual, uint residual_offset, int add,
                                 int relu, __global float *y, uint y_offset)
{
    const uint c = get_group_id(0), first = c * spatial.x;
    const float invstd = tdm_bn_invstd(scale[scale_offset + c], scale_is_variance, eps);
    tdm_bn_channel_values(x + x_offset + first, residual + residual_offset + first,
                          y + y_offset + first, batch, channels.x * spatial.x, spatial.x,
                          mean[mean_offset + c], invstd, gamma[gamma_offset + c],
                          beta[beta_offset + c], add, relu);
}

// dy[i], or 0 with relu where the fused ReLU's output y[i] is not > 0 (the
// rule of tdm_relu_backward). y is read either way (without relu the host
// passes dy again), so the loop has no conditional load and vectorises.
inline float tdm_bn_dy(__global const float *dy, __global const float *y, uint i, int relu)
{
    const float out = y[i], gradient = dy[i];
    return relu && !(out > 0.0f) ? 0.0f : gradient;
}

// The same for dy[i .. i + 4).
inline float4 tdm_bn_dy4(__global const float *dy, __global const float *y, uint i, int relu)
{
    const float4 gradient = vload4(0, dy + i);
    const int4 kept = vload4(0, y + i) > (float4)(0.0f); // NaN is not > 0
    return relu ? select((float4)(0.0f), gradient, kept) : gradient;
}

// The sums of dy and of dy * xhat over [first, end) (dy as tdm_bn_dy
// gives it), in the order of tdm_run_sum.
inline float2 tdm_run_backward_sums(__global const float *x, __global const float *dy,
                                    __global const float *y, int relu, uint first, uint end,
                                    float mean, float invstd)
{
    float4 dy_sums = (float4)(0.0f), dy_xhat_sums = (float4)(0.0f);
    uint i = first;
    for (; i + 4 <= end; i += 4) {
        const float4 g = tdm_bn_dy4(dy, y, i, relu);
        dy_sums += g;
        dy_xhat_sums += g * ((vload4(0, x + i) - mean) * invstd);
    }
    float2 sums = (float2)((dy_sums.x + dy_sums.y) + (dy_sums.z + dy_sums.w),
                           (dy_xhat_sums.x + dy_xhat_sums.y) + (dy_xhat_sums.z + dy_xhat_sums.w));
    for (; i < end; i++) {
        const float g = tdm_bn_dy(dy, y, i, relu);
        sums += (float2)(g, g * ((x[i] - mean) * invstd));
    }
    return sums;
}

// Channel c's means of dy and of dy * xhat, the same in every work-item;
// work-item 0 adds the sums to dbeta and dgamma. x, dy and y at the
// channel's first value, shared as in tdm_channel_sum.
inline float2 tdm_bn_backward_means(__global const float *x, __global const float *dy,
                                    __global const float *y, int relu, uint c, uint batch,
                                    uint stride, uint spatial, float mean, float invstd,
                                    __global float *dgamma, __global float *dbeta,
                                    __local float2 *partial)
{
    const uint parts = tdm_channel_parts(batch);
    float2 sums = (float2)(0.0f, 0.0f); // sum(dy), sum(dy * xhat)
    for (uint u = get_local_id(0); u < batch * parts; u += TDM_GROUP_SIZE) {
        const uint2 piece = tdm_channel_piece(u, parts, stride, spatial);
        sums += tdm_run_backward_sums(x, dy, y, relu, piece.x, piece.y, mean, invstd);
    }
    sums = tdm_group_sum2(sums, partial);
    if (get_local_id(0) == 0) {
        dgamma[c] += sums.y;
        dbeta[c] += sums.x;
    }
    return sums / (float)(batch * spatial);
}

// dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))
inline float tdm_bn_gradient(float x, float dy, float mean, float invstd, float gamma, float2 means)
{
    const float xhat = (x - mean) * invstd;
    return gamma * invstd * (dy - means.x - xhat * means.y);
}

// dx[i] = tdm_bn_gradient over [first, end) (dy as tdm_bn_dy gives it),
// four values at a time (the same formula a lane: the same bits).
inline void tdm_bn_gradients(__global const float *x, __global const float *dy,
                             __global const float *y, int relu, __global float *dx, uint first,
                             uint end, float mean, float invstd, float gamma, float2 means)
{
    uint i = first;
    for (; i + 4 <= end; i += 4) {
        const float4 g = tdm_bn_dy4(dy, y, i, relu);
        const float4 xhat = (vload4(0, x + i) - mean) * invstd;
        vstore4(gamma * invstd * (g - means.x - xhat * means.y), 0, dx + i);
    }
    for (; i < end; i++)
        dx[i] = tdm_bn_gradient(x[i], tdm_bn_dy(dy, y, i, relu), mean, invstd, gamma, means);
}

// Backward, pass 1 (one work-group per channel): dgamma, dbeta, and the
// means into means[2c], means[2c + 1] for pass 2.
__kernel __attribute__((reqd_work_group_size(TDM_GROUP_SIZE, 1, 1))) void
tdm_batchnorm_backward_reduce(uint batch, tdm_divisor channels, tdm_divisor spatial,
                              __global const float *x, uint x_offset, __global const float *dy,
                              uint dy_offset, __global const float *y, uint y_offset, int relu,
                              __global const float *save_mean, uint save_mean_offset,
                              __global const float *save_invstd, uint save_invstd_offset,
                              __global float *dgamma, uint dgamma_offset, __global float *dbeta,
                              uint dbeta_offset, __global float *means, uint means_offset)
{
    __local float2 partial[TDM_GROUP_SIZE + 1];
    const uint c = get_group_id(0), first = c * spatial.x;
    const float2 m = tdm_bn_backward_means(
        x + x_offset + first, dy + dy_offset + first, y + y_offset + first, relu, c, batch,
        channels.x * spatial.x, spatial.x, save_mean[save_mean_offset + c],
        save_invstd[save_invstd_offset + c], dgamma + dgamma_offset, dbeta + dbeta_offset, partial);
    if (get_local_id(0) == 0)
        vstore2(m, c, means + means_offset);
}

// Backward, pass 2, over all values, one work-item each as in
// tdm_batchnorm_normalize.
__kernel void tdm_batchnorm_backward_apply(
    uint batch, tdm_divisor channels, tdm_divisor spatial, __global const float *x, uint x_offset,
    __global const float *dy, uint dy_offset, __global const float *y, uint y_offset, int relu,
    __global const float *save_mean, uint save_mean_offset, __global const float *save_invstd,
    uint save_invstd_offset, __global const float *gamma, uint gamma_offset,
    __global const float *means, uint means_offset, __global float *dx, uint dx_offset)
{
    const uint s = get_global_id(0), plane = tdm_plane();
    if (s >= spatial.x || plane >= batch * channels.x)
        return;
    const uint c = tdm_mod(plane, channels), id = plane * spatial.x + s;
    dx[dx_offset + id] =
        tdm_bn_gradient(x[x_offset + id], tdm_bn_dy(dy + dy_offset, y + y_offset, id, relu),
                        save_mean[save_mean_offset + c], save_invstd[save_invstd_offset + c],
                        gamma[gamma_offset + c], vload2(c, means + means_offset));
}

// Both passes for one channel a work-group, in one launch: the same values;
// first, with the pool, dy from the pool's gradient.
__kernel __attribute__((reqd_work_group_size(TDM_GROUP_SIZE, 1, 1))) void tdm_batchnorm_backward(
    uint batch, tdm_divisor channels, tdm_divisor spatial, __global const float *x, uint x_offset,
    __global float *dy, uint dy_offset, __global const float *y, uint y_offset, int relu,
    __global const float *save_mean, uint save_mean_offset, __global const float *save_invstd,
    uint save_invstd_offset, __global const float *gamma, uint gamma_offset, __global float *dgamma,
    uint dgamma_offset, __global float *dbeta, uint dbeta_offset, __global float *dx,
    uint dx_offset, TDM_BN_POOL)
{
    __local float2 partial[TDM_GROUP_SIZE + 1];
    const uint c = get_group_id(0), stride = channels.x * spatial.x, first = c * spatial.x;
    if (pool)
        tdm_bn_unpool(dy + dy_offset + first, c, batch, channels.x, stride, spatial, pool, width,
                      out_w, out_spatial, pooled, pooled_offset, argmax, argmax_offset);
    const float mean = save_mean[save_mean_offset + c];
    const float invstd = save_invstd[save_invstd_offset + c], g = gamma[gamma_offset + c];
    const float2 m = tdm_bn_backward_means(
        x + x_offset + first, dy + dy_offset + first, y + y_offset + first, relu, c, batch, stride,
        spatial.x, mean, invstd, dgamma + dgamma_offset, dbeta + dbeta_offset, partial);
    const uint parts = tdm_channel_parts(batch);
    for (uint u = get_local_id(0); u < batch * parts; u += TDM_GROUP_SIZE) {
        const uint2 piece = first + tdm_channel_piece(u, parts, stride, spatial.x);
        tdm_bn_gradients(x + x_offset, dy + dy_offset, y + y_offset, relu, dx + dx_offset, piece.x,
                         piece.y, mean, invstd, g, m);
    }
}

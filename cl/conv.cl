// The primitives conv2d is built from (src/backend/layer_ops.c): im2col over
// the whole batch, its adjoint col2im, the axis swap between [N][C][P] and
// [C][N][P], and the per-channel bias. col is [Cin*KH*KW][N*OH*OW].

__kernel void tdm_im2col(__global const float *x, ulong x_offset, __global float *col,
                         ulong col_offset, ulong batch, ulong channels, ulong height, ulong width,
                         ulong kernel_h, ulong kernel_w, ulong stride_h, ulong stride_w,
                         ulong pad_h, ulong pad_w, ulong out_h, ulong out_w)
{
    const ulong spatial = out_h * out_w, columns = batch * spatial;
    const ulong total = channels * kernel_h * kernel_w * columns;
    for (ulong id = get_global_id(0); id < total; id += get_global_size(0)) {
        const ulong row = id / columns, column = id % columns;
        const ulong j = row % kernel_w, i = (row / kernel_w) % kernel_h;
        const ulong c = row / (kernel_w * kernel_h);
        const ulong n = column / spatial, p = column % spatial;
        const ulong h = (p / out_w) * stride_h + i, w = (p % out_w) * stride_w + j;
        const bool inside = h >= pad_h && h - pad_h < height && w >= pad_w && w - pad_w < width;
        col[col_offset + id] =
            inside ? x[x_offset + ((n * channels + c) * height + h - pad_h) * width + w - pad_w]
                   : 0.0f;
    }
}

// Output index o with in + pad = o * stride + k, or out_size when there is none.
ulong tdm_meeting_output(ulong in, ulong pad, ulong k, ulong stride, ulong out_size)
{
    if (in + pad < k || (in + pad - k) % stride != 0)
        return out_size;
    const ulong o = (in + pad - k) / stride;
    return o < out_size ? o : out_size;
}

// Each x gathers its col entries in (i, j) order, as the cpu backend does.
__kernel void tdm_col2im(__global const float *col, ulong col_offset, __global float *x,
                         ulong x_offset, ulong batch, ulong channels, ulong height, ulong width,
                         ulong kernel_h, ulong kernel_w, ulong stride_h, ulong stride_w,
                         ulong pad_h, ulong pad_w, ulong out_h, ulong out_w)
{
    const ulong spatial = out_h * out_w, columns = batch * spatial;
    const ulong total = batch * channels * height * width;
    for (ulong id = get_global_id(0); id < total; id += get_global_size(0)) {
        const ulong w = id % width, h = (id / width) % height;
        const ulong c = (id / (width * height)) % channels, n = id / (width * height * channels);
        float sum = 0.0f;
        for (ulong i = 0; i < kernel_h; i++) {
            const ulong oh = tdm_meeting_output(h, pad_h, i, stride_h, out_h);
            if (oh == out_h)
                continue;
            for (ulong j = 0; j < kernel_w; j++) {
                const ulong ow = tdm_meeting_output(w, pad_w, j, stride_w, out_w);
                if (ow == out_w)
                    continue;
                const ulong row = (c * kernel_h + i) * kernel_w + j;
                sum += col[col_offset + row * columns + n * spatial + oh * out_w + ow];
            }
        }
        x[x_offset + id] = sum;
    }
}

// The dense matrix of a convolution over small images, one entry per
// work-item: T[(co*OH + oh)*OW + ow][(ci*H + h)*W + w] = the weight tap
// linking output (oh, ow) and input (h, w), or 0.
__kernel void tdm_conv_dense_weight(__global const float *weight, ulong weight_offset,
                                    __global float *dense, ulong dense_offset, ulong batch,
                                    ulong channels, ulong height, ulong width, ulong kernel_h,
                                    ulong kernel_w, ulong stride_h, ulong stride_w, ulong pad_h,
                                    ulong pad_w, ulong out_h, ulong out_w, ulong out_channels)
{
    const ulong columns = channels * height * width, spatial = out_h * out_w;
    const ulong total = out_channels * spatial * columns;
    for (ulong id = get_global_id(0); id < total; id += get_global_size(0)) {
        const ulong row = id / columns, column = id % columns;
        const ulong co = row / spatial, oh = (row % spatial) / out_w, ow = row % out_w;
        const ulong ci = column / (height * width), h = (column / width) % height;
        const ulong w = column % width;
        const ulong i = h + pad_h - oh * stride_h, j = w + pad_w - ow * stride_w;
        const bool linked = h + pad_h >= oh * stride_h && w + pad_w >= ow * stride_w &&
                            i < kernel_h && j < kernel_w;
        dense[dense_offset + id] =
            linked ? weight[weight_offset + ((co * channels + ci) * kernel_h + i) * kernel_w + j]
                   : 0.0f;
    }
}

// dweight += the sum, over output positions in order, of each tap's entries
// of a gradient of the dense matrix; one work-item per weight.
__kernel void tdm_conv_dense_weight_backward(__global const float *grad, ulong grad_offset,
                                             __global float *dweight, ulong dweight_offset,
                                             ulong batch, ulong channels, ulong height,
                                             ulong width, ulong kernel_h, ulong kernel_w,
                                             ulong stride_h, ulong stride_w, ulong pad_h,
                                             ulong pad_w, ulong out_h, ulong out_w,
                                             ulong out_channels)
{
    const ulong columns = channels * height * width, spatial = out_h * out_w;
    const ulong total = out_channels * channels * kernel_h * kernel_w;
    for (ulong id = get_global_id(0); id < total; id += get_global_size(0)) {
        const ulong j = id % kernel_w, i = (id / kernel_w) % kernel_h;
        const ulong ci = (id / (kernel_w * kernel_h)) % channels;
        const ulong co = id / (kernel_w * kernel_h * channels);
        float sum = 0.0f;
        for (ulong p = 0; p < spatial; p++) {
            const ulong h = (p / out_w) * stride_h + i, w = (p % out_w) * stride_w + j;
            if (h < pad_h || w < pad_w || h - pad_h >= height || w - pad_w >= width)
                continue;
            sum += grad[grad_offset + (co * spatial + p) * columns +
                        (ci * height + h - pad_h) * width + w - pad_w];
        }
        dweight[dweight_offset + id] += sum;
    }
}

// dst[b][a][s] = src[a][b][s] for src [outer][inner][spatial].
__kernel void tdm_swap_axes(ulong outer, ulong inner, ulong spatial, __global const float *src,
                            ulong src_offset, __global float *dst, ulong dst_offset)
{
    const ulong total = outer * inner * spatial;
    for (ulong id = get_global_id(0); id < total; id += get_global_size(0)) {
        const ulong s = id % spatial, a = (id / spatial) % outer, b = id / (spatial * outer);
        dst[dst_offset + id] = src[src_offset + (a * inner + b) * spatial + s];
    }
}

__kernel void tdm_bias_add(ulong batch, ulong channels, ulong spatial, __global const float *bias,
                           ulong bias_offset, __global float *y, ulong y_offset)
{
    const ulong total = batch * channels * spatial;
    for (ulong id = get_global_id(0); id < total; id += get_global_size(0))
        y[y_offset + id] += bias[bias_offset + (id / spatial) % channels];
}

// One work-group per channel.
__kernel __attribute__((reqd_work_group_size(TDM_GROUP_SIZE, 1, 1))) void
tdm_bias_backward(ulong batch, ulong channels, ulong spatial, __global const float *dy,
                  ulong dy_offset, __global float *dbias, ulong dbias_offset)
{
    __local float partial[TDM_GROUP_SIZE];
    const ulong c = get_group_id(0), count = batch * spatial;
    float sum = 0.0f;
    for (ulong k = get_local_id(0); k < count; k += TDM_GROUP_SIZE)
        sum += dy[dy_offset + tdm_channel_index(k, c, channels, spatial)];
    sum = tdm_group_sum(sum, partial);
    if (get_local_id(0) == 0)
        dbias[dbias_offset + c] += sum;
}

// The primitives conv2d is built from (src/backend/layer_ops.c): im2col over
// the whole batch, its adjoint col2im, the axis swap between [N][C][P] and
// [C][N][P], and the per-channel bias. col is [Cin*KH*KW][N*OH*OW].

__kernel void tdm_im2col(__global const float *x, uint x_offset, __global float *col,
                         uint col_offset, uint batch, uint channels, uint height, uint width,
                         uint kernel_h, uint kernel_w, uint stride_h, uint stride_w,
                         uint pad_h, uint pad_w, uint out_h, uint out_w)
{
    const uint spatial = out_h * out_w, columns = batch * spatial;
    const uint total = channels * kernel_h * kernel_w * columns;
    for (uint id = get_global_id(0); id < total; id += get_global_size(0)) {
        const uint row = id / columns, column = id % columns;
        const uint j = row % kernel_w, i = (row / kernel_w) % kernel_h;
        const uint c = row / (kernel_w * kernel_h);
        const uint n = column / spatial, p = column % spatial;
        const uint h = (p / out_w) * stride_h + i, w = (p % out_w) * stride_w + j;
        const bool inside = h >= pad_h && h - pad_h < height && w >= pad_w && w - pad_w < width;
        col[col_offset + id] =
            inside ? x[x_offset + ((n * channels + c) * height + h - pad_h) * width + w - pad_w]
                   : 0.0f;
    }
}

// Output index o with in + pad = o * stride + k, or out_size when there is none.
uint tdm_meeting_output(uint in, uint pad, uint k, uint stride, uint out_size)
{
    if (in + pad < k || (in + pad - k) % stride != 0)
        return out_size;
    const uint o = (in + pad - k) / stride;
    return o < out_size ? o : out_size;
}

// Each x gathers its col entries in (i, j) order, as the cpu backend does.
__kernel void tdm_col2im(__global const float *col, uint col_offset, __global float *x,
                         uint x_offset, uint batch, uint channels, uint height, uint width,
                         uint kernel_h, uint kernel_w, uint stride_h, uint stride_w,
                         uint pad_h, uint pad_w, uint out_h, uint out_w)
{
    const uint spatial = out_h * out_w, columns = batch * spatial;
    const uint total = batch * channels * height * width;
    for (uint id = get_global_id(0); id < total; id += get_global_size(0)) {
        const uint w = id % width, h = (id / width) % height;
        const uint c = (id / (width * height)) % channels, n = id / (width * height * channels);
        float sum = 0.0f;
        for (uint i = 0; i < kernel_h; i++) {
            const uint oh = tdm_meeting_output(h, pad_h, i, stride_h, out_h);
            if (oh == out_h)
                continue;
            for (uint j = 0; j < kernel_w; j++) {
                const uint ow = tdm_meeting_output(w, pad_w, j, stride_w, out_w);
                if (ow == out_w)
                    continue;
                const uint row = (c * kernel_h + i) * kernel_w + j;
                sum += col[col_offset + row * columns + n * spatial + oh * out_w + ow];
            }
        }
        x[x_offset + id] = sum;
    }
}

// The dense matrix of a convolution over small images, one entry per
// work-item: T[(co*OH + oh)*OW + ow][(ci*H + h)*W + w] = the weight tap
// linking output (oh, ow) and input (h, w), or 0.
__kernel void tdm_conv_dense_weight(__global const float *weight, uint weight_offset,
                                    __global float *dense, uint dense_offset, uint batch,
                                    uint channels, uint height, uint width, uint kernel_h,
                                    uint kernel_w, uint stride_h, uint stride_w, uint pad_h,
                                    uint pad_w, uint out_h, uint out_w, uint out_channels)
{
    const uint columns = channels * height * width, spatial = out_h * out_w;
    const uint total = out_channels * spatial * columns;
    for (uint id = get_global_id(0); id < total; id += get_global_size(0)) {
        const uint row = id / columns, column = id % columns;
        const uint co = row / spatial, oh = (row % spatial) / out_w, ow = row % out_w;
        const uint ci = column / (height * width), h = (column / width) % height;
        const uint w = column % width;
        const uint i = h + pad_h - oh * stride_h, j = w + pad_w - ow * stride_w;
        const bool linked = h + pad_h >= oh * stride_h && w + pad_w >= ow * stride_w &&
                            i < kernel_h && j < kernel_w;
        dense[dense_offset + id] =
            linked ? weight[weight_offset + ((co * channels + ci) * kernel_h + i) * kernel_w + j]
                   : 0.0f;
    }
}

// dweight += the sum, over output positions in order, of each tap's entries
// of a gradient of the dense matrix; one work-item per weight.
__kernel void tdm_conv_dense_weight_backward(__global const float *grad, uint grad_offset,
                                             __global float *dweight, uint dweight_offset,
                                             uint batch, uint channels, uint height,
                                             uint width, uint kernel_h, uint kernel_w,
                                             uint stride_h, uint stride_w, uint pad_h,
                                             uint pad_w, uint out_h, uint out_w,
                                             uint out_channels)
{
    const uint columns = channels * height * width, spatial = out_h * out_w;
    const uint total = out_channels * channels * kernel_h * kernel_w;
    for (uint id = get_global_id(0); id < total; id += get_global_size(0)) {
        const uint j = id % kernel_w, i = (id / kernel_w) % kernel_h;
        const uint ci = (id / (kernel_w * kernel_h)) % channels;
        const uint co = id / (kernel_w * kernel_h * channels);
        float sum = 0.0f;
        for (uint p = 0; p < spatial; p++) {
            const uint h = (p / out_w) * stride_h + i, w = (p % out_w) * stride_w + j;
            if (h < pad_h || w < pad_w || h - pad_h >= height || w - pad_w >= width)
                continue;
            sum += grad[grad_offset + (co * spatial + p) * columns +
                        (ci * height + h - pad_h) * width + w - pad_w];
        }
        dweight[dweight_offset + id] += sum;
    }
}

// dst[b][a][s] = src[a][b][s] for src [outer][inner][spatial].
__kernel void tdm_swap_axes(uint outer, uint inner, uint spatial, __global const float *src,
                            uint src_offset, __global float *dst, uint dst_offset)
{
    const uint total = outer * inner * spatial;
    for (uint id = get_global_id(0); id < total; id += get_global_size(0)) {
        const uint s = id % spatial, a = (id / spatial) % outer, b = id / (spatial * outer);
        dst[dst_offset + id] = src[src_offset + (a * inner + b) * spatial + s];
    }
}

__kernel void tdm_bias_add(uint batch, uint channels, uint spatial, __global const float *bias,
                           uint bias_offset, __global float *y, uint y_offset)
{
    const uint total = batch * channels * spatial;
    for (uint id = get_global_id(0); id < total; id += get_global_size(0))
        y[y_offset + id] += bias[bias_offset + (id / spatial) % channels];
}

// One work-group per channel.
__kernel __attribute__((reqd_work_group_size(TDM_GROUP_SIZE, 1, 1))) void
tdm_bias_backward(uint batch, uint channels, uint spatial, __global const float *dy,
                  uint dy_offset, __global float *dbias, uint dbias_offset)
{
    __local float partial[TDM_GROUP_SIZE];
    const uint c = get_group_id(0), count = batch * spatial;
    float sum = 0.0f;
    for (uint k = get_local_id(0); k < count; k += TDM_GROUP_SIZE)
        sum += dy[dy_offset + tdm_channel_index(k, c, channels, spatial)];
    sum = tdm_group_sum(sum, partial);
    if (get_local_id(0) == 0)
        dbias[dbias_offset + c] += sum;
}

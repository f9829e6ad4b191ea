// The primitives conv2d is built from (src/backend/layer_ops.c): im2col over
// the whole batch, its adjoint col2im, the axis swap between [N][C][P] and
// [C][N][P], and the per-channel bias. col is [Cin*KH*KW][N*OH*OW].

// The shape every conv primitive takes, in this order, after its two
// tensors; tdm_divisor for the sizes divided by. out_spatial = OH * OW,
// columns = N * OH * OW, in_columns = Cin * H * W.
#define TDM_CONV_SHAPE                                                                             \
    tdm_divisor batch, tdm_divisor channels, tdm_divisor height, tdm_divisor width,                \
        tdm_divisor kernel_h, tdm_divisor kernel_w, tdm_divisor stride_h, tdm_divisor stride_w,    \
        uint pad_h, uint pad_w, uint out_h, tdm_divisor out_w, uint out_channels,                  \
        tdm_divisor out_spatial, tdm_divisor columns, tdm_divisor in_columns
// Those arguments, passed on.
#define TDM_CONV_SHAPE_NAMES                                                                       \
    batch, channels, height, width, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, out_h,   \
        out_w, out_channels, out_spatial, columns, in_columns

// col's entry for tap (i, j) of channel c and output (oh, ow) of sample n:
// x at that input, or 0 in the padding; plane at x[n][c][0][0].
inline float tdm_col_entry(__global const float *plane, uint i, uint j, uint oh, uint ow,
                           uint stride_h, uint stride_w, uint pad_h, uint pad_w, uint height,
                           uint width)
{
    const uint h = oh * stride_h + i, w = ow * stride_w + j;
    const bool inside = h >= pad_h && h - pad_h < height && w >= pad_w && w - pad_w < width;
    return inside ? plane[(h - pad_h) * width + w - pad_w] : 0.0f;
}

// (c * KH + i) * KW + j (a row of col, a weight of a (co, ci) pair c) as
// (c, i, j).
inline uint3 tdm_tap_of(uint index, tdm_divisor kernel_h, tdm_divisor kernel_w)
{
    const uint tap = tdm_div(index, kernel_w), c = tdm_div(tap, kernel_h);
    return (uint3)(c, tap - c * kernel_h.x, index - tap * kernel_w.x);
}

// One entry of col a work-item (a GPU).
__kernel void tdm_im2col(__global const float *x, uint x_offset, __global float *col,
                         uint col_offset, TDM_CONV_SHAPE)
{
    const uint total = channels.x * kernel_h.x * kernel_w.x * columns.x;
    const uint id = get_global_id(0);
    if (id >= total)
        return;
    const uint row = tdm_div(id, columns), column = id - row * columns.x;
    const uint3 tap = tdm_tap_of(row, kernel_h, kernel_w);
    const uint n = tdm_div(column, out_spatial), p = column - n * out_spatial.x;
    const uint oh = tdm_div(p, out_w), ow = p - oh * out_w.x;
    col[col_offset + id] =
        tdm_col_entry(x + x_offset + (n * channels.x + tap.x) * height.x * width.x, tap.y, tap.z,
                      oh, ow, stride_h.x, stride_w.x, pad_h, pad_w, height.x, width.x);
}

// A row of col's entries for one sample a work-item, (row, n), in order (a
// CPU device).
__kernel void tdm_im2col_runs(__global const float *x, uint x_offset, __global float *col,
                              uint col_offset, TDM_CONV_SHAPE)
{
    const uint id = get_global_id(0);
    const uint row = tdm_div(id, batch), n = id - row * batch.x;
    if (row >= channels.x * kernel_h.x * kernel_w.x)
        return;
    const uint3 tap = tdm_tap_of(row, kernel_h, kernel_w);
    __global const float *plane = x + x_offset + (n * channels.x + tap.x) * height.x * width.x;
    __global float *run = col + col_offset + row * columns.x + n * out_spatial.x;
    for (uint oh = 0; oh < out_h; oh++)
        for (uint ow = 0; ow < out_w.x; ow++)
            run[oh * out_w.x + ow] = tdm_col_entry(plane, tap.y, tap.z, oh, ow, stride_h.x,
                                                   stride_w.x, pad_h, pad_w, height.x, width.x);
}

// Output index o with in + pad = o * stride + k, or out_size when there is none.
uint tdm_meeting_output(uint in, uint pad, uint k, tdm_divisor stride, uint out_size)
{
    if (in + pad < k)
        return out_size;
    const uint o = tdm_div(in + pad - k, stride);
    return o * stride.x == in + pad - k && o < out_size ? o : out_size;
}

// Each x gathers its col entries in (i, j) order, as the cpu backend does.
__kernel void tdm_col2im(__global const float *col, uint col_offset, __global float *x,
                         uint x_offset, TDM_CONV_SHAPE)
{
    const uint total = batch.x * channels.x * height.x * width.x;
    const uint id = get_global_id(0);
    if (id >= total)
        return;
    const uint row = tdm_div(id, width), w = id - row * width.x;
    const uint plane = tdm_div(row, height), h = row - plane * height.x;
    const uint n = tdm_div(plane, channels), c = plane - n * channels.x;
    float sum = 0.0f;
    for (uint i = 0; i < kernel_h.x; i++) {
        const uint oh = tdm_meeting_output(h, pad_h, i, stride_h, out_h);
        if (oh == out_h)
            continue;
        for (uint j = 0; j < kernel_w.x; j++) {
            const uint ow = tdm_meeting_output(w, pad_w, j, stride_w, out_w.x);
            if (ow == out_w.x)
                continue;
            const uint tap = (c * kernel_h.x + i) * kernel_w.x + j;
            sum += col[col_offset + tap * columns.x + n * out_spatial.x + oh * out_w.x + ow];
        }
    }
    x[x_offset + id] = sum;
}

// The input gradient without col or T at dx[n][ci][h][w]: the sum over
// taps (i, j) in order, then co in order, of dy[n][co][oh][ow] *
// w[co][ci][i][j] for the output the tap links (h, w) to; g at dy[n][0][0][0],
// wt at weight[0][ci][0][0].
inline float tdm_direct_input_gradient(__global const float *g, __global const float *wt, uint h,
                                       uint w, TDM_CONV_SHAPE)
{
    const uint taps = kernel_h.x * kernel_w.x;
    float sum = 0.0f;
    for (uint i = 0; i < kernel_h.x; i++) {
        const uint oh = tdm_meeting_output(h, pad_h, i, stride_h, out_h);
        for (uint j = 0; j < kernel_w.x && oh < out_h; j++) {
            const uint ow = tdm_meeting_output(w, pad_w, j, stride_w, out_w.x);
            if (ow == out_w.x)
                continue;
            const uint p = oh * out_w.x + ow, tap = i * kernel_w.x + j;
            for (uint co = 0; co < out_channels; co++)
                sum += g[co * out_spatial.x + p] * wt[co * channels.x * taps + tap];
        }
    }
    return sum;
}

// The dense matrix of a convolution over small images:
// T[(co*OH + oh)*OW + ow][(ci*H + h)*W + w] = the weight tap linking output
// (oh, ow) and input (h, w), or 0; w_pair at weight[co][ci][0][0].
inline float tdm_dense_entry(__global const float *w_pair, uint oh, uint ow, uint h, uint w,
                             uint stride_h, uint stride_w, uint pad_h, uint pad_w, uint kernel_h,
                             uint kernel_w)
{
    const uint i = h + pad_h - oh * stride_h, j = w + pad_w - ow * stride_w;
    const bool linked =
        h + pad_h >= oh * stride_h && w + pad_w >= ow * stride_w && i < kernel_h && j < kernel_w;
    return linked ? w_pair[i * kernel_w + j] : 0.0f;
}

// T one entry a work-item, over (column, row of T): a row's entries are
// contiguous, and its output position (co, oh, ow) is the same for the
// whole row. One form for every device: on PoCL 54-63 us a launch for
// ResNet(64)'s, against 97-100 with a work-item a (co, ci) block and 79-91
// with the index of the entry divided five ways.
__kernel void tdm_conv_dense_weight(__global const float *weight, uint weight_offset,
                                    __global float *dense, uint dense_offset, TDM_CONV_SHAPE)
{
    const uint column = get_global_id(0), row = tdm_plane();
    if (column >= in_columns.x || row >= out_channels * out_spatial.x)
        return;
    const uint co = tdm_div(row, out_spatial), p = row - co * out_spatial.x;
    const uint oh = tdm_div(p, out_w), ow = p - oh * out_w.x;
    const uint line = tdm_div(column, width), w = column - line * width.x;
    const uint ci = tdm_div(line, height), h = line - ci * height.x;
    dense[dense_offset + row * in_columns.x + column] =
        tdm_dense_entry(weight + weight_offset + (co * channels.x + ci) * kernel_h.x * kernel_w.x,
                        oh, ow, h, w, stride_h.x, stride_w.x, pad_h, pad_w, kernel_h.x, kernel_w.x);
}

// start plus, over output positions in order, each of tap (i, j)'s
// entries in a gradient of T; grad at the (co, ci) block's first entry.
inline float tdm_dense_tap_add(float start, __global const float *grad, uint i, uint j, uint out_h,
                               uint out_w, uint stride_h, uint stride_w, uint pad_h, uint pad_w,
                               uint height, uint width, uint in_columns)
{
    float sum = start;
    for (uint oh = 0; oh < out_h; oh++) {
        const uint h = oh * stride_h + i;
        if (h < pad_h || h - pad_h >= height)
            continue;
        for (uint ow = 0; ow < out_w; ow++) {
            const uint w = ow * stride_w + j;
            if (w < pad_w || w - pad_w >= width)
                continue;
            sum += grad[(oh * out_w + ow) * in_columns + (h - pad_h) * width + w - pad_w];
        }
    }
    return sum;
}

// dweight += a gradient of T, each weight taking its tap's entries one by
// one in output position order; one weight a work-item (a GPU).
__kernel void tdm_conv_dense_weight_backward(__global const float *grad, uint grad_offset,
                                             __global float *dweight, uint dweight_offset,
                                             TDM_CONV_SHAPE)
{
    const uint total = out_channels * channels.x * kernel_h.x * kernel_w.x;
    const uint id = get_global_id(0);
    if (id >= total)
        return;
    const uint3 tap = tdm_tap_of(id, kernel_h, kernel_w);
    const uint co = tdm_div(tap.x, channels), ci = tap.x - co * channels.x;
    dweight[dweight_offset + id] = tdm_dense_tap_add(
        dweight[dweight_offset + id],
        grad + grad_offset + co * out_spatial.x * in_columns.x + ci * height.x * width.x, tap.y,
        tap.z, out_h, out_w.x, stride_h.x, stride_w.x, pad_h, pad_w, height.x, width.x,
        in_columns.x);
}

// The taps of a (co, ci) pair tdm_direct_weight_gradient sums at once: their
// sums stay in registers (the loop over them unrolled), and the group adds
// them in one step (16 x TDM_GROUP_SIZE floats of local memory).
#define TDM_DIRECT_GRADIENT_TAPS 16

// The weight gradient from x and dy without T's gradient, one (co, ci)
// pair's weights a work-group, up to 16 taps at a time: each work-item sums,
// for every tap, the products of the samples n = lid, lid + TDM_GROUP_SIZE,
// ... (each sample's output positions in order); then each tap's sums are
// added over the group in work-item order (a work-item a tap). partial
// holds TDM_DIRECT_GRADIENT_TAPS * TDM_GROUP_SIZE floats.
inline void tdm_direct_weight_gradient(__global const float *x, __global const float *dy,
                                       __global float *dweight, uint pair, __local float *partial,
                                       TDM_CONV_SHAPE)
{
    const uint lid = get_local_id(0);
    const uint co = tdm_div(pair, channels), ci = pair - co * channels.x;
    const uint taps = kernel_h.x * kernel_w.x;
    for (uint first = 0; first < taps; first += TDM_DIRECT_GRADIENT_TAPS) {
        float sums[TDM_DIRECT_GRADIENT_TAPS];
#pragma unroll
        for (uint k = 0; k < TDM_DIRECT_GRADIENT_TAPS; k++)
            sums[k] = 0.0f;
        for (uint n = lid; n < batch.x; n += TDM_GROUP_SIZE) {
            __global const float *g = dy + (n * out_channels + co) * out_spatial.x;
            __global const float *plane = x + (n * channels.x + ci) * height.x * width.x;
#pragma unroll
            for (uint k = 0; k < TDM_DIRECT_GRADIENT_TAPS; k++) {
                if (first + k >= taps)
                    continue;
                const uint i = tdm_div(first + k, kernel_w), j = first + k - i * kernel_w.x;
                for (uint oh = 0; oh < out_h; oh++) {
                    const uint h = oh * stride_h.x + i;
                    if (h < pad_h || h - pad_h >= height.x)
                        continue;
                    for (uint ow = 0; ow < out_w.x; ow++) {
                        const uint w = ow * stride_w.x + j;
                        if (w >= pad_w && w - pad_w < width.x)
                            sums[k] +=
                                g[oh * out_w.x + ow] * plane[(h - pad_h) * width.x + w - pad_w];
                    }
                }
            }
        }
#pragma unroll
        for (uint k = 0; k < TDM_DIRECT_GRADIENT_TAPS; k++)
            partial[k * TDM_GROUP_SIZE + lid] = sums[k];
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint k = lid; k < TDM_DIRECT_GRADIENT_TAPS && first + k < taps; k += TDM_GROUP_SIZE) {
            float total = 0.0f;
            for (uint l = 0; l < TDM_GROUP_SIZE; l++)
                total += partial[k * TDM_GROUP_SIZE + l];
            dweight[pair * taps + first + k] += total;
        }
        barrier(CLK_LOCAL_MEM_FENCE); // partial is written again for the next taps
    }
}

// A convolution's gradients without col or T (a GPU: one launch where
// GEMMs with T and the sums of T's gradient take three): the first
// weight_groups work-groups (Cout * Cin, or 0 without dweight) each a (co,
// ci) pair's weight gradient, added to dweight; the rest a value of dx a
// work-item, in dx's order (dx_count of them, or 0), + dx's value with
// accumulate.
__kernel __attribute__((reqd_work_group_size(TDM_GROUP_SIZE, 1, 1))) void
tdm_conv_direct_backward(__global const float *x, uint x_offset, __global const float *weight,
                         uint weight_offset, __global const float *dy, uint dy_offset,
                         __global float *dx, uint dx_offset, __global float *dweight,
                         uint dweight_offset, uint weight_groups, uint dx_count, int accumulate,
                         TDM_CONV_SHAPE)
{
    __local float partial[TDM_DIRECT_GRADIENT_TAPS * TDM_GROUP_SIZE];
    const uint group = get_group_id(0);
    if (group < weight_groups) {
        tdm_direct_weight_gradient(x + x_offset, dy + dy_offset, dweight + dweight_offset, group,
                                   partial, TDM_CONV_SHAPE_NAMES);
        return;
    }
    const uint id = (group - weight_groups) * TDM_GROUP_SIZE + get_local_id(0);
    if (id >= dx_count)
        return;
    const uint n = tdm_div(id, in_columns), in_sample = id - n * in_columns.x;
    const uint line = tdm_div(in_sample, width), w = in_sample - line * width.x;
    const uint ci = tdm_div(line, height), h = line - ci * height.x;
    const float sum = tdm_direct_input_gradient(
        dy + dy_offset + n * out_channels * out_spatial.x,
        weight + weight_offset + ci * kernel_h.x * kernel_w.x, h, w, TDM_CONV_SHAPE_NAMES);
    dx[dx_offset + id] = accumulate ? dx[dx_offset + id] + sum : sum;
}

// The same sums, one (co, ci) pair's weights a work-item (a CPU device):
// the block's entries read once, in output position order, each added to
// its tap's weight (ResNet(64)'s block on PoCL: 40-50 us, against 67-73
// with a loop over the taps, each scanning the positions).
__kernel void tdm_conv_dense_weight_backward_blocks(__global const float *grad, uint grad_offset,
                                                    __global float *dweight, uint dweight_offset,
                                                    TDM_CONV_SHAPE)
{
    const uint pair = get_global_id(0);
    if (pair >= out_channels * channels.x)
        return;
    const uint co = tdm_div(pair, channels), ci = pair - co * channels.x;
    __global const float *block =
        grad + grad_offset + co * out_spatial.x * in_columns.x + ci * height.x * width.x;
    __global float *dw = dweight + dweight_offset + pair * kernel_h.x * kernel_w.x;
    for (uint oh = 0; oh < out_h; oh++)
        for (uint ow = 0; ow < out_w.x; ow++, block += in_columns.x)
            for (uint h = 0; h < height.x; h++) {
                const uint i = h + pad_h - oh * stride_h.x;
                if (h + pad_h < oh * stride_h.x || i >= kernel_h.x)
                    continue;
                for (uint w = 0; w < width.x; w++) {
                    const uint j = w + pad_w - ow * stride_w.x;
                    if (w + pad_w >= ow * stride_w.x && j < kernel_w.x)
                        dw[i * kernel_w.x + j] += block[h * width.x + w];
                }
            }
}

// The product of few taps (Cin*KH*KW, a first layer's) with col, written
// in NCHW: y[n][co][p] = the sum over taps k in order of weight[co][k] *
// col[k][n*P + p], P = OH*OW. One value a work-item over (p, plane = n *
// Cout + co) (a GPU).
__kernel void tdm_conv_col_product(__global const float *weight, uint weight_offset,
                                   __global const float *col, uint col_offset, __global float *y,
                                   uint y_offset, uint taps, tdm_divisor out_channels, uint spatial,
                                   uint planes, uint columns)
{
    const uint p = get_global_id(0), plane = tdm_plane();
    if (p >= spatial || plane >= planes)
        return;
    const uint n = tdm_div(plane, out_channels), co = plane - n * out_channels.x;
    __global const float *w = weight + weight_offset + co * taps;
    __global const float *c = col + col_offset + n * spatial + p;
    float sum = 0.0f;
    for (uint k = 0; k < taps; k++)
        sum += w[k] * c[k * columns];
    y[y_offset + plane * spatial + p] = sum;
}

// The same values, a plane a work-item, 16 positions at a time (a CPU
// device: vector loops).
__kernel void tdm_conv_col_product_planes(__global const float *weight, uint weight_offset,
                                          __global const float *col, uint col_offset,
                                          __global float *y, uint y_offset, uint taps,
                                          tdm_divisor out_channels, uint spatial, uint planes,
                                          uint columns)
{
    const uint plane = get_global_id(0);
    if (plane >= planes)
        return;
    const uint n = tdm_div(plane, out_channels), co = plane - n * out_channels.x;
    __global const float *w = weight + weight_offset + co * taps;
    __global const float *c = col + col_offset + n * spatial;
    __global float *out = y + y_offset + plane * spatial;
    uint p = 0;
    for (; p + 16 <= spatial; p += 16) {
        float16 sums = (float16)(0.0f);
        for (uint k = 0; k < taps; k++)
            sums += w[k] * vload16(0, c + k * columns + p);
        vstore16(sums, 0, out + p);
    }
    for (; p < spatial; p++) {
        float sum = 0.0f;
        for (uint k = 0; k < taps; k++)
            sum += w[k] * c[k * columns + p];
        out[p] = sum;
    }
}

// tdm_conv_col_product's values with col's entries read from x as
// tdm_im2col writes them (a GPU: one launch where im2col and the product
// take two): one value a work-item over (p, plane = co * N + n), the
// samples of a channel side by side so that their work-items read the same
// weights.
__kernel void tdm_conv_direct_forward(__global const float *x, uint x_offset,
                                      __global const float *weight, uint weight_offset,
                                      __global float *y, uint y_offset, TDM_CONV_SHAPE)
{
    const uint p = get_global_id(0), plane = tdm_plane();
    if (p >= out_spatial.x || plane >= out_channels * batch.x)
        return;
    const uint co = tdm_div(plane, batch), n = plane - co * batch.x;
    const uint oh = tdm_div(p, out_w), ow = p - oh * out_w.x;
    __global const float *w = weight + weight_offset + co * channels.x * kernel_h.x * kernel_w.x;
    float sum = 0.0f;
    for (uint c = 0; c < channels.x; c++) {
        __global const float *in = x + x_offset + (n * channels.x + c) * height.x * width.x;
        for (uint i = 0; i < kernel_h.x; i++)
            for (uint j = 0; j < kernel_w.x; j++, w++)
                sum += *w * tdm_col_entry(in, i, j, oh, ow, stride_h.x, stride_w.x, pad_h, pad_w,
                                          height.x, width.x);
    }
    y[y_offset + (n * out_channels + co) * out_spatial.x + p] = sum;
}

// A float16's lanes halved in a fixed tree (lo + hi, four times).
inline float tdm_lanes_sum16(float16 lanes)
{
    const float8 eights = lanes.lo + lanes.hi;
    const float4 fours = eights.lo + eights.hi;
    const float2 twos = fours.lo + fours.hi;
    return twos.x + twos.y;
}

// dweight[co][k] += the sum over n and p of dy[n][co][p] * col[k][n*P + p]:
// each sample's positions in 16 lanes (p mod 16) and the last P mod 16 in a
// tail, samples in order; then the lanes' tree, plus the tail. A weight a
// work-item (a GPU).
__kernel void tdm_conv_col_weight_gradient(__global const float *dy, uint dy_offset,
                                           __global const float *col, uint col_offset,
                                           __global float *dweight, uint dweight_offset,
                                           tdm_divisor taps, uint out_channels, uint batch,
                                           uint spatial, uint columns)
{
    const uint id = get_global_id(0);
    if (id >= out_channels * taps.x)
        return;
    const uint co = tdm_div(id, taps), k = id - co * taps.x, body = spatial & ~15u;
    float16 lanes = (float16)(0.0f);
    float tail = 0.0f;
    for (uint n = 0; n < batch; n++) {
        __global const float *g = dy + dy_offset + (n * out_channels + co) * spatial;
        __global const float *c = col + col_offset + k * columns + n * spatial;
        for (uint p = 0; p < body; p += 16)
            lanes += vload16(0, g + p) * vload16(0, c + p);
        for (uint p = body; p < spatial; p++)
            tail += g[p] * c[p];
    }
    dweight[dweight_offset + id] += tdm_lanes_sum16(lanes) + tail;
}

// The same sums, a channel's taps a work-item (a CPU device): dy's runs are
// read once for all taps, and the loops unrolled to 16 taps (the most:
// TDM_CONV_COL_MAX_TAPS in src/backend/backend_impl.h) keep the lanes in
// registers. ResNet(64)'s conv1 on PoCL: 39-46 us, against 77 a weight a
// work-item.
__kernel void tdm_conv_col_weight_gradient_channels(__global const float *dy, uint dy_offset,
                                                    __global const float *col, uint col_offset,
                                                    __global float *dweight, uint dweight_offset,
                                                    tdm_divisor taps, uint out_channels, uint batch,
                                                    uint spatial, uint columns)
{
    const uint co = get_global_id(0), body = spatial & ~15u;
    if (co >= out_channels)
        return;
    float16 lanes[16];
    float tails[16];
#pragma unroll
    for (uint k = 0; k < 16; k++) {
        lanes[k] = (float16)(0.0f);
        tails[k] = 0.0f;
    }
    for (uint n = 0; n < batch; n++) {
        __global const float *g = dy + dy_offset + (n * out_channels + co) * spatial;
        __global const float *c = col + col_offset + n * spatial;
        for (uint p = 0; p < body; p += 16) {
            const float16 grad = vload16(0, g + p);
#pragma unroll
            for (uint k = 0; k < 16; k++)
                if (k < taps.x)
                    lanes[k] += grad * vload16(0, c + k * columns + p);
        }
        for (uint p = body; p < spatial; p++)
#pragma unroll
            for (uint k = 0; k < 16; k++)
                if (k < taps.x)
                    tails[k] += g[p] * c[k * columns + p];
    }
#pragma unroll
    for (uint k = 0; k < 16; k++)
        if (k < taps.x)
            dweight[dweight_offset + co * taps.x + k] += tdm_lanes_sum16(lanes[k]) + tails[k];
}

// dst[b][a][s] = src[a][b][s] for src [outer][inner][spatial]: a work-item
// a value, (s, plane of dst).
__kernel void tdm_swap_axes(tdm_divisor outer, uint inner, uint spatial, __global const float *src,
                            uint src_offset, __global float *dst, uint dst_offset)
{
    const uint s = get_global_id(0), q = tdm_plane();
    if (s >= spatial || q >= outer.x * inner)
        return;
    const uint b = tdm_div(q, outer), a = q - b * outer.x;
    dst[dst_offset + q * spatial + s] = src[src_offset + (a * inner + b) * spatial + s];
}

// The same, a plane of dst a work-item, its run copied four values at a time
// (a CPU device).
__kernel void tdm_swap_axes_planes(tdm_divisor outer, uint inner, uint spatial,
                                   __global const float *src, uint src_offset, __global float *dst,
                                   uint dst_offset)
{
    const uint q = get_global_id(0);
    if (q >= outer.x * inner)
        return;
    const uint b = tdm_div(q, outer), a = q - b * outer.x;
    __global const float *from = src + src_offset + (a * inner + b) * spatial;
    __global float *to = dst + dst_offset + q * spatial;
    uint s = 0;
    for (; s + 4 <= spatial; s += 4)
        vstore4(vload4(0, from + s), 0, to + s);
    for (; s < spatial; s++)
        to[s] = from[s];
}

// dst[b][c][r] = src[b][r][c] for src [batch][rows][cols]: a 4 x 4 block
// a work-item over (block column, plane = b * row_blocks + block row), four
// vload4 and four vstore4 inside the matrix, a value at a time along its
// right and bottom edges.
__kernel void tdm_transpose(uint rows, uint cols, tdm_divisor row_blocks, uint planes,
                            __global const float *src, uint src_offset, __global float *dst,
                            uint dst_offset)
{
    const uint c = get_global_id(0) * 4, plane = tdm_plane();
    if (c >= cols || plane >= planes)
        return;
    const uint b = tdm_div(plane, row_blocks), r = (plane - b * row_blocks.x) * 4;
    __global const float *in = src + src_offset + b * rows * cols;
    __global float *out = dst + dst_offset + b * rows * cols;
    if (r + 4 <= rows && c + 4 <= cols) {
        const float4 r0 = vload4(0, in + r * cols + c), r1 = vload4(0, in + (r + 1) * cols + c);
        const float4 r2 = vload4(0, in + (r + 2) * cols + c),
                     r3 = vload4(0, in + (r + 3) * cols + c);
        vstore4((float4)(r0.x, r1.x, r2.x, r3.x), 0, out + c * rows + r);
        vstore4((float4)(r0.y, r1.y, r2.y, r3.y), 0, out + (c + 1) * rows + r);
        vstore4((float4)(r0.z, r1.z, r2.z, r3.z), 0, out + (c + 2) * rows + r);
        vstore4((float4)(r0.w, r1.w, r2.w, r3.w), 0, out + (c + 3) * rows + r);
        return;
    }
    for (uint i = r; i < min(r + 4, rows); i++)
        for (uint j = c; j < min(c + 4, cols); j++)
            out[j * rows + i] = in[i * cols + j];
}

__kernel void tdm_bias_add(uint batch, tdm_divisor channels, tdm_divisor spatial,
                           __global const float *bias, uint bias_offset, __global float *y,
                           uint y_offset)
{
    const uint total = batch * channels.x * spatial.x;
    const uint id = get_global_id(0);
    if (id >= total)
        return;
    y[y_offset + id] += bias[bias_offset + tdm_mod(tdm_div(id, spatial), channels)];
}

// One work-group per channel.
__kernel __attribute__((reqd_work_group_size(TDM_GROUP_SIZE, 1, 1))) void
tdm_bias_backward(uint batch, tdm_divisor channels, tdm_divisor spatial, __global const float *dy,
                  uint dy_offset, __global float *dbias, uint dbias_offset)
{
    __local float partial[TDM_GROUP_SIZE + 1];
    const uint c = get_group_id(0);
    const float sum = tdm_group_sum(
        tdm_channel_sum(dy + dy_offset + c * spatial.x, batch, channels.x * spatial.x, spatial.x),
        partial);
    if (get_local_id(0) == 0)
        dbias[dbias_offset + c] += sum;
}

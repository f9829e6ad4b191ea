// Max-pool (no padding, floor mode) and global average pool, as PyTorch.

// The shape both max-pool kernels take first; tdm_divisor for the sizes
// divided by. Forward runs a work-item an output, over all planes' outputs
// (a plane's outputs, 2x2 in ResNet's block, are too few for a vector loop
// over a plane); backward a work-item an input, (input, plane), launched as
// batch norm's elementwise passes are, or on a CPU device a plane a
// work-item.
#define TDM_POOL_SHAPE                                                                             \
    uint planes, tdm_divisor height, tdm_divisor width, uint kernel_h, uint kernel_w,              \
        tdm_divisor stride_h, tdm_divisor stride_w, tdm_divisor out_h, tdm_divisor out_w

// Output id of all planes' outputs as (plane, oh, ow).
inline uint3 tdm_pool_output(uint id, tdm_divisor out_h, tdm_divisor out_w)
{
    const uint row = tdm_div(id, out_w), p = tdm_div(row, out_h);
    return (uint3)(p, row - p * out_h.x, id - row * out_w.x);
}

// One work-item per output; argmax = h * W + w of the first maximum.
__kernel void tdm_maxpool2d(TDM_POOL_SHAPE, __global const float *x, uint x_offset,
                            __global float *y, uint y_offset, __global int *argmax,
                            uint argmax_offset)
{
    const uint id = get_global_id(0);
    const uint3 o = tdm_pool_output(id, out_h, out_w);
    const uint p = o.x, oh = o.y, ow = o.z;
    if (p >= planes)
        return;
    const uint h0 = oh * stride_h.x, w0 = ow * stride_w.x;
    __global const float *plane = x + x_offset + p * height.x * width.x;
    float best = -INFINITY;
    uint best_index = h0 * width.x + w0;
    for (uint i = 0; i < kernel_h; i++)
        for (uint j = 0; j < kernel_w; j++)
            tdm_max_step(plane[(h0 + i) * width.x + w0 + j], (h0 + i) * width.x + w0 + j, &best,
                         &best_index);
    y[y_offset + id] = best;
    argmax[argmax_offset + id] = (int)best_index;
}

// The same for 2x2 windows at stride 2 (ResNet's and LeNet's) without a
// loop: PoCL vectorises across work-items only around loop-free code.
__kernel void tdm_maxpool2d_2x2(TDM_POOL_SHAPE, __global const float *x, uint x_offset,
                                __global float *y, uint y_offset, __global int *argmax,
                                uint argmax_offset)
{
    const uint id = get_global_id(0);
    const uint3 o = tdm_pool_output(id, out_h, out_w);
    if (o.x >= planes)
        return;
    float best;
    uint best_index;
    tdm_window_2x2(x + x_offset + o.x * height.x * width.x, 2 * o.y * width.x + 2 * o.z, width.x,
                   &best, &best_index);
    y[y_offset + id] = best;
    argmax[argmax_offset + id] = (int)best_index;
}

// tdm_max_step for two windows at once (the same comparisons).
inline void tdm_max_step2(float2 value, uint2 index, float2 *best, uint2 *best_index)
{
    const int2 wins = value > *best || isnan(value);
    *best = select(*best, value, wins);
    *best_index = select(*best_index, index, wins);
}

// 2x2 windows at stride 2, an output row of a plane a work-item (a CPU
// device), two windows at a time from four-float loads of its two input
// rows: the even and odd columns are the windows' left and right values.
__kernel void tdm_maxpool2d_2x2_rows(TDM_POOL_SHAPE, __global const float *x, uint x_offset,
                                     __global float *y, uint y_offset, __global int *argmax,
                                     uint argmax_offset)
{
    const uint row = get_global_id(0);
    const uint p = tdm_div(row, out_h), oh = row - p * out_h.x;
    if (p >= planes)
        return;
    const uint top = 2 * oh * width.x, bottom = top + width.x;
    __global const float *plane = x + x_offset + p * height.x * width.x;
    __global float *y_row = y + y_offset + row * out_w.x;
    __global int *argmax_row = argmax + argmax_offset + row * out_w.x;
    uint ow = 0;
    for (; ow + 2 <= out_w.x; ow += 2) {
        const float4 upper = vload4(0, plane + top + 2 * ow);
        const float4 lower = vload4(0, plane + bottom + 2 * ow);
        const uint2 left = top + 2 * ow + (uint2)(0, 2);
        float2 best = upper.even;
        uint2 best_index = left;
        tdm_max_step2(upper.odd, left + 1, &best, &best_index);
        tdm_max_step2(lower.even, left + width.x, &best, &best_index);
        tdm_max_step2(lower.odd, left + width.x + 1, &best, &best_index);
        vstore2(best, 0, y_row + ow);
        vstore2(as_int2(best_index), 0, argmax_row + ow);
    }
    for (; ow < out_w.x; ow++) {
        float best;
        uint best_index;
        tdm_window_2x2(plane, top + 2 * ow, width.x, &best, &best_index);
        y_row[ow] = best;
        argmax_row[ow] = (int)best_index;
    }
}

// One work-item per input: the sum of dy over the windows whose argmax it is,
// in window order (no atomics).
__kernel void tdm_maxpool2d_backward(TDM_POOL_SHAPE, __global const int *argmax, uint argmax_offset,
                                     __global const float *dy, uint dy_offset, __global float *dx,
                                     uint dx_offset)
{
    const uint i = get_global_id(0), p = tdm_plane();
    if (i >= height.x * width.x || p >= planes)
        return;
    const uint h = tdm_div(i, width), w = i - h * width.x;
    const uint oh0 = h + 1 > kernel_h ? tdm_div(h + 1 - kernel_h + stride_h.x - 1, stride_h) : 0;
    const uint ow0 = w + 1 > kernel_w ? tdm_div(w + 1 - kernel_w + stride_w.x - 1, stride_w) : 0;
    const uint oh1 = min(tdm_div(h, stride_h) + 1, out_h.x);
    const uint ow1 = min(tdm_div(w, stride_w) + 1, out_w.x);
    const uint base = p * out_h.x * out_w.x;
    float sum = 0.0f;
    for (uint oh = oh0; oh < oh1; oh++)
        for (uint ow = ow0; ow < ow1; ow++)
            if ((uint)argmax[argmax_offset + base + oh * out_w.x + ow] == i)
                sum += dy[dy_offset + base + oh * out_w.x + ow];
    dx[dx_offset + p * height.x * width.x + i] = sum;
}

// The same for 2x2 windows at stride 2, without a loop: each input lies in
// at most one window (none past the floor-mode edge); the window index is
// clamped so every read is in range. 0 + dy as the sum above gives it.
__kernel void tdm_maxpool2d_backward_2x2(TDM_POOL_SHAPE, __global const int *argmax,
                                         uint argmax_offset, __global const float *dy,
                                         uint dy_offset, __global float *dx, uint dx_offset)
{
    const uint i = get_global_id(0), p = tdm_plane();
    if (i >= height.x * width.x || p >= planes)
        return;
    const uint h = tdm_div(i, width), w = i - h * width.x, oh = h / 2, ow = w / 2;
    const uint window =
        p * out_h.x * out_w.x + min(oh, out_h.x - 1) * out_w.x + min(ow, out_w.x - 1);
    const bool mine = oh < out_h.x && ow < out_w.x && (uint)argmax[argmax_offset + window] == i;
    const float gradient = 0.0f + dy[dy_offset + window];
    dx[dx_offset + p * height.x * width.x + i] = mine ? gradient : 0.0f;
}

// Backward one work-item per plane (a CPU device): dx = 0, then each
// output's dy added at its argmax, in window order: the sums the input
// work-items above make, in the same order.
__kernel void tdm_maxpool2d_backward_planes(TDM_POOL_SHAPE, __global const int *argmax,
                                            uint argmax_offset, __global const float *dy,
                                            uint dy_offset, __global float *dx, uint dx_offset)
{
    const uint p = get_global_id(0);
    if (p >= planes)
        return;
    __global float *plane = dx + dx_offset + p * height.x * width.x;
    for (uint i = 0; i < height.x * width.x; i++)
        plane[i] = 0.0f;
    const uint first = p * out_h.x * out_w.x;
    for (uint o = first; o < first + out_h.x * out_w.x; o++)
        plane[argmax[argmax_offset + o]] += dy[dy_offset + o];
}

// One work-item per plane, summing in index order like the cpu backend.
// (spatial as tdm_global_avgpool_backward takes it: one host call sets both)
__kernel void tdm_global_avgpool(uint planes, tdm_divisor spatial, __global const float *x,
                                 uint x_offset, __global float *y, uint y_offset)
{
    const uint p = get_global_id(0);
    if (p >= planes)
        return;
    float sum = 0.0f;
    for (uint i = 0; i < spatial.x; i++)
        sum += x[x_offset + p * spatial.x + i];
    y[y_offset + p] = sum / (float)spatial.x;
}

__kernel void tdm_global_avgpool_backward(uint planes, tdm_divisor spatial,
                                          __global const float *dy, uint dy_offset,
                                          __global float *dx, uint dx_offset)
{
    const uint total = planes * spatial.x;
    const uint id = get_global_id(0);
    if (id >= total)
        return;
    dx[dx_offset + id] = dy[dy_offset + tdm_div(id, spatial)] / (float)spatial.x;
}

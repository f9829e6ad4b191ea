// Max-pool (no padding, floor mode) and global average pool, as PyTorch.

// One work-item per output; argmax = h * W + w of the first maximum, where a
// later value wins if greater or NaN (PyTorch's rule).
__kernel void tdm_maxpool2d(uint planes, uint height, uint width, uint kernel_h,
                            uint kernel_w, uint stride_h, uint stride_w, uint out_h,
                            uint out_w, __global const float *x, uint x_offset,
                            __global float *y, uint y_offset, __global int *argmax,
                            uint argmax_offset)
{
    const uint total = planes * out_h * out_w;
    for (uint id = get_global_id(0); id < total; id += get_global_size(0)) {
        const uint ow = id % out_w, oh = (id / out_w) % out_h, p = id / (out_w * out_h);
        const uint h0 = oh * stride_h, w0 = ow * stride_w;
        __global const float *plane = x + x_offset + p * height * width;
        float best = -INFINITY;
        uint best_index = h0 * width + w0;
        for (uint i = 0; i < kernel_h; i++) {
            for (uint j = 0; j < kernel_w; j++) {
                const uint index = (h0 + i) * width + w0 + j;
                const float value = plane[index];
                if (value > best || isnan(value)) {
                    best = value;
                    best_index = index;
                }
            }
        }
        y[y_offset + id] = best;
        argmax[argmax_offset + id] = (int)best_index;
    }
}

// One work-item per input: the sum of dy over the windows whose argmax it is,
// in window order (no atomics).
__kernel void tdm_maxpool2d_backward(uint planes, uint height, uint width, uint kernel_h,
                                     uint kernel_w, uint stride_h, uint stride_w, uint out_h,
                                     uint out_w, __global const int *argmax, uint argmax_offset,
                                     __global const float *dy, uint dy_offset,
                                     __global float *dx, uint dx_offset)
{
    const uint total = planes * height * width;
    for (uint id = get_global_id(0); id < total; id += get_global_size(0)) {
        const uint w = id % width, h = (id / width) % height, p = id / (width * height);
        const uint oh0 = h + 1 > kernel_h ? (h + 1 - kernel_h + stride_h - 1) / stride_h : 0;
        const uint ow0 = w + 1 > kernel_w ? (w + 1 - kernel_w + stride_w - 1) / stride_w : 0;
        const uint oh1 = min(h / stride_h + 1, out_h), ow1 = min(w / stride_w + 1, out_w);
        const uint base = p * out_h * out_w;
        float sum = 0.0f;
        for (uint oh = oh0; oh < oh1; oh++)
            for (uint ow = ow0; ow < ow1; ow++)
                if ((uint)argmax[argmax_offset + base + oh * out_w + ow] == h * width + w)
                    sum += dy[dy_offset + base + oh * out_w + ow];
        dx[dx_offset + id] = sum;
    }
}

// One work-item per plane, summing in index order like the cpu backend.
__kernel void tdm_global_avgpool(uint planes, uint spatial, __global const float *x,
                                 uint x_offset, __global float *y, uint y_offset)
{
    for (uint p = get_global_id(0); p < planes; p += get_global_size(0)) {
        float sum = 0.0f;
        for (uint i = 0; i < spatial; i++)
            sum += x[x_offset + p * spatial + i];
        y[y_offset + p] = sum / (float)spatial;
    }
}

__kernel void tdm_global_avgpool_backward(uint planes, uint spatial, __global const float *dy,
                                          uint dy_offset, __global float *dx, uint dx_offset)
{
    const uint total = planes * spatial;
    for (uint id = get_global_id(0); id < total; id += get_global_size(0))
        dx[dx_offset + id] = dy[dy_offset + id / spatial] / (float)spatial;
}

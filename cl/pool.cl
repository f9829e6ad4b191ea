// Max-pool (no padding, floor mode) and global average pool, as PyTorch.

// One work-item per output; argmax = h * W + w of the first maximum, where a
// later value wins if greater or NaN (PyTorch's rule).
__kernel void tdm_maxpool2d(ulong planes, ulong height, ulong width, ulong kernel_h,
                            ulong kernel_w, ulong stride_h, ulong stride_w, ulong out_h,
                            ulong out_w, __global const float *x, ulong x_offset,
                            __global float *y, ulong y_offset, __global int *argmax,
                            ulong argmax_offset)
{
    const ulong total = planes * out_h * out_w;
    for (ulong id = get_global_id(0); id < total; id += get_global_size(0)) {
        const ulong ow = id % out_w, oh = (id / out_w) % out_h, p = id / (out_w * out_h);
        const ulong h0 = oh * stride_h, w0 = ow * stride_w;
        __global const float *plane = x + x_offset + p * height * width;
        float best = -INFINITY;
        ulong best_index = h0 * width + w0;
        for (ulong i = 0; i < kernel_h; i++) {
            for (ulong j = 0; j < kernel_w; j++) {
                const ulong index = (h0 + i) * width + w0 + j;
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
__kernel void tdm_maxpool2d_backward(ulong planes, ulong height, ulong width, ulong kernel_h,
                                     ulong kernel_w, ulong stride_h, ulong stride_w, ulong out_h,
                                     ulong out_w, __global const int *argmax, ulong argmax_offset,
                                     __global const float *dy, ulong dy_offset,
                                     __global float *dx, ulong dx_offset)
{
    const ulong total = planes * height * width;
    for (ulong id = get_global_id(0); id < total; id += get_global_size(0)) {
        const ulong w = id % width, h = (id / width) % height, p = id / (width * height);
        const ulong oh0 = h + 1 > kernel_h ? (h + 1 - kernel_h + stride_h - 1) / stride_h : 0;
        const ulong ow0 = w + 1 > kernel_w ? (w + 1 - kernel_w + stride_w - 1) / stride_w : 0;
        const ulong oh1 = min(h / stride_h + 1, out_h), ow1 = min(w / stride_w + 1, out_w);
        const ulong base = p * out_h * out_w;
        float sum = 0.0f;
        for (ulong oh = oh0; oh < oh1; oh++)
            for (ulong ow = ow0; ow < ow1; ow++)
                if ((ulong)argmax[argmax_offset + base + oh * out_w + ow] == h * width + w)
                    sum += dy[dy_offset + base + oh * out_w + ow];
        dx[dx_offset + id] = sum;
    }
}

// One work-item per plane, summing in index order like the cpu backend.
__kernel void tdm_global_avgpool(ulong planes, ulong spatial, __global const float *x,
                                 ulong x_offset, __global float *y, ulong y_offset)
{
    for (ulong p = get_global_id(0); p < planes; p += get_global_size(0)) {
        float sum = 0.0f;
        for (ulong i = 0; i < spatial; i++)
            sum += x[x_offset + p * spatial + i];
        y[y_offset + p] = sum / (float)spatial;
    }
}

__kernel void tdm_global_avgpool_backward(ulong planes, ulong spatial, __global const float *dy,
                                          ulong dy_offset, __global float *dx, ulong dx_offset)
{
    const ulong total = planes * spatial;
    for (ulong id = get_global_id(0); id < total; id += get_global_size(0))
        dx[dx_offset + id] = dy[dy_offset + id / spatial] / (float)spatial;
}

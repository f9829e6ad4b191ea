// Elementwise float kernels. OpenCL C 1.2: float literals carry the f suffix,
// no double. Each work-item strides through the range, so the host can cap
// the global size and keep a fixed local size (PoCL compiles per local size).

__kernel void tdm_axpy(uint count, float alpha, __global const float *x, uint x_offset,
                       __global float *y, uint y_offset)
{
    for (uint i = get_global_id(0); i < count; i += get_global_size(0))
        y[y_offset + i] += alpha * x[x_offset + i];
}

__kernel void tdm_scale(uint count, float alpha, __global float *x, uint offset)
{
    for (uint i = get_global_id(0); i < count; i += get_global_size(0))
        x[offset + i] *= alpha;
}

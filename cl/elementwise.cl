// Elementwise float kernels. OpenCL C 1.2: float literals carry the f suffix,
// no double. One work-item per value (tdm_cl_launch rounds the range up to
// whole work-groups of one fixed size: PoCL compiles per local size).

__kernel void tdm_axpy(uint count, float alpha, __global const float *x, uint x_offset,
                       __global float *y, uint y_offset)
{
    const uint i = get_global_id(0);
    if (i >= count)
        return;
    y[y_offset + i] += alpha * x[x_offset + i];
}

__kernel void tdm_scale(uint count, float alpha, __global float *x, uint offset)
{
    const uint i = get_global_id(0);
    if (i >= count)
        return;
    x[offset + i] *= alpha;
}

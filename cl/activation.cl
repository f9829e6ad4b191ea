// Elementwise ops of the layers: out = f(a, b), one kernel per op (named
// "tdm_" + the op's name in tandem/ops.def), the same formulas as the cpu
// backend (src/backend/cpu/cpu_backend.c). `scalar` is the op's parameter
// (leaky_relu's slope); the others ignore it.

__kernel void tdm_add(uint count, __global const float *a, uint a_offset, __global const float *b,
                      uint b_offset, __global float *out, uint out_offset, float scalar)
{
    const uint i = get_global_id(0);
    if (i >= count)
        return;
    out[out_offset + i] = a[a_offset + i] + b[b_offset + i];
}

// max(a + b, 0): the residual connection and the ReLU after it, one launch
__kernel void tdm_add_relu(uint count, __global const float *a, uint a_offset,
                           __global const float *b, uint b_offset, __global float *out,
                           uint out_offset, float scalar)
{
    const uint i = get_global_id(0);
    if (i >= count)
        return;
    const float x = a[a_offset + i] + b[b_offset + i];
    out[out_offset + i] = x < 0.0f ? 0.0f : x; // NaN is not < 0: it stays NaN
}

__kernel void tdm_relu(uint count, __global const float *a, uint a_offset, __global const float *b,
                       uint b_offset, __global float *out, uint out_offset, float scalar)
{
    const uint i = get_global_id(0);
    if (i >= count)
        return;
    const float x = a[a_offset + i];
    out[out_offset + i] = x < 0.0f ? 0.0f : x; // NaN is not < 0: it stays NaN
}

__kernel void tdm_relu_backward(uint count, __global const float *a, uint a_offset,
                                __global const float *b, uint b_offset, __global float *out,
                                uint out_offset, float scalar)
{
    const uint i = get_global_id(0);
    if (i >= count)
        return;
    out[out_offset + i] = a[a_offset + i] > 0.0f ? b[b_offset + i] : 0.0f;
}

__kernel void tdm_sigmoid(uint count, __global const float *a, uint a_offset,
                          __global const float *b, uint b_offset, __global float *out,
                          uint out_offset, float scalar)
{
    const uint i = get_global_id(0);
    if (i >= count)
        return;
    out[out_offset + i] = 1.0f / (1.0f + exp(-a[a_offset + i]));
}

__kernel void tdm_sigmoid_backward(uint count, __global const float *a, uint a_offset,
                                   __global const float *b, uint b_offset, __global float *out,
                                   uint out_offset, float scalar)
{
    const uint i = get_global_id(0);
    if (i >= count)
        return;
    const float y = a[a_offset + i];
    out[out_offset + i] = b[b_offset + i] * (y * (1.0f - y));
}

// torch.nn.functional.leaky_relu: x where x > 0, else slope * x (NaN stays NaN).
__kernel void tdm_leaky_relu(uint count, __global const float *a, uint a_offset,
                             __global const float *b, uint b_offset, __global float *out,
                             uint out_offset, float scalar)
{
    const uint i = get_global_id(0);
    if (i >= count)
        return;
    const float x = a[a_offset + i];
    out[out_offset + i] = x > 0.0f ? x : x * scalar;
}

// dx = dy where x > 0, else slope * dy (x: the forward input), as PyTorch.
__kernel void tdm_leaky_relu_backward(uint count, __global const float *a, uint a_offset,
                                      __global const float *b, uint b_offset, __global float *out,
                                      uint out_offset, float scalar)
{
    const uint i = get_global_id(0);
    if (i >= count)
        return;
    const float dy = b[b_offset + i];
    out[out_offset + i] = a[a_offset + i] > 0.0f ? dy : dy * scalar;
}

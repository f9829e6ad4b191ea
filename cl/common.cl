// Helpers for the other kernel files (built first, into the same program).
// Sizes, offsets and indices are 32-bit (uint) in every kernel: the host
// refuses buffers past 2^31 floats (MAX_BUFFER_FLOATS), so an index, plus a
// global size, fits; GPUs divide 64-bit integers in dozens of instructions,
// and the kernels divide by runtime sizes for every element.

// Work-group size of every reduction kernel (-DTDM_GROUP_SIZE=N), which the
// host launches them with: one work-item on a CPU device, on a GPU the
// group size the device's limits allow (reduction_group_of in
// src/backend/opencl/opencl_backend.c).
#ifndef TDM_GROUP_SIZE
#define TDM_GROUP_SIZE 64
#endif

// The group sums below add TDM_SUM_RUNS runs of TDM_SUM_RUN partials each,
// a work-item a run, then work-item 0 the runs' sums: 8 + 8 dependent adds
// for a GPU's 64 work-items, where one work-item adding all 64 took 64
// (about a microsecond of local-memory latency, twice in a batch-norm pass).
#define TDM_SUM_RUNS (TDM_GROUP_SIZE < 8 ? TDM_GROUP_SIZE : 8)
#define TDM_SUM_RUN (TDM_GROUP_SIZE / TDM_SUM_RUNS)

// The sum of v over the work-group in a fixed order: the same bits every
// run. Each run's work-item adds its partials in index order into the run's
// first slot, then work-item 0 adds the runs in order; four barriers, where
// a tree takes one per level (PoCL runs a CPU device's work-group as one
// loop over the work-items per stretch between barriers, so a barrier costs
// a pass over the group; a CPU device's reductions have one work-item).
// Every work-item must call it; partial holds TDM_GROUP_SIZE + 1 floats
// (the last for the sum).
float tdm_group_sum(float v, __local float *partial)
{
    const uint lid = get_local_id(0);
    partial[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid < TDM_SUM_RUNS) {
        float sum = 0.0f;
        for (uint i = 0; i < TDM_SUM_RUN; i++)
            sum += partial[lid * TDM_SUM_RUN + i];
        partial[lid * TDM_SUM_RUN] = sum; // its own run's slot, which no other reads
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) {
        float sum = 0.0f;
        for (uint r = 0; r < TDM_SUM_RUNS; r++)
            sum += partial[r * TDM_SUM_RUN];
        partial[TDM_GROUP_SIZE] = sum;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const float sum = partial[TDM_GROUP_SIZE];
    barrier(CLK_LOCAL_MEM_FENCE); // partial may be reused right after
    return sum;
}

// The same for two sums at once: each component gets the bits
// tdm_group_sum would give it. partial holds TDM_GROUP_SIZE + 1 float2.
float2 tdm_group_sum2(float2 v, __local float2 *partial)
{
    const uint lid = get_local_id(0);
    partial[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid < TDM_SUM_RUNS) {
        float2 sum = (float2)(0.0f);
        for (uint i = 0; i < TDM_SUM_RUN; i++)
            sum += partial[lid * TDM_SUM_RUN + i];
        partial[lid * TDM_SUM_RUN] = sum;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) {
        float2 sum = (float2)(0.0f);
        for (uint r = 0; r < TDM_SUM_RUNS; r++)
            sum += partial[r * TDM_SUM_RUN];
        partial[TDM_GROUP_SIZE] = sum;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const float2 sum = partial[TDM_GROUP_SIZE];
    barrier(CLK_LOCAL_MEM_FENCE);
    return sum;
}

// A size the kernels divide by, from the host (src/backend/opencl/
// cl_divisor.h): (d, m, s, 0) with n / d = (hi32(n * m) + n) >> s for
// n < 2^31, as every index here is. A runtime division is about twenty
// instructions on GPUs and has no vector form on CPUs; the high word
// comes from a 64-bit product: PoCL ran mul_hi 2.4x slower.
typedef uint4 tdm_divisor;

uint tdm_div(uint n, tdm_divisor d)
{
    return ((uint)(((ulong)n * d.y) >> 32) + n) >> d.z;
}

uint tdm_mod(uint n, tdm_divisor d)
{
    return n - tdm_div(n, d) * d.x;
}

// The plane of a (value, plane) work-item (launch_planes in
// src/backend/opencl/opencl_layers.c): planes past the second axis of the
// range continue along the third.
uint tdm_plane(void)
{
    return get_global_id(1) + get_global_id(2) * get_global_size(1);
}

// The values of one channel, as the work-items of its group share them:
// each sample's run of `spatial` contiguous values (a CPU device vectorises
// a run; values strided across work-items it does not), cut into `parts`
// pieces when the batch is too small to give every work-item a sample.
// Work-item lid takes pieces lid, lid + G, ... in order; samples are
// `stride` = channels * spatial apart. tdm_channel_parts gives `parts`.
uint tdm_channel_parts(uint batch)
{
    return batch < TDM_GROUP_SIZE ? TDM_GROUP_SIZE / batch : 1;
}

// Piece u's first and end index from the channel's first value.
uint2 tdm_channel_piece(uint u, uint parts, uint stride, uint spatial)
{
    const uint n = u / parts, len = (spatial + parts - 1) / parts;
    const uint first = min(spatial, (u - n * parts) * len);
    return (uint2)(n * stride + first, n * stride + min(spatial, first + len));
}

// The sum of x[first .. end) in four interleaved partial sums, added
// pairwise, then the last values: four chains of additions a work-item
// instead of one (a compiler may not reorder a float sum itself; PoCL ran
// one chain, latency-bound).
float tdm_run_sum(__global const float *x, uint first, uint end)
{
    float4 sums = (float4)(0.0f);
    uint i = first;
    for (; i + 4 <= end; i += 4)
        sums += vload4(0, x + i);
    float sum = (sums.x + sums.y) + (sums.z + sums.w);
    for (; i < end; i++)
        sum += x[i];
    return sum;
}

// This work-item's sum of its pieces; x at the channel's first value.
float tdm_channel_sum(__global const float *x, uint batch, uint stride, uint spatial)
{
    const uint parts = tdm_channel_parts(batch);
    float sum = 0.0f;
    for (uint u = get_local_id(0); u < batch * parts; u += TDM_GROUP_SIZE) {
        const uint2 piece = tdm_channel_piece(u, parts, stride, spatial);
        sum += tdm_run_sum(x, piece.x, piece.y);
    }
    return sum;
}

// log(sum_k exp(z[k])) with the maximum subtracted first; *top is the first
// argmax (the cross-entropy's prediction).
float tdm_log_sum_exp(__global const float *z, uint count, uint *top)
{
    uint best = 0;
    for (uint k = 1; k < count; k++)
        if (z[k] > z[best])
            best = k;
    float sum = 0.0f;
    for (uint k = 0; k < count; k++)
        sum += exp(z[k] - z[best]);
    *top = best;
    return z[best] + log(sum);
}

// Max-pool windows: cl/pool.cl's, and those a batch norm pools (cl/batchnorm.cl).

// One value of a window, in window order: it wins if greater or NaN
// (PyTorch's rule).
inline void tdm_max_step(float value, uint index, float *best, uint *best_index)
{
    const bool wins = value > *best || isnan(value);
    *best = wins ? value : *best;
    *best_index = wins ? index : *best_index;
}

// The 2x2 window whose first value is plane[first], in window order.
inline void tdm_window_2x2(__global const float *plane, uint first, uint width, float *best,
                           uint *best_index)
{
    *best = plane[first];
    *best_index = first;
    tdm_max_step(plane[first + 1], first + 1, best, best_index);
    tdm_max_step(plane[first + width], first + width, best, best_index);
    tdm_max_step(plane[first + width + 1], first + width + 1, best, best_index);
}

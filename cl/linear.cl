// A linear layer with few weights (small_linear, small_linear_backward in
// src/backend/backend_impl.h): a work-item an output, its sum in order, in
// one launch a pass where a GEMM and a bias kernel would take several.
// With pool > 1, x is [N][in][pool] and each feature the mean of its pool
// (a global average pool before the layer, in the same launch).

#define TDM_LINEAR_LANES 16 // outputs a CPU device's work-item sums at once

// Feature `row` (n * in + i) of x: x[row], or its pool's mean with
// tdm_global_avgpool's bits.
inline float tdm_linear_feature(__global const float *x, uint row, uint pool)
{
    if (pool <= 1)
        return x[row];
    float sum = 0.0f;
    for (uint p = 0; p < pool; p++)
        sum += x[row * pool + p];
    return sum / (float)pool;
}

// y[n][o] = the sum over i of feature(n, i) * w[o][i], then + bias[o]; a
// work-item a value of y.
__kernel void tdm_small_linear(uint outputs, tdm_divisor out_features, uint in_features, uint pool,
                               __global const float *x, uint x_offset, __global const float *w,
                               uint w_offset, int with_bias, __global const float *bias,
                               uint bias_offset, __global float *y, uint y_offset)
{
    const uint id = get_global_id(0);
    if (id >= outputs)
        return;
    const uint n = tdm_div(id, out_features), o = id - n * out_features.x;
    __global const float *weights = w + w_offset + o * in_features;
    float sum = 0.0f;
    for (uint i = 0; i < in_features; i++)
        sum += tdm_linear_feature(x + x_offset, n * in_features + i, pool) * weights[i];
    y[y_offset + id] = with_bias ? sum + bias[bias_offset + o] : sum;
}

// The same values, a work-item a sample (a CPU device): each feature read,
// and pooled, once for TDM_LINEAR_LANES outputs at a time instead of once
// an output, each output's sum in the same order.
__kernel void tdm_small_linear_rows(uint outputs, tdm_divisor out_features, uint in_features,
                                    uint pool, __global const float *x, uint x_offset,
                                    __global const float *w, uint w_offset, int with_bias,
                                    __global const float *bias, uint bias_offset, __global float *y,
                                    uint y_offset)
{
    const uint n = get_global_id(0), out = out_features.x;
    if (n * out >= outputs)
        return;
    for (uint first = 0; first < out; first += TDM_LINEAR_LANES) {
        const uint lanes = min((uint)TDM_LINEAR_LANES, out - first);
        __global const float *weights = w + w_offset + first * in_features;
        float sums[TDM_LINEAR_LANES];
        for (uint l = 0; l < lanes; l++)
            sums[l] = 0.0f;
        for (uint i = 0; i < in_features; i++) {
            const float feature = tdm_linear_feature(x + x_offset, n * in_features + i, pool);
            for (uint l = 0; l < lanes; l++)
                sums[l] += feature * weights[l * in_features + i];
        }
        for (uint l = 0; l < lanes; l++) {
            const uint o = first + l;
            y[y_offset + n * out + o] = with_bias ? sums[l] + bias[bias_offset + o] : sums[l];
        }
    }
}

// dx[n][i] = the sum over o of dy[n][o] * w[o][i]; with a pool, each of its
// values gets that divided by pool (tdm_global_avgpool_backward's bits;
// pool is 1 without one). With relu, x is a ReLU's output and each value
// is 0 where x is not > 0 (the ReLU's backward: tdm_relu_backward's bits).
void tdm_small_linear_dx(uint id, uint out_features, tdm_divisor in_features, uint pool, int relu,
                         __global const float *x, __global const float *w, __global const float *dy,
                         __global float *dx)
{
    const uint n = tdm_div(id, in_features), i = id - n * in_features.x;
    __global const float *g = dy + n * out_features;
    float sum = 0.0f;
    for (uint o = 0; o < out_features; o++)
        sum += g[o] * w[o * in_features.x + i];
    const float share = pool == 1 ? sum : sum / (float)pool;
    for (uint p = 0; p < pool; p++) {
        const uint at = id * pool + p;
        dx[at] = relu && !(x[at] > 0.0f) ? 0.0f : share;
    }
}

// dw[o][i] += the sum over n of dy[n][o] * feature(n, i).
void tdm_small_linear_dw(uint id, uint batch, uint out_features, tdm_divisor in_features, uint pool,
                         __global const float *x, __global const float *dy, __global float *dw)
{
    const uint o = tdm_div(id, in_features), i = id - o * in_features.x;
    float sum = 0.0f;
    for (uint n = 0; n < batch; n++)
        sum += dy[n * out_features + o] * tdm_linear_feature(x, n * in_features.x + i, pool);
    dw[id] += sum;
}

// dw[o][i] += the sum over n of dy[n][o] * feature(n, i) for every o, the
// feature read (and pooled) once a sample for TDM_LINEAR_LANES outputs.
void tdm_small_linear_dw_feature(uint i, uint batch, uint out_features, uint in_features, uint pool,
                                 __global const float *x, __global const float *dy,
                                 __global float *dw)
{
    for (uint first = 0; first < out_features; first += TDM_LINEAR_LANES) {
        const uint lanes = min((uint)TDM_LINEAR_LANES, out_features - first);
        float sums[TDM_LINEAR_LANES];
        for (uint l = 0; l < lanes; l++)
            sums[l] = 0.0f;
        for (uint n = 0; n < batch; n++) {
            const float feature = tdm_linear_feature(x, n * in_features + i, pool);
            for (uint l = 0; l < lanes; l++)
                sums[l] += dy[n * out_features + first + l] * feature;
        }
        for (uint l = 0; l < lanes; l++)
            dw[(first + l) * in_features + i] += sums[l];
    }
}

// db[o] += the sum over n of dy[n][o].
void tdm_small_linear_db(uint o, uint batch, uint out_features, __global const float *dy,
                         __global float *db)
{
    float sum = 0.0f;
    for (uint n = 0; n < batch; n++)
        sum += dy[n * out_features + o];
    db[o] += sum;
}

// The backward pass in one launch: the first dx_items work-items write dx
// (0 when not asked for; a feature's whole pool each), the next dw_items
// add to dweight, the last db_count to dbias. A work-item takes a value of
// dx and a weight (a GPU) or, with rows, a sample's dx and a feature's
// weights (a CPU device: each feature pooled once for 16 outputs); the same
// sums in the same order either way.
__kernel void tdm_small_linear_backward(uint batch, uint out_features, tdm_divisor in_features,
                                        uint pool, int relu, int rows, uint dx_items, uint dw_items,
                                        uint db_count, __global const float *x, uint x_offset,
                                        __global const float *w, uint w_offset,
                                        __global const float *dy, uint dy_offset,
                                        __global float *dx, uint dx_offset, __global float *dw,
                                        uint dw_offset, __global float *db, uint db_offset)
{
    uint id = get_global_id(0);
    __global const float *g = dy + dy_offset;
    if (id < dx_items) {
        const uint first = rows ? id * in_features.x : id,
                   end = rows ? first + in_features.x : id + 1;
        for (uint value = first; value < end; value++)
            tdm_small_linear_dx(value, out_features, in_features, pool, relu, x + x_offset,
                                w + w_offset, g, dx + dx_offset);
        return;
    }
    id -= dx_items;
    if (id < dw_items) {
        if (rows)
            tdm_small_linear_dw_feature(id, batch, out_features, in_features.x, pool, x + x_offset,
                                        g, dw + dw_offset);
        else
            tdm_small_linear_dw(id, batch, out_features, in_features, pool, x + x_offset, g,
                                dw + dw_offset);
        return;
    }
    id -= dw_items;
    if (id < db_count)
        tdm_small_linear_db(id, batch, out_features, g, db + db_offset);
}

/* The cpu backend's products of a convolution's col with few taps
 * (conv_col_product, conv_col_weight_gradient): the sums of the OpenCL
 * kernels (cl/conv.cl), in their order, 16 positions a vector. */
#include <string.h>

#include "backend/cpu/cpu_clones.h"
#include "backend/cpu/cpu_layers.h"
#include "core/error.h"

/* A vector of positions, as the kernels' float16. */
enum { COL_LANES = TDM_VEC16_LANES };

/* The lanes halved in the kernels' tree (lo + hi, four times). */
TDM_INLINE float lanes_sum(const tdm_vec16 *v)
{
    float lanes[COL_LANES];
    memcpy(lanes, v, sizeof lanes);
    for (size_t width = COL_LANES / 2; width > 0; width /= 2)
        for (size_t l = 0; l < width; l++)
            lanes[l] += lanes[l + width];
    return lanes[0];
}

/* y's plane of sample n and channel co, COL_LANES positions at a time, the
 * taps in order. */
TDM_VECTOR_CLONES
static void col_product_plane(const float *w, const float *c, size_t taps, size_t spatial,
                              size_t columns, float *out)
{
    size_t p = 0;
    for (; p + COL_LANES <= spatial; p += COL_LANES) {
        tdm_vec16 sums = {0.0f};
        for (size_t k = 0; k < taps; k++)
            sums += w[k] * tdm_load16(c + k * columns + p);
        tdm_store16(out + p, sums);
    }
    for (; p < spatial; p++) {
        float sum = 0.0f;
        for (size_t k = 0; k < taps; k++)
            sum += w[k] * c[k * columns + p];
        out[p] = sum;
    }
}

/* One task per output plane (n, co). */
tdm_status tdm_cpu_conv_col_product(tdm_backend *backend, const tdm_conv2d_shape *s,
                                    tdm_view weight, tdm_view col, tdm_view y)
{
    size_t spatial = tdm_conv2d_out_height(s) * tdm_conv2d_out_width(s);
    size_t taps = s->in_channels * s->kernel_h * s->kernel_w, columns = s->batch * spatial;
    const float *weights = tdm_view_host_floats(weight), *col_all = tdm_view_host_floats(col);
    float *y_all = tdm_view_host_floats(y);
    int team = tdm_cpu_team(backend, s->batch * s->out_channels * spatial * taps);
#pragma omp parallel for collapse(2) schedule(static) num_threads(team)
    for (size_t n = 0; n < s->batch; n++)
        for (size_t co = 0; co < s->out_channels; co++)
            col_product_plane(weights + co * taps, col_all + n * spatial, taps, spatial, columns,
                              y_all + (n * s->out_channels + co) * spatial);
    return TDM_OK;
}

/* Channel co's weight gradient, all its taps at once: each sample's
 * positions in COL_LANES lanes and the rest in a tail, samples in order;
 * the unrolled tap loop keeps the lanes in registers. */
TDM_VECTOR_CLONES
static void col_weight_gradient_channel(const float *dy, const float *col, size_t taps,
                                        size_t batch, size_t dy_step, size_t spatial,
                                        size_t columns, float *dw)
{
    tdm_vec16 lanes[TDM_CONV_COL_MAX_TAPS] = {{0.0f}};
    float tails[TDM_CONV_COL_MAX_TAPS] = {0.0f};
    size_t body = spatial - spatial % COL_LANES;
    for (size_t n = 0; n < batch; n++) {
        const float *g = dy + n * dy_step, *c = col + n * spatial;
        for (size_t p = 0; p < body; p += COL_LANES) {
            tdm_vec16 grad = tdm_load16(g + p);
#pragma GCC unroll 16
            for (size_t k = 0; k < TDM_CONV_COL_MAX_TAPS; k++)
                if (k < taps)
                    lanes[k] += grad * tdm_load16(c + k * columns + p);
        }
        for (size_t p = body; p < spatial; p++)
            for (size_t k = 0; k < taps; k++)
                tails[k] += g[p] * c[k * columns + p];
    }
    for (size_t k = 0; k < taps; k++)
        dw[k] += lanes_sum(&lanes[k]) + tails[k];
}

/* One task per output channel. */
tdm_status tdm_cpu_conv_col_weight_gradient(tdm_backend *backend, const tdm_conv2d_shape *s,
                                            tdm_view dy, tdm_view col, tdm_view dweight)
{
    size_t spatial = tdm_conv2d_out_height(s) * tdm_conv2d_out_width(s);
    size_t taps = s->in_channels * s->kernel_h * s->kernel_w, columns = s->batch * spatial;
    if (taps > TDM_CONV_COL_MAX_TAPS)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "conv_col_weight_gradient: %zu taps a sample, at most %d", taps,
                        (int)TDM_CONV_COL_MAX_TAPS);
    const float *dy_all = tdm_view_host_floats(dy), *col_all = tdm_view_host_floats(col);
    float *dw = tdm_view_host_floats(dweight);
    int team = tdm_cpu_team(backend, s->out_channels * taps * columns);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t co = 0; co < s->out_channels; co++)
        col_weight_gradient_channel(dy_all + co * spatial, col_all, taps, s->batch,
                                    s->out_channels * spatial, spatial, columns, dw + co * taps);
    return TDM_OK;
}

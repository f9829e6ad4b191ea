/* The layer ops of the cpu backend: plain loops over host memory. Sums run
 * sequentially in double, so they are deterministic and as accurate as the
 * float result can hold; docs/ops.md gives the formulas. */
#include "backend/cpu/cpu_layers.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_vector_math.h"
#include "core/error.h"

static float *floats(tdm_view view)
{
    return tdm_view_host_floats(view);
}

static int32_t *ints(tdm_view view)
{
    return (int32_t *)view.buffer->handle + view.offset;
}

/* ---------- conv2d primitives ---------- */

typedef struct conv_dims {
    size_t out_h, out_w, spatial, columns; /* spatial = OH*OW, columns = N*OH*OW */
} conv_dims;

static conv_dims dims_of(const tdm_conv2d_shape *s)
{
    conv_dims d = {.out_h = tdm_conv2d_out_height(s), .out_w = tdm_conv2d_out_width(s)};
    d.spatial = d.out_h * d.out_w;
    d.columns = s->batch * d.spatial;
    return d;
}

/* For every kernel offset (i, j), where each output position p = oh * OW + ow
 * reads in an input plane, or -1 where it reads padding:
 * offsets[(i * KW + j) * OH*OW + p]. */
static tdm_status tap_offsets(const tdm_conv2d_shape *s, conv_dims d, long **out)
{
    size_t taps = s->kernel_h * s->kernel_w;
    long *offsets = malloc(taps * d.spatial * sizeof(long));
    if (!offsets)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "cpu: out of host memory");
    for (size_t tap = 0; tap < taps; tap++)
        for (size_t p = 0; p < d.spatial; p++) {
            size_t i = tap / s->kernel_w, j = tap % s->kernel_w;
            long h = (long)((p / d.out_w) * s->stride_h + i) - (long)s->pad_h;
            long w = (long)((p % d.out_w) * s->stride_w + j) - (long)s->pad_w;
            bool inside = h >= 0 && w >= 0 && h < (long)s->in_height && w < (long)s->in_width;
            offsets[tap * d.spatial + p] = inside ? h * (long)s->in_width + w : -1;
        }
    *out = offsets;
    return TDM_OK;
}

/* Each (row, image) pair of col is one task: row (c, i, j) of image n. */
tdm_status tdm_cpu_im2col(tdm_backend *backend, const tdm_conv2d_shape *s, tdm_view x, tdm_view col)
{
    conv_dims d = dims_of(s);
    long *offsets = NULL;
    TDM_TRY(tap_offsets(s, d, &offsets));
    size_t taps = s->kernel_h * s->kernel_w, rows = s->in_channels * taps;
    size_t plane = s->in_height * s->in_width;
    const float *in_all = floats(x);
    float *col_all = floats(col);
    int team = tdm_cpu_team(backend, rows * d.columns);
#pragma omp parallel for collapse(2) schedule(static) num_threads(team)
    for (size_t row = 0; row < rows; row++)
        for (size_t n = 0; n < s->batch; n++) {
            const long *offset = offsets + (row % taps) * d.spatial;
            const float *in = in_all + (n * s->in_channels + row / taps) * plane;
            float *out = col_all + row * d.columns + n * d.spatial;
            for (size_t p = 0; p < d.spatial; p++)
                out[p] = offset[p] >= 0 ? in[offset[p]] : 0.0f;
        }
    free(offsets);
    return TDM_OK;
}

/* The adjoint of im2col, one task per input plane (n, c): each input sums its
 * entries in (i, j) order, the order of the OpenCL gather kernel. */
tdm_status tdm_cpu_col2im(tdm_backend *backend, const tdm_conv2d_shape *s, tdm_view col, tdm_view x)
{
    conv_dims d = dims_of(s);
    long *offsets = NULL;
    TDM_TRY(tap_offsets(s, d, &offsets));
    size_t taps = s->kernel_h * s->kernel_w, plane = s->in_height * s->in_width;
    const float *col_all = floats(col);
    float *x_all = floats(x);
    int team = tdm_cpu_team(backend, s->in_channels * taps * d.columns);
#pragma omp parallel for collapse(2) schedule(static) num_threads(team)
    for (size_t n = 0; n < s->batch; n++)
        for (size_t c = 0; c < s->in_channels; c++) {
            float *out = x_all + (n * s->in_channels + c) * plane;
            memset(out, 0, plane * sizeof(float));
            for (size_t tap = 0; tap < taps; tap++) {
                const long *offset = offsets + tap * d.spatial;
                const float *in = col_all + (c * taps + tap) * d.columns + n * d.spatial;
                for (size_t p = 0; p < d.spatial; p++)
                    if (offset[p] >= 0)
                        out[offset[p]] += in[p];
            }
        }
    free(offsets);
    return TDM_OK;
}

/* taps[p * H*W + q]: the kernel tap i * KW + j linking output position p
 * and input position q, or -1. */
static tdm_status tap_table(const tdm_conv2d_shape *s, conv_dims d, long **out)
{
    size_t plane = s->in_height * s->in_width;
    long *taps = malloc(d.spatial * plane * sizeof(long));
    if (!taps)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "cpu: out of host memory");
    for (size_t p = 0; p < d.spatial; p++)
        for (size_t q = 0; q < plane; q++) {
            long i = (long)(q / s->in_width + s->pad_h) - (long)((p / d.out_w) * s->stride_h);
            long j = (long)(q % s->in_width + s->pad_w) - (long)((p % d.out_w) * s->stride_w);
            bool linked = i >= 0 && j >= 0 && i < (long)s->kernel_h && j < (long)s->kernel_w;
            taps[p * plane + q] = linked ? i * (long)s->kernel_w + j : -1;
        }
    *out = taps;
    return TDM_OK;
}

/* For each tap k, the offsets p * columns + q (in p order) of its entries in
 * one (co, ci) block of the dense matrix: taps_start[k] .. taps_start[k + 1]. */
static tdm_status tap_entries(const tdm_conv2d_shape *s, conv_dims d, size_t **offsets,
                              size_t **start)
{
    size_t plane = s->in_height * s->in_width, taps_per_pair = s->kernel_h * s->kernel_w;
    size_t columns = s->in_channels * plane;
    long *taps = NULL;
    TDM_TRY(tap_table(s, d, &taps));
    *offsets = malloc(d.spatial * plane * sizeof(size_t) + 1);
    *start = calloc(taps_per_pair + 1, sizeof(size_t));
    if (!*offsets || !*start) {
        free(taps);
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "cpu: out of host memory");
    }
    size_t used = 0;
    for (size_t k = 0; k < taps_per_pair; k++) {
        (*start)[k] = used;
        for (size_t p = 0; p < d.spatial; p++)
            for (size_t q = 0; q < plane; q++)
                if (taps[p * plane + q] == (long)k)
                    (*offsets)[used++] = p * columns + q;
    }
    (*start)[taps_per_pair] = used;
    free(taps);
    return TDM_OK;
}

/* One task per block row (co, p) of T: in_channels * H*W entries. */
tdm_status tdm_cpu_conv_dense_weight(tdm_backend *backend, const tdm_conv2d_shape *s,
                                     tdm_view weight, tdm_view dense)
{
    conv_dims d = dims_of(s);
    size_t plane = s->in_height * s->in_width, taps_per_pair = s->kernel_h * s->kernel_w;
    long *taps = NULL;
    TDM_TRY(tap_table(s, d, &taps));
    const float *weights = floats(weight);
    float *t_all = floats(dense);
    int team = tdm_cpu_team(backend, s->out_channels * d.spatial * s->in_channels * plane);
#pragma omp parallel for collapse(2) schedule(static) num_threads(team)
    for (size_t co = 0; co < s->out_channels; co++)
        for (size_t p = 0; p < d.spatial; p++) {
            float *t = t_all + (co * d.spatial + p) * s->in_channels * plane;
            const long *tap = taps + p * plane;
            for (size_t ci = 0; ci < s->in_channels; ci++, t += plane) {
                const float *w = weights + (co * s->in_channels + ci) * taps_per_pair;
                for (size_t q = 0; q < plane; q++)
                    t[q] = tap[q] >= 0 ? w[tap[q]] : 0.0f;
            }
        }
    free(taps);
    return TDM_OK;
}

/* Each weight takes its tap's entries one by one in output-position order,
 * as the OpenCL kernels do; one task per weight pair (co, ci). */
tdm_status tdm_cpu_conv_dense_weight_backward(tdm_backend *backend, const tdm_conv2d_shape *s,
                                              tdm_view dense_grad, tdm_view dweight)
{
    conv_dims d = dims_of(s);
    size_t plane = s->in_height * s->in_width, taps_per_pair = s->kernel_h * s->kernel_w;
    size_t columns = s->in_channels * plane;
    size_t *offsets = NULL, *start = NULL;
    TDM_TRY(tap_entries(s, d, &offsets, &start));
    const float *grad = floats(dense_grad);
    float *dweights = floats(dweight);
    int team = tdm_cpu_team(backend, s->out_channels * d.spatial * columns);
#pragma omp parallel for collapse(2) schedule(static) num_threads(team)
    for (size_t co = 0; co < s->out_channels; co++)
        for (size_t ci = 0; ci < s->in_channels; ci++) {
            const float *g = grad + co * d.spatial * columns + ci * plane;
            float *dw = dweights + (co * s->in_channels + ci) * taps_per_pair;
            for (size_t k = 0; k < taps_per_pair; k++) {
                float sum = dw[k];
                for (size_t e = start[k]; e < start[k + 1]; e++)
                    sum += g[offsets[e]];
                dw[k] = sum;
            }
        }
    free(offsets);
    free(start);
    return TDM_OK;
}

/* conv_col_product's sums with col's entries read from x through im2col's
 * offsets (0 in the padding), one task per output plane (n, co). The layer
 * takes this path only where a backend asks for it (a GPU): here it is for
 * the parity harness. */
tdm_status tdm_cpu_conv_direct_forward(tdm_backend *backend, const tdm_conv2d_shape *s, tdm_view x,
                                       tdm_view weight, tdm_view y)
{
    conv_dims d = dims_of(s);
    long *offsets = NULL;
    TDM_TRY(tap_offsets(s, d, &offsets));
    size_t taps = s->kernel_h * s->kernel_w, plane = s->in_height * s->in_width;
    const float *weights = floats(weight), *x_all = floats(x);
    float *y_all = floats(y);
    int team =
        tdm_cpu_team(backend, s->batch * s->out_channels * d.spatial * s->in_channels * taps);
#pragma omp parallel for collapse(2) schedule(static) num_threads(team)
    for (size_t n = 0; n < s->batch; n++)
        for (size_t co = 0; co < s->out_channels; co++)
            for (size_t p = 0; p < d.spatial; p++) {
                const float *w = weights + co * s->in_channels * taps;
                float sum = 0.0f;
                for (size_t c = 0; c < s->in_channels; c++) {
                    const float *in = x_all + (n * s->in_channels + c) * plane;
                    for (size_t tap = 0; tap < taps; tap++, w++) {
                        long at = offsets[tap * d.spatial + p];
                        sum += *w * (at >= 0 ? in[at] : 0.0f);
                    }
                }
                y_all[(n * s->out_channels + co) * d.spatial + p] = sum;
            }
    free(offsets);
    return TDM_OK;
}

/* The weight gradient from x and dy, each weight's sum over samples in
 * order, then output positions; one task per pair (co, ci). */
static tdm_status direct_weight_gradient(tdm_backend *backend, const tdm_conv2d_shape *s,
                                         tdm_view x, tdm_view dy, tdm_view dweight)
{
    conv_dims d = dims_of(s);
    long *offsets = NULL;
    TDM_TRY(tap_offsets(s, d, &offsets));
    size_t plane = s->in_height * s->in_width, taps_per_pair = s->kernel_h * s->kernel_w;
    const float *x_all = floats(x), *dy_all = floats(dy);
    float *dweights = floats(dweight);
    int team = tdm_cpu_team(backend, s->out_channels * s->in_channels * taps_per_pair * d.columns);
#pragma omp parallel for collapse(2) schedule(static) num_threads(team)
    for (size_t co = 0; co < s->out_channels; co++)
        for (size_t ci = 0; ci < s->in_channels; ci++)
            for (size_t k = 0; k < taps_per_pair; k++) {
                const long *offset = offsets + k * d.spatial;
                float sum = 0.0f;
                for (size_t n = 0; n < s->batch; n++) {
                    const float *g = dy_all + (n * s->out_channels + co) * d.spatial;
                    const float *in = x_all + (n * s->in_channels + ci) * plane;
                    for (size_t p = 0; p < d.spatial; p++)
                        if (offset[p] >= 0)
                            sum += g[p] * in[offset[p]];
                }
                dweights[(co * s->in_channels + ci) * taps_per_pair + k] += sum;
            }
    free(offsets);
    return TDM_OK;
}

/* The output index o with in + pad = o * stride + k, or out_size when there
 * is none (as cl/conv.cl's tdm_meeting_output). */
static size_t meeting_output(size_t in, size_t pad, size_t k, size_t stride, size_t out_size)
{
    if (in + pad < k || (in + pad - k) % stride != 0)
        return out_size;
    size_t o = (in + pad - k) / stride;
    return o < out_size ? o : out_size;
}

/* The input gradient without col or T, each value's sum over taps (i, j)
 * in order, then co in order, as the OpenCL kernel sums it; one task per
 * input plane (n, ci). */
static void direct_input_gradient(tdm_backend *backend, const tdm_conv2d_shape *s, tdm_view weight,
                                  tdm_view dy, tdm_view dx, bool accumulate)
{
    size_t oh_count = tdm_conv2d_out_height(s), ow_count = tdm_conv2d_out_width(s);
    size_t spatial = oh_count * ow_count, taps = s->kernel_h * s->kernel_w;
    size_t plane = s->in_height * s->in_width;
    const float *weights = floats(weight), *dy_all = floats(dy);
    float *dx_all = floats(dx);
    int team = tdm_cpu_team(backend, s->batch * s->in_channels * plane * taps * s->out_channels);
#pragma omp parallel for collapse(2) schedule(static) num_threads(team)
    for (size_t n = 0; n < s->batch; n++)
        for (size_t ci = 0; ci < s->in_channels; ci++)
            for (size_t q = 0; q < plane; q++) {
                size_t h = q / s->in_width, w = q % s->in_width;
                const float *g = dy_all + n * s->out_channels * spatial, *wt = weights + ci * taps;
                float sum = 0.0f;
                for (size_t i = 0; i < s->kernel_h; i++) {
                    size_t oh = meeting_output(h, s->pad_h, i, s->stride_h, oh_count);
                    for (size_t j = 0; j < s->kernel_w && oh < oh_count; j++) {
                        size_t ow = meeting_output(w, s->pad_w, j, s->stride_w, ow_count);
                        if (ow == ow_count)
                            continue;
                        size_t p = oh * ow_count + ow, tap = i * s->kernel_w + j;
                        for (size_t co = 0; co < s->out_channels; co++)
                            sum += g[co * spatial + p] * wt[co * s->in_channels * taps + tap];
                    }
                }
                float *out = dx_all + (n * s->in_channels + ci) * plane + q;
                *out = accumulate ? *out + sum : sum;
            }
}

/* Both gradients without col or T, what is asked for of them. The layer
 * takes this path only where a backend asks for it (a GPU): here it is for
 * the parity harness, the cpu backend's GEMM being faster. */
tdm_status tdm_cpu_conv_direct_backward(tdm_backend *backend, const tdm_conv2d_shape *s, tdm_view x,
                                        tdm_view weight, tdm_view dy, tdm_view dx, tdm_view dweight,
                                        bool accumulate)
{
    if (dweight.buffer)
        TDM_TRY(direct_weight_gradient(backend, s, x, dy, dweight));
    if (dx.buffer)
        direct_input_gradient(backend, s, weight, dy, dx, accumulate);
    return TDM_OK;
}

tdm_status tdm_cpu_swap_axes(tdm_backend *backend, size_t outer, size_t inner, size_t spatial,
                             tdm_view src, tdm_view dst)
{
    const float *in = floats(src);
    float *out_all = floats(dst);
    int team = tdm_cpu_team(backend, outer * inner * spatial);
    /* Writes in storage order; an inline loop, since rows are a few floats. */
#pragma omp parallel for collapse(2) schedule(static) num_threads(team)
    for (size_t b = 0; b < inner; b++)
        for (size_t a = 0; a < outer; a++) {
            const float *row = in + (a * inner + b) * spatial;
            float *out = out_all + (b * outer + a) * spatial;
            for (size_t i = 0; i < spatial; i++)
                out[i] = row[i];
        }
    return TDM_OK;
}

/* The side of the square tiles tdm_cpu_transpose moves: a tile's rows and
 * columns stay in cache while it is read across and written down. */
enum { TRANSPOSE_TILE = 16 };

tdm_status tdm_cpu_transpose(tdm_backend *backend, size_t batch, size_t rows, size_t cols,
                             tdm_view src, tdm_view dst)
{
    const float *in_all = floats(src);
    float *out_all = floats(dst);
    int team = tdm_cpu_team(backend, batch * rows * cols);
#pragma omp parallel for collapse(2) schedule(static) num_threads(team)
    for (size_t b = 0; b < batch; b++)
        for (size_t c0 = 0; c0 < cols; c0 += TRANSPOSE_TILE) {
            const float *in = in_all + b * rows * cols;
            float *out = out_all + b * rows * cols;
            size_t c_end = c0 + TRANSPOSE_TILE < cols ? c0 + TRANSPOSE_TILE : cols;
            for (size_t r0 = 0; r0 < rows; r0 += TRANSPOSE_TILE) {
                size_t r_end = r0 + TRANSPOSE_TILE < rows ? r0 + TRANSPOSE_TILE : rows;
                for (size_t c = c0; c < c_end; c++)
                    for (size_t r = r0; r < r_end; r++)
                        out[c * rows + r] = in[r * cols + c];
            }
        }
    return TDM_OK;
}

tdm_status tdm_cpu_bias_add(tdm_backend *backend, size_t batch, size_t channels, size_t spatial,
                            tdm_view bias, tdm_view y)
{
    const float *b = floats(bias);
    float *out_all = floats(y);
    int team = tdm_cpu_team(backend, batch * channels * spatial);
#pragma omp parallel for collapse(2) schedule(static) num_threads(team)
    for (size_t n = 0; n < batch; n++)
        for (size_t c = 0; c < channels; c++) {
            float *out = out_all + (n * channels + c) * spatial;
            for (size_t i = 0; i < spatial; i++)
                out[i] += b[c];
        }
    return TDM_OK;
}

/* Sum over n and s of t[n][c][s] for one channel. */
static double channel_sum(const float *t, size_t batch, size_t channels, size_t spatial, size_t c)
{
    double sum = 0.0;
    for (size_t n = 0; n < batch; n++) {
        const float *plane = t + (n * channels + c) * spatial;
        for (size_t i = 0; i < spatial; i++)
            sum += plane[i];
    }
    return sum;
}

tdm_status tdm_cpu_bias_backward(tdm_backend *backend, size_t batch, size_t channels,
                                 size_t spatial, tdm_view dy, tdm_view dbias)
{
    const float *grad = floats(dy);
    float *db = floats(dbias);
    int team = tdm_cpu_team(backend, batch * channels * spatial);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t c = 0; c < channels; c++)
        db[c] += (float)channel_sum(grad, batch, channels, spatial, c);
    return TDM_OK;
}

/* ---------- batchnorm2d ----------
 * Per-channel sums are split between threads by blocks of channels; a task
 * walks its channels of each image in storage order. Within a channel, value
 * i of every plane goes to lane i % SUM_LANES, each lane sums over the images
 * in order, then the lanes add up in order: independent adds vectorise, and
 * the order is fixed whatever the team. */

enum { CHANNEL_BLOCK = 8, SUM_LANES = 64 };

static size_t channel_blocks(size_t channels)
{
    return (channels + CHANNEL_BLOCK - 1) / CHANNEL_BLOCK;
}

static size_t block_end(size_t block, size_t channels)
{
    size_t end = (block + 1) * CHANNEL_BLOCK;
    return end < channels ? end : channels;
}

static size_t lanes_used(size_t spatial)
{
    return spatial < SUM_LANES ? spatial : SUM_LANES;
}

static double lanes_total(const double *lanes, size_t spatial)
{
    double sum = 0.0;
    for (size_t i = 0; i < lanes_used(spatial); i++)
        sum += lanes[i];
    return sum;
}

/* lanes[i % SUM_LANES] += f(plane[i]), f = identity or (x - center)^2. */
static void add_plane(double *restrict lanes, const float *restrict plane, size_t spatial,
                      bool squares, double center)
{
    for (size_t first = 0; first < spatial; first += SUM_LANES) {
        size_t count = lanes_used(spatial - first);
        const float *values = plane + first;
        if (squares)
            for (size_t i = 0; i < count; i++)
                lanes[i] += (values[i] - center) * (values[i] - center);
        else
            for (size_t i = 0; i < count; i++)
                lanes[i] += values[i];
    }
}

/* sums[c - c0] = the sum over channel c of f(x), for the channels of one
 * block: f = identity, or (x - center[c - c0])^2. */
static void block_sums(const tdm_batchnorm_shape *s, const float *x, size_t c0, size_t c1,
                       const double *center, double *sums)
{
    double lanes[CHANNEL_BLOCK][SUM_LANES] = {{0.0}};
    for (size_t n = 0; n < s->batch; n++)
        for (size_t c = c0; c < c1; c++)
            add_plane(lanes[c - c0], x + (n * s->channels + c) * s->spatial, s->spatial,
                      center != NULL, center ? center[c - c0] : 0.0);
    for (size_t c = c0; c < c1; c++)
        sums[c - c0] = lanes_total(lanes[c - c0], s->spatial);
}

/* The mean, then the biased variance about it, in double; the saved and
 * running statistics from them. */
static tdm_status batchnorm_stats(tdm_backend *backend, const tdm_batchnorm_shape *s,
                                  const tdm_batchnorm_views *v)
{
    const float *x = floats(v->x);
    const double count = (double)(s->batch * s->spatial), m = s->momentum;
    float *save_mean = floats(v->save_mean), *save_invstd = floats(v->save_invstd);
    float *running_mean = floats(v->running_mean), *running_var = floats(v->running_var);
    int team = tdm_cpu_team(backend, s->batch * s->channels * s->spatial);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t block = 0; block < channel_blocks(s->channels); block++) {
        size_t c0 = block * CHANNEL_BLOCK, c1 = block_end(block, s->channels);
        double mean[CHANNEL_BLOCK], squares[CHANNEL_BLOCK];
        block_sums(s, x, c0, c1, NULL, mean);
        for (size_t c = c0; c < c1; c++)
            mean[c - c0] /= count;
        block_sums(s, x, c0, c1, mean, squares);
        for (size_t c = c0; c < c1; c++) {
            double var = squares[c - c0] / count; /* biased */
            save_mean[c] = (float)mean[c - c0];
            save_invstd[c] = (float)(1.0 / sqrt(var + s->eps));
            running_mean[c] = (float)((1.0 - m) * running_mean[c] + m * mean[c - c0]);
            running_var[c] = (float)((1.0 - m) * running_var[c] + m * var * count / (count - 1.0));
        }
    }
    return TDM_OK;
}

static tdm_status batchnorm_normalize(tdm_backend *backend, const tdm_batchnorm_shape *s,
                                      const tdm_batchnorm_views *v, bool eval)
{
    const float *restrict x = floats(v->x), *gamma = floats(v->gamma), *beta = floats(v->beta);
    const float *mean = floats(eval ? v->running_mean : v->save_mean);
    const float *scale = floats(eval ? v->running_var : v->save_invstd);
    const float *restrict residual = v->residual.buffer ? floats(v->residual) : NULL;
    float *restrict y = floats(v->y);
    int team = tdm_cpu_team(backend, s->batch * s->channels * s->spatial);
#pragma omp parallel for collapse(2) schedule(static) num_threads(team)
    for (size_t n = 0; n < s->batch; n++)
        for (size_t c = 0; c < s->channels; c++) {
            float invstd = eval ? 1.0f / sqrtf(scale[c] + s->eps) : scale[c];
            size_t first = (n * s->channels + c) * s->spatial;
            for (size_t i = first; i < first + s->spatial; i++) {
                float value = (x[i] - mean[c]) * invstd * gamma[c] + beta[c];
                if (residual) /* rounded first: the sum tdm_add would make */
                    value += residual[i];
                y[i] = s->relu && value < 0.0f ? 0.0f : value; /* NaN is not < 0 */
            }
        }
    return TDM_OK;
}

/* dy at i, or with `masked` 0 where the fused ReLU's output y is not > 0.
 * The loops below are written once and inlined with masked a constant, so
 * each form vectorises (a test of y inside the loop stopped it: 45% on
 * ResNet(64)'s epoch). */
static inline float gradient_at(const float *restrict dy, const float *restrict y, size_t i,
                                bool masked)
{
    float gradient = dy[i];
    if (!masked)
        return gradient;
    uint32_t bits; /* gradient & (y[i] > 0 ? ~0 : 0): +0.0 where masked, and no branch */
    memcpy(&bits, &gradient, sizeof bits);
    bits &= -(uint32_t)(y[i] > 0.0f);
    memcpy(&gradient, &bits, sizeof bits);
    return gradient;
}

/* The lanes of sum(dy) and sum(dy * xhat) of one plane. */
static inline void add_backward_plane(double *restrict dy_lanes, double *restrict dy_xhat_lanes,
                                      const float *restrict x, const float *restrict dy,
                                      const float *restrict y, size_t spatial, double mean,
                                      double invstd, bool masked)
{
    for (size_t first = 0; first < spatial; first += SUM_LANES) {
        size_t count = lanes_used(spatial - first);
        for (size_t i = 0; i < count; i++) {
            float g = gradient_at(dy, y, first + i, masked);
            dy_lanes[i] += g;
            dy_xhat_lanes[i] += g * ((x[first + i] - mean) * invstd);
        }
    }
}

/* The lanes of a block of channels [c0, c1) over the batch. */
static inline void add_backward_block(const tdm_batchnorm_shape *s, const float *restrict x,
                                      const float *restrict dy, const float *restrict y,
                                      const float *mean, const float *invstd, size_t c0, size_t c1,
                                      double (*dy_lanes)[SUM_LANES],
                                      double (*dy_xhat_lanes)[SUM_LANES], bool masked)
{
    for (size_t n = 0; n < s->batch; n++)
        for (size_t c = c0; c < c1; c++) {
            size_t first = (n * s->channels + c) * s->spatial;
            add_backward_plane(dy_lanes[c - c0], dy_xhat_lanes[c - c0], x + first, dy + first,
                               masked ? y + first : NULL, s->spatial, mean[c], invstd[c], masked);
        }
}

/* dx of one plane's values [first, first + spatial) of channel c. */
static inline void apply_run(float *restrict dx, const float *restrict x, const float *restrict dy,
                             const float *restrict y, size_t first, size_t spatial, float mean,
                             float invstd, float gamma, const float *restrict means, bool masked)
{
    for (size_t i = first; i < first + spatial; i++) {
        float xhat = (x[i] - mean) * invstd;
        dx[i] = gamma * invstd * (gradient_at(dy, y, i, masked) - means[0] - xhat * means[1]);
    }
}

/* sum(dy) and sum(dy * xhat) per channel in double; dgamma and dbeta take
 * them, the scratch their means. */
static tdm_status batchnorm_backward_reduce(tdm_backend *backend, const tdm_batchnorm_shape *s,
                                            const tdm_batchnorm_views *v)
{
    const float *x = floats(v->x), *dy = floats(v->dy), *y = s->relu ? floats(v->y) : NULL;
    const float *mean = floats(v->save_mean), *invstd = floats(v->save_invstd);
    float *dgamma = floats(v->dgamma), *dbeta = floats(v->dbeta), *means = floats(v->scratch);
    const double count = (double)(s->batch * s->spatial);
    int team = tdm_cpu_team(backend, s->batch * s->channels * s->spatial);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t block = 0; block < channel_blocks(s->channels); block++) {
        size_t c0 = block * CHANNEL_BLOCK, c1 = block_end(block, s->channels);
        double dy_lanes[CHANNEL_BLOCK][SUM_LANES] = {{0.0}};
        double dy_xhat_lanes[CHANNEL_BLOCK][SUM_LANES] = {{0.0}};
        if (y)
            add_backward_block(s, x, dy, y, mean, invstd, c0, c1, dy_lanes, dy_xhat_lanes, true);
        else
            add_backward_block(s, x, dy, y, mean, invstd, c0, c1, dy_lanes, dy_xhat_lanes, false);
        for (size_t c = c0; c < c1; c++) {
            double sum_dy = lanes_total(dy_lanes[c - c0], s->spatial);
            double sum_dy_xhat = lanes_total(dy_xhat_lanes[c - c0], s->spatial);
            dgamma[c] += (float)sum_dy_xhat;
            dbeta[c] += (float)sum_dy;
            means[2 * c] = (float)(sum_dy / count);
            means[2 * c + 1] = (float)(sum_dy_xhat / count);
        }
    }
    return TDM_OK;
}

/* dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)) */
static tdm_status batchnorm_backward_apply(tdm_backend *backend, const tdm_batchnorm_shape *s,
                                           const tdm_batchnorm_views *v)
{
    const float *x = floats(v->x), *dy = floats(v->dy), *gamma = floats(v->gamma);
    const float *y = s->relu ? floats(v->y) : NULL;
    const float *mean = floats(v->save_mean), *invstd = floats(v->save_invstd);
    const float *means = floats(v->scratch);
    float *dx = floats(v->dx);
    int team = tdm_cpu_team(backend, s->batch * s->channels * s->spatial);
#pragma omp parallel for collapse(2) schedule(static) num_threads(team)
    for (size_t n = 0; n < s->batch; n++)
        for (size_t c = 0; c < s->channels; c++) {
            size_t first = (n * s->channels + c) * s->spatial;
            if (y)
                apply_run(dx, x, dy, y, first, s->spatial, mean[c], invstd[c], gamma[c],
                          means + 2 * c, true);
            else
                apply_run(dx, x, dy, y, first, s->spatial, mean[c], invstd[c], gamma[c],
                          means + 2 * c, false);
        }
    return TDM_OK;
}

/* ---------- pooling ---------- */

/* PyTorch's rule: a later value replaces the maximum if greater, or if NaN. */
static inline void window_max(const tdm_pool2d_shape *s, const float *restrict plane, size_t h0,
                              size_t w0, float *max_value, int32_t *max_index)
{
    float best = -INFINITY;
    size_t best_index = h0 * s->in_width + w0;
    for (size_t i = 0; i < s->kernel_h; i++) {
        const float *row = plane + (h0 + i) * s->in_width + w0;
        for (size_t j = 0; j < s->kernel_w; j++) {
            if (row[j] > best || isnan(row[j])) {
                best = row[j];
                best_index = (h0 + i) * s->in_width + w0 + j;
            }
        }
    }
    *max_value = best;
    *max_index = (int32_t)best_index;
}

/* The ResNet's 2x2 windows, unrolled, with the shape in locals: about 10x
 * faster than the general loop. The same rule: a later value wins if
 * greater or NaN. */
static void maxpool_2x2(tdm_backend *backend, const tdm_pool2d_shape *s,
                        const float *restrict x_all, float *restrict y_all,
                        int32_t *restrict argmax_all)
{
    const size_t oh_count = tdm_pool2d_out_height(s), ow_count = tdm_pool2d_out_width(s);
    const size_t planes = s->batch * s->channels, width = s->in_width;
    const size_t plane = s->in_height * width, stride_h = s->stride_h, stride_w = s->stride_w;
    int team = tdm_cpu_team(backend, planes * plane);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t p = 0; p < planes; p++) {
        const float *x = x_all + p * plane;
        float *y = y_all + p * oh_count * ow_count;
        int32_t *argmax = argmax_all + p * oh_count * ow_count;
        for (size_t oh = 0; oh < oh_count; oh++)
            for (size_t ow = 0; ow < ow_count; ow++) {
                const int32_t first = (int32_t)(oh * stride_h * width + ow * stride_w);
                const int32_t at[4] = {first, first + 1, first + (int32_t)width,
                                       first + (int32_t)width + 1};
                float best = x[at[0]];
                int32_t best_at = at[0];
                for (int k = 1; k < 4; k++) {
                    const float v = x[at[k]];
                    const bool greater = v > best; /* a max and a select, no jump */
                    best = greater ? v : best;
                    best_at = greater ? at[k] : best_at;
                    if (isnan(v)) { /* rare, so this branch is predicted */
                        best = v;
                        best_at = at[k];
                    }
                }
                *y++ = best;
                *argmax++ = best_at;
            }
    }
}

tdm_status tdm_cpu_maxpool2d(tdm_backend *backend, const tdm_pool2d_shape *s, tdm_view x,
                             tdm_view y, tdm_view argmax)
{
    if (s->kernel_h == 2 && s->kernel_w == 2) {
        maxpool_2x2(backend, s, floats(x), floats(y), ints(argmax));
        return TDM_OK;
    }
    size_t oh_count = tdm_pool2d_out_height(s), ow_count = tdm_pool2d_out_width(s);
    size_t planes = s->batch * s->channels, in_plane = s->in_height * s->in_width;
    size_t out_plane = oh_count * ow_count;
    const float *in = floats(x);
    float *out = floats(y);
    int32_t *index = ints(argmax);
    int team = tdm_cpu_team(backend, planes * in_plane);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t p = 0; p < planes; p++)
        for (size_t o = 0; o < out_plane; o++)
            window_max(s, in + p * in_plane, (o / ow_count) * s->stride_h,
                       (o % ow_count) * s->stride_w, &out[p * out_plane + o],
                       &index[p * out_plane + o]);
    return TDM_OK;
}

/* The first and one-past-last output index along an axis whose windows
 * contain input position `in`. */
static void windows_containing(size_t in, size_t kernel, size_t stride, size_t out_size,
                               size_t *first, size_t *end)
{
    *first = in + 1 > kernel ? (in + 1 - kernel + stride - 1) / stride : 0;
    size_t last = in / stride + 1;
    *end = last < out_size ? last : out_size;
}

/* Overlapping windows: each input gathers, in window order, the dy of the
 * windows whose argmax it is. */
static void maxpool_backward_gather(const tdm_pool2d_shape *s, const int32_t *index,
                                    const float *grad, float *out)
{
    size_t oh_count = tdm_pool2d_out_height(s), ow_count = tdm_pool2d_out_width(s);
    for (size_t h = 0; h < s->in_height; h++) {
        size_t oh0, oh1, ow0, ow1;
        windows_containing(h, s->kernel_h, s->stride_h, oh_count, &oh0, &oh1);
        for (size_t w = 0; w < s->in_width; w++) {
            windows_containing(w, s->kernel_w, s->stride_w, ow_count, &ow0, &ow1);
            float sum = 0.0f;
            for (size_t oh = oh0; oh < oh1; oh++)
                for (size_t ow = ow0; ow < ow1; ow++)
                    if ((size_t)index[oh * ow_count + ow] == h * s->in_width + w)
                        sum += grad[oh * ow_count + ow];
            *out++ = sum;
        }
    }
}

tdm_status tdm_cpu_maxpool2d_backward(tdm_backend *backend, const tdm_pool2d_shape *s,
                                      tdm_view argmax, tdm_view dy, tdm_view dx)
{
    size_t out_plane = tdm_pool2d_out_height(s) * tdm_pool2d_out_width(s);
    size_t planes = s->batch * s->channels, in_plane = s->in_height * s->in_width;
    bool disjoint = s->stride_h >= s->kernel_h && s->stride_w >= s->kernel_w;
    const int32_t *indices = ints(argmax);
    const float *grads = floats(dy);
    float *out_all = floats(dx);
    int team = tdm_cpu_team(backend, planes * in_plane);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t p = 0; p < planes; p++) {
        const int32_t *index = indices + p * out_plane;
        const float *grad = grads + p * out_plane;
        float *out = out_all + p * in_plane;
        if (!disjoint) {
            maxpool_backward_gather(s, index, grad, out);
            continue;
        }
        /* each input is in one window at most: a scatter is exact */
        memset(out, 0, in_plane * sizeof(float));
        for (size_t o = 0; o < out_plane; o++)
            out[index[o]] = grad[o];
    }
    return TDM_OK;
}

/* Sums in float, in index order: the OpenCL kernel does the same. */
void tdm_cpu_plane_means(const tdm_backend *backend, const float *in, size_t planes, size_t spatial,
                         float *out)
{
    int team = tdm_cpu_team(backend, planes * spatial);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t p = 0; p < planes; p++) {
        float sum = 0.0f;
        for (size_t i = 0; i < spatial; i++)
            sum += in[p * spatial + i];
        out[p] = sum / (float)spatial;
    }
}

void tdm_cpu_plane_shares(const tdm_backend *backend, const float *grad, size_t planes,
                          size_t spatial, float *out)
{
    int team = tdm_cpu_team(backend, planes * spatial);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t p = 0; p < planes; p++) {
        float share = grad[p] / (float)spatial;
        for (size_t i = 0; i < spatial; i++)
            out[p * spatial + i] = share;
    }
}

tdm_status tdm_cpu_global_avgpool(tdm_backend *backend, size_t planes, size_t spatial, tdm_view x,
                                  tdm_view y)
{
    tdm_cpu_plane_means(backend, floats(x), planes, spatial, floats(y));
    return TDM_OK;
}

tdm_status tdm_cpu_global_avgpool_backward(tdm_backend *backend, size_t planes, size_t spatial,
                                           tdm_view dy, tdm_view dx)
{
    tdm_cpu_plane_shares(backend, floats(dy), planes, spatial, floats(dx));
    return TDM_OK;
}

/* ---------- loss ---------- */

/* log(sum_k exp(z[k])) with the maximum subtracted first, in double; *top is
 * the first argmax (the cross-entropy's prediction). */
static double log_sum_exp(const float *z, size_t count, size_t *top)
{
    size_t best = 0;
    for (size_t k = 1; k < count; k++)
        if (z[k] > z[best])
            best = k;
    double sum = 0.0;
    for (size_t k = 0; k < count; k++)
        sum += exp((double)z[k] - z[best]);
    *top = best;
    return z[best] + log(sum);
}

tdm_status tdm_cpu_softmax_cross_entropy(tdm_backend *backend, const tdm_cross_entropy_shape *s,
                                         tdm_view logits, tdm_view labels, tdm_view losses,
                                         tdm_view wrong, tdm_view dlogits)
{
    int team = tdm_cpu_team(backend, s->batch * s->classes);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t n = 0; n < s->batch; n++) {
        const float *z = floats(logits) + n * s->classes;
        int32_t label = ints(labels)[n];
        bool valid = label >= 0 && (size_t)label < s->classes;
        size_t top = 0;
        double log_sum = log_sum_exp(z, s->classes, &top);
        floats(losses)[n] = valid ? (float)(log_sum - z[label]) : NAN;
        if (wrong.buffer)
            floats(wrong)[n] = top == (size_t)label ? 0.0f : 1.0f;
        for (size_t k = 0; dlogits.buffer && k < s->classes; k++) {
            double p = exp((double)z[k] - log_sum) - ((size_t)label == k ? 1.0 : 0.0);
            floats(dlogits)[n * s->classes + k] = valid ? (float)(p / (double)s->batch) : NAN;
        }
    }
    return TDM_OK;
}

/* ---------- optimizer ---------- */

tdm_status tdm_cpu_sgd(tdm_backend *backend, const tdm_sgd_options *o, bool first_step,
                       bool zero_grad, size_t count, tdm_view weight, tdm_view grad,
                       tdm_view velocity)
{
    float *w = floats(weight), *v = velocity.buffer ? floats(velocity) : NULL, *g = floats(grad);
    int team = tdm_cpu_team(backend, count);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t i = 0; i < count; i++) {
        float d = g[i] + o->weight_decay * w[i];
        if (o->momentum != 0.0f) {
            v[i] = first_step ? d : o->momentum * v[i] + (1.0f - o->dampening) * d;
            d = o->nesterov ? d + o->momentum * v[i] : v[i];
        }
        w[i] -= o->lr * d;
        if (zero_grad)
            g[i] = 0.0f;
    }
    return TDM_OK;
}

/* ---------- EM ---------- */

/* Rows [first, last): the row maximum subtracted (kept in lse), the
 * exponentials taken in one vector pass over the rows, then each row divided
 * by its sum (in double); lse = max + log(sum). */
static void softmax_row_range(float *all, size_t cols, size_t first, size_t last, float *lse)
{
    for (size_t r = first; r < last; r++) {
        float *row = all + r * cols, top = row[0];
        for (size_t j = 1; j < cols; j++)
            top = row[j] > top ? row[j] : top;
        for (size_t j = 0; j < cols; j++)
            row[j] -= top;
        lse[r] = top;
    }
    tdm_cpu_exp_in_place(all + first * cols, (last - first) * cols);
    for (size_t r = first; r < last; r++) {
        float *row = all + r * cols;
        double sum = 0.0;
        for (size_t j = 0; j < cols; j++)
            sum += row[j];
        lse[r] = (float)(lse[r] + log(sum));
        for (size_t j = 0; j < cols; j++)
            row[j] = (float)(row[j] / sum);
    }
}

tdm_status tdm_cpu_softmax_rows(tdm_backend *backend, size_t rows, size_t cols, tdm_view x,
                                tdm_view lse)
{
    enum { ROWS_PER_TASK = 256 };
    float *all = floats(x), *sums = floats(lse);
    int team = tdm_cpu_team(backend, rows * cols);
    size_t tasks = (rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t t = 0; t < tasks; t++) {
        size_t first = t * ROWS_PER_TASK;
        softmax_row_range(all, cols, first,
                          rows - first < ROWS_PER_TASK ? rows : first + ROWS_PER_TASK, sums);
    }
    return TDM_OK;
}

tdm_status tdm_cpu_batchnorm_forward(tdm_backend *backend, const tdm_batchnorm_shape *s,
                                     const tdm_batchnorm_views *v, bool train)
{
    if (train)
        TDM_TRY(batchnorm_stats(backend, s, v));
    TDM_TRY(batchnorm_normalize(backend, s, v, !train));
    return tdm_batchnorm_pool_apart(backend, s, v, true);
}

tdm_status tdm_cpu_batchnorm_backward(tdm_backend *backend, const tdm_batchnorm_shape *s,
                                      const tdm_batchnorm_views *v)
{
    TDM_TRY(tdm_batchnorm_pool_apart(backend, s, v, false));
    TDM_TRY(batchnorm_backward_reduce(backend, s, v));
    return batchnorm_backward_apply(backend, s, v);
}

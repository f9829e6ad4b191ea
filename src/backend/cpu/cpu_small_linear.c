/* The cpu backend's linear layer with few weights (small_linear,
 * small_linear_backward): each output one sum in the order of the OpenCL
 * kernels (cl/linear.cl), the loops over independent outputs innermost so
 * that the compiler vectorises them without reordering any sum. */
#include <stdlib.h>

#include "backend/cpu/cpu_clones.h"
#include "backend/cpu/cpu_layers.h"
#include "core/error.h"

/* Sixteen outputs of a row at a time, four rows at once (four independent
 * sums in flight). */
enum { LANES = TDM_VEC16_LANES, ROWS = 4 };

/* The weights transposed in chunks of LANES outputs, zero past the last:
 * wt[(chunk * in + i) * LANES + lane] = w[chunk * LANES + lane][i]. */
static float *transposed_weights(const float *w, size_t in, size_t out)
{
    size_t chunks = (out + LANES - 1) / LANES;
    float *wt = aligned_alloc(sizeof(tdm_vec16), chunks * in * LANES * sizeof(float));
    for (size_t c = 0; wt && c < chunks; c++)
        for (size_t i = 0; i < in; i++)
            for (size_t l = 0; l < LANES; l++) {
                size_t o = c * LANES + l;
                wt[(c * in + i) * LANES + l] = o < out ? w[o * in + i] : 0.0f;
            }
    return wt;
}

/* y[r][o] for `rows` rows (at most ROWS) and a chunk's `lanes` outputs
 * (at most LANES): the sum over i in order of x[r][i] * w[o][i], then +
 * bias[o]; y's rows are `out` apart. */
TDM_VECTOR_CLONES
static void linear_chunk(const float *x, size_t rows, const float *wt, const float *bias, size_t in,
                         size_t lanes, size_t out, float *y)
{
    tdm_vec16 sums[ROWS] = {{0.0f}};
    for (size_t i = 0; i < in; i++) {
        tdm_vec16 w = *(const tdm_vec16 *)(wt + i * LANES);
#pragma GCC unroll 4
        for (size_t r = 0; r < ROWS; r++)
            if (r < rows)
                sums[r] += x[r * in + i] * w;
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t l = 0; l < lanes; l++)
            y[r * out + l] = bias ? sums[r][l] + bias[l] : sums[r][l];
}

/* A pooled layer's features [N][in], each the mean of its pool as
 * global_avgpool computes it; NULL without pooling. */
static tdm_status pooled_features(const tdm_backend *backend, const tdm_linear_shape *s, tdm_view x,
                                  float **out)
{
    *out = NULL;
    if (s->pool <= 1)
        return TDM_OK;
    size_t rows = s->batch * s->in_features;
    float *features = malloc(rows * sizeof(float) + 1);
    if (!features)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "small_linear: no memory for the pooled features");
    tdm_cpu_plane_means(backend, tdm_view_host_floats(x), rows, s->pool, features);
    *out = features;
    return TDM_OK;
}

tdm_status tdm_cpu_small_linear(tdm_backend *backend, const tdm_linear_shape *s, tdm_view x,
                                tdm_view weight, tdm_view bias, tdm_view y)
{
    TDM_TRY(tdm_check_small_linear("small_linear", s));
    size_t in = s->in_features, out = s->out_features, chunks = (out + LANES - 1) / LANES;
    float *features = NULL;
    TDM_TRY(pooled_features(backend, s, x, &features));
    float *wt = transposed_weights(tdm_view_host_floats(weight), in, out);
    if (!wt) {
        free(features);
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "small_linear: no memory for the weights");
    }
    const float *x_all = features ? features : tdm_view_host_floats(x);
    const float *b = bias.buffer ? tdm_view_host_floats(bias) : NULL;
    float *y_all = tdm_view_host_floats(y);
    size_t blocks = (s->batch + ROWS - 1) / ROWS;
    int team = tdm_cpu_team(backend, s->batch * in * out);
#pragma omp parallel for collapse(2) schedule(static) num_threads(team)
    for (size_t block = 0; block < blocks; block++)
        for (size_t c = 0; c < chunks; c++) {
            size_t n = block * ROWS, rows = s->batch - n < ROWS ? s->batch - n : ROWS;
            size_t lanes = out - c * LANES < LANES ? out - c * LANES : LANES;
            linear_chunk(x_all + n * in, rows, wt + c * in * LANES, b ? b + c * LANES : NULL, in,
                         lanes, out, y_all + n * out + c * LANES);
        }
    free(wt);
    free(features);
    return TDM_OK;
}

/* dx[r][i] for `rows` rows (at most ROWS) and LANES inputs from i0: the sum
 * over o in order of dy[r][o] * w[o][i]. */
TDM_VECTOR_CLONES
static void input_gradient_chunk(const float *dy, size_t rows, const float *w, size_t i0, size_t in,
                                 size_t out, float *dx)
{
    tdm_vec16 sums[ROWS] = {{0.0f}};
    for (size_t o = 0; o < out; o++) {
        tdm_vec16 wv = tdm_load16(w + o * in + i0);
#pragma GCC unroll 4
        for (size_t r = 0; r < ROWS; r++)
            if (r < rows)
                sums[r] += dy[r * out + o] * wv;
    }
    for (size_t r = 0; r < rows; r++)
        tdm_store16(dx + r * in + i0, sums[r]);
}

/* The same for one input i, past the last whole chunk. */
static void input_gradient_one(const float *dy, size_t rows, const float *w, size_t i, size_t in,
                               size_t out, float *dx)
{
    for (size_t r = 0; r < rows; r++) {
        float sum = 0.0f;
        for (size_t o = 0; o < out; o++)
            sum += dy[r * out + o] * w[o * in + i];
        dx[r * in + i] = sum;
    }
}

static void input_gradient_rows(const float *dy, size_t rows, const float *w, size_t in, size_t out,
                                float *dx)
{
    size_t i = 0;
    for (; i + LANES <= in; i += LANES)
        input_gradient_chunk(dy, rows, w, i, in, out, dx);
    for (; i < in; i++)
        input_gradient_one(dy, rows, w, i, in, out, dx);
}

/* dweight[q][i] for `count` outputs (at most ROWS) and LANES inputs from
 * i0: += the sum over n in order of dy[n][q] * x[n][i]. */
TDM_VECTOR_CLONES
static void weight_gradient_chunk(const float *dy, size_t count, const float *x, size_t i0,
                                  size_t batch, size_t in, size_t out, float *dw)
{
    tdm_vec16 sums[ROWS] = {{0.0f}};
    for (size_t n = 0; n < batch; n++) {
        tdm_vec16 xv = tdm_load16(x + n * in + i0);
#pragma GCC unroll 4
        for (size_t q = 0; q < ROWS; q++)
            if (q < count)
                sums[q] += dy[n * out + q] * xv;
    }
    for (size_t q = 0; q < count; q++) {
        tdm_store16(dw + q * in + i0, tdm_load16(dw + q * in + i0) + sums[q]);
    }
}

/* The same for one input i, past the last whole chunk. */
static void weight_gradient_one(const float *dy, size_t count, const float *x, size_t i,
                                size_t batch, size_t in, size_t out, float *dw)
{
    for (size_t q = 0; q < count; q++) {
        float sum = 0.0f;
        for (size_t n = 0; n < batch; n++)
            sum += dy[n * out + q] * x[n * in + i];
        dw[q * in + i] += sum;
    }
}

static void weight_gradient_rows(const float *dy, size_t count, const float *x, size_t batch,
                                 size_t in, size_t out, float *dw)
{
    size_t i = 0;
    for (; i + LANES <= in; i += LANES)
        weight_gradient_chunk(dy, count, x, i, batch, in, out, dw);
    for (; i < in; i++)
        weight_gradient_one(dy, count, x, i, batch, in, out, dw);
}

static void bias_gradient(const float *dy, size_t batch, size_t out, float *db)
{
    for (size_t o = 0; o < out; o++) {
        float sum = 0.0f;
        for (size_t n = 0; n < batch; n++)
            sum += dy[n * out + o];
        db[o] += sum;
    }
}

static tdm_status input_gradient(tdm_backend *backend, const tdm_linear_shape *s, tdm_view weight,
                                 const float *g, tdm_view dx)
{
    size_t in = s->in_features, out = s->out_features, batch = s->batch;
    const float *w = tdm_view_host_floats(weight);
    float *dx_all = tdm_view_host_floats(dx), *features_grad = dx_all;
    if (s->pool > 1 && !(features_grad = malloc(batch * in * sizeof(float) + 1)))
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "small_linear_backward: no memory for dx");
    int team = tdm_cpu_team(backend, batch * in * out);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t n = 0; n < batch; n += ROWS)
        input_gradient_rows(g + n * out, batch - n < ROWS ? batch - n : ROWS, w, in, out,
                            features_grad + n * in);
    if (s->pool > 1) {
        tdm_cpu_plane_shares(backend, features_grad, batch * in, s->pool, dx_all);
        free(features_grad);
    }
    return TDM_OK;
}

static tdm_status weight_gradient(tdm_backend *backend, const tdm_linear_shape *s, tdm_view x,
                                  const float *g, tdm_view dweight)
{
    size_t in = s->in_features, out = s->out_features, batch = s->batch;
    float *features = NULL;
    TDM_TRY(pooled_features(backend, s, x, &features));
    const float *x_all = features ? features : tdm_view_host_floats(x);
    float *dw = tdm_view_host_floats(dweight);
    int team = tdm_cpu_team(backend, batch * in * out);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t o = 0; o < out; o += ROWS)
        weight_gradient_rows(g + o, out - o < ROWS ? out - o : ROWS, x_all, batch, in, out,
                             dw + o * in);
    free(features);
    return TDM_OK;
}

tdm_status tdm_cpu_small_linear_backward(tdm_backend *backend, const tdm_linear_shape *s,
                                         tdm_view x, tdm_view weight, tdm_view dy, tdm_view dx,
                                         tdm_view dweight, tdm_view dbias)
{
    TDM_TRY(tdm_check_small_linear("small_linear_backward", s));
    const float *g = tdm_view_host_floats(dy);
    if (dx.buffer)
        TDM_TRY(input_gradient(backend, s, weight, g, dx));
    if (dx.buffer && s->relu) /* the ReLU's backward, through its own loop: its bits */
        TDM_TRY(backend->iface->elementwise(backend, TDM_ELEMENTWISE_RELU_BACKWARD,
                                            s->batch * s->in_features * (s->pool > 1 ? s->pool : 1),
                                            0.0f, x, dx, dx));
    if (dweight.buffer)
        TDM_TRY(weight_gradient(backend, s, x, g, dweight));
    if (dbias.buffer)
        bias_gradient(g, s->batch, s->out_features, tdm_view_host_floats(dbias));
    return TDM_OK;
}

/* The layer ops in the parity harness: cases (batch 1, odd spatial sizes,
 * channels 1, 3 and 64, the ResNet's and LeNet's own shapes), how each runs,
 * and a double-precision reference written straight from the definitions. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "backend/backend_impl.h"
#include "parity.h"

static tensor_spec *add_tensor(op_case *c, const char *name, size_t count, bool written,
                               tensor_init init)
{
    tensor_spec *t = &c->tensors[c->tensor_count++];
    *t = (tensor_spec){.name = name, .count = count, .written = written, .init = init};
    return t;
}

static op_case *new_case(op_case *cases, size_t *count)
{
    op_case *c = &cases[(*count)++];
    memset(c, 0, sizeof *c);
    return c;
}

/* ---------- conv2d ----------
 * Images with H*W <= KH*KW take the dense-matrix path, the others im2col,
 * whose col meets the weights in a GEMM, or without one for at most 16 taps
 * a sample (Cin*KH*KW: conv_col_product, and conv_col_weight_gradient up to
 * 2^16 positions N*OH*OW): all of them are among the shapes. */

static const tdm_conv2d_shape conv_shapes[] = {
    /* batch, Cin, H, W, Cout, KH, KW, SH, SW, PH, PW */
    {1, 1, 8, 8, 1, 3, 3, 2, 2, 1, 1},    /* ResNet(1) stem */
    {2, 1, 8, 8, 4, 3, 3, 2, 2, 1, 1},    /* ResNet(4) stem */
    {3, 3, 7, 5, 2, 3, 3, 1, 1, 1, 1},    /* odd sizes */
    {2, 4, 2, 2, 4, 3, 3, 1, 1, 1, 1},    /* Block(4) */
    {2, 64, 2, 2, 64, 3, 3, 1, 1, 1, 1},  /* Block(64) */
    {1, 1, 28, 28, 20, 5, 5, 1, 1, 0, 0}, /* LeNet's first conv */
    {2, 3, 9, 9, 5, 2, 3, 2, 3, 0, 1},    /* unequal kernel, stride, padding */
    /* Above the size from which the cpu backend splits loops between threads: */
    {32, 4, 8, 8, 4, 3, 3, 1, 1, 1, 1},    /* Block(4) on 8x8 images */
    {128, 16, 2, 2, 16, 3, 3, 1, 1, 1, 1}, /* Block(16) on 2x2 images */
    {5, 2, 5, 5, 3, 1, 1, 1, 1, 0, 0},     /* 1x1 */
    {1, 3, 3, 3, 64, 3, 3, 1, 1, 2, 2},    /* padding wider than the kernel's half */
    {4, 2, 6, 6, 3, 4, 4, 3, 3, 1, 1},     /* stride 3 */
    {3, 5, 3, 2, 2, 3, 3, 2, 1, 1, 1},     /* small image, unequal strides: dense path */
    {2, 3, 3, 3, 4, 5, 5, 1, 1, 2, 2},     /* dense path, 25 taps: more than 16 at once */
    {128, 1, 8, 8, 64, 3, 3, 2, 2, 1, 1},  /* ResNet(64) stem, a training batch */
    {40, 1, 6, 6, 8, 4, 4, 2, 2, 1, 1},    /* 16 taps, the most without a GEMM; 3x3 outputs */
    {16, 1, 66, 66, 2, 3, 3, 1, 1, 1, 1},  /* 9 taps over 69696 positions: the weight
                                              gradient through a GEMM again */
};
enum { CONV_SHAPE_COUNT = sizeof conv_shapes / sizeof conv_shapes[0] };

typedef enum conv_direction {
    CONV_FORWARD,
    CONV_BACKWARD_INPUT,
    CONV_BACKWARD_WEIGHT,
    CONV_BACKWARD_ALL /* both gradients at once */
} conv_direction;

/* With SMALL_IMAGES or FEW_TAPS in the variant, only the shapes of the
 * dense plan, or of the few-tap one (at most 16 taps a sample), or both;
 * with ACCUMULATE, CONV_BACKWARD_ALL adds dx to its initial values. */
enum { SMALL_IMAGES = 8, FEW_TAPS = 16, ACCUMULATE = 32 };

static bool conv_shape_in_variant(const tdm_conv2d_shape *s, int variant)
{
    bool dense = s->in_height * s->in_width <= s->kernel_h * s->kernel_w;
    bool few_taps = !dense && s->in_channels * s->kernel_h * s->kernel_w <= TDM_CONV_COL_MAX_TAPS;
    if (!(variant & (SMALL_IMAGES | FEW_TAPS)))
        return true;
    return ((variant & SMALL_IMAGES) && dense) || ((variant & FEW_TAPS) && few_taps);
}

static size_t make_conv_cases(op_case *cases, size_t capacity, int variant)
{
    size_t count = 0;
    int direction = variant & ~(SMALL_IMAGES | FEW_TAPS | ACCUMULATE);
    for (size_t i = 0; i < CONV_SHAPE_COUNT && count < capacity; i++) {
        const tdm_conv2d_shape *s = &conv_shapes[i];
        if (!conv_shape_in_variant(s, variant))
            continue;
        op_case *c = new_case(cases, &count);
        c->p.layer.conv = *s;
        bool bias = i % 2 == 1;
        size_t nx = s->batch * s->in_channels * s->in_height * s->in_width;
        size_t nw = s->out_channels * s->in_channels * s->kernel_h * s->kernel_w;
        size_t ny = s->batch * s->out_channels * tdm_conv2d_out_height(s) * tdm_conv2d_out_width(s);
        if (direction == CONV_FORWARD) {
            add_tensor(c, "x", nx, false, INIT_RANDOM);
            add_tensor(c, "weight", nw, false, INIT_RANDOM);
            add_tensor(c, "y", ny, true, INIT_NAN);
            if (bias)
                add_tensor(c, "bias", s->out_channels, false, INIT_RANDOM);
        } else if (direction == CONV_BACKWARD_INPUT) {
            add_tensor(c, "weight", nw, false, INIT_RANDOM);
            add_tensor(c, "dy", ny, false, INIT_RANDOM);
            add_tensor(c, "dx", nx, true, INIT_NAN);
        } else if (direction == CONV_BACKWARD_ALL) {
            add_tensor(c, "x", nx, false, INIT_RANDOM);
            add_tensor(c, "weight", nw, false, INIT_RANDOM);
            add_tensor(c, "dy", ny, false, INIT_RANDOM);
            add_tensor(c, "dx", nx, true, variant & ACCUMULATE ? INIT_RANDOM : INIT_NAN);
            add_tensor(c, "dweight", nw, true, INIT_RANDOM);
            if (bias)
                add_tensor(c, "dbias", s->out_channels, true, INIT_RANDOM);
        } else {
            add_tensor(c, "x", nx, false, INIT_RANDOM);
            add_tensor(c, "dy", ny, false, INIT_RANDOM);
            add_tensor(c, "dweight", nw, true, INIT_RANDOM); /* accumulated into */
            if (bias)
                add_tensor(c, "dbias", s->out_channels, true, INIT_RANDOM);
        }
        snprintf(c->label, sizeof c->label,
                 "N=%zu Cin=%zu %zux%zu Cout=%zu k=%zux%zu s=%zux%zu p=%zux%zu%s", s->batch,
                 s->in_channels, s->in_height, s->in_width, s->out_channels, s->kernel_h,
                 s->kernel_w, s->stride_h, s->stride_w, s->pad_h, s->pad_w, bias ? " bias" : "");
    }
    return count;
}

static tdm_view optional_view(const op_case *c, const tdm_view *v, size_t index)
{
    return index < c->tensor_count ? v[index] : (tdm_view){0};
}

static tdm_status run_conv_forward(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_conv2d_forward(backend, &c->p.layer.conv, v[0], v[1], optional_view(c, v, 3), v[2]);
}

static tdm_status run_conv_backward_input(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_conv2d_backward_input(backend, &c->p.layer.conv, v[0], v[1], v[2]);
}

static tdm_status run_conv_backward_weight(tdm_backend *backend, const op_case *c,
                                           const tdm_view *v)
{
    return tdm_conv2d_backward_weight(backend, &c->p.layer.conv, v[0], v[1], v[2],
                                      optional_view(c, v, 3));
}

static tdm_status run_conv_backward_all(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_conv2d_backward(backend, &c->p.layer.conv, v[0], v[1], v[2], v[3], v[4],
                               optional_view(c, v, 5));
}

/* A run with small convolutions as direct kernels on every backend, as a
 * GPU runs them (direct_small_convs). */
static tdm_status run_with_direct_convs(tdm_backend *backend, const op_case *c, const tdm_view *v,
                                        tdm_status (*run)(tdm_backend *, const op_case *,
                                                          const tdm_view *))
{
    bool direct = backend->direct_small_convs;
    backend->direct_small_convs = true;
    tdm_status status = run(backend, c, v);
    backend->direct_small_convs = direct;
    return status;
}

/* The few-tap and small-image plans' forward as conv_direct_forward. */
static tdm_status run_conv_forward_direct(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return run_with_direct_convs(backend, c, v, run_conv_forward);
}

/* The small-image plan's input gradient as conv_direct_backward. */
static tdm_status run_conv_backward_input_direct(tdm_backend *backend, const op_case *c,
                                                 const tdm_view *v)
{
    return run_with_direct_convs(backend, c, v, run_conv_backward_input);
}

/* The dense and few-tap plans' weight gradient as conv_direct_backward. */
static tdm_status run_conv_backward_weight_direct(tdm_backend *backend, const op_case *c,
                                                  const tdm_view *v)
{
    return run_with_direct_convs(backend, c, v, run_conv_backward_weight);
}

/* The small-image plan's gradients as one conv_direct_backward. */
static tdm_status run_conv_backward_all_direct(tdm_backend *backend, const op_case *c,
                                               const tdm_view *v)
{
    return run_with_direct_convs(backend, c, v, run_conv_backward_all);
}

static tdm_status run_conv_backward_accumulate(tdm_backend *backend, const op_case *c,
                                               const tdm_view *v)
{
    return tdm_conv2d_backward_accumulate(backend, &c->p.layer.conv, v[0], v[1], v[2], v[3], v[4],
                                          optional_view(c, v, 5));
}

/* The same with dx added in place, which only the direct kernel does. */
static tdm_status run_conv_backward_accumulate_direct(tdm_backend *backend, const op_case *c,
                                                      const tdm_view *v)
{
    return run_with_direct_convs(backend, c, v, run_conv_backward_accumulate);
}

void parity_conv_reference(const tdm_conv2d_shape *s, const double *x, const double *w,
                           const double *dy, double *y, double *dx, double *dw)
{
    size_t oh_count = tdm_conv2d_out_height(s), ow_count = tdm_conv2d_out_width(s);
    for (size_t n = 0; n < s->batch; n++)
        for (size_t co = 0; co < s->out_channels; co++)
            for (size_t oh = 0; oh < oh_count; oh++)
                for (size_t ow = 0; ow < ow_count; ow++)
                    for (size_t ci = 0; ci < s->in_channels; ci++)
                        for (size_t i = 0; i < s->kernel_h; i++)
                            for (size_t j = 0; j < s->kernel_w; j++) {
                                long h = (long)(oh * s->stride_h + i) - (long)s->pad_h;
                                long wi = (long)(ow * s->stride_w + j) - (long)s->pad_w;
                                if (h < 0 || wi < 0 || h >= (long)s->in_height ||
                                    wi >= (long)s->in_width)
                                    continue;
                                size_t xi = ((n * s->in_channels + ci) * s->in_height + (size_t)h) *
                                                s->in_width +
                                            (size_t)wi;
                                size_t ki =
                                    ((co * s->in_channels + ci) * s->kernel_h + i) * s->kernel_w +
                                    j;
                                size_t yi =
                                    ((n * s->out_channels + co) * oh_count + oh) * ow_count + ow;
                                if (y)
                                    y[yi] += w[ki] * x[xi];
                                if (dx)
                                    dx[xi] += w[ki] * dy[yi];
                                if (dw)
                                    dw[ki] += dy[yi] * x[xi];
                            }
}

static void reference_conv_forward(const op_case *c, double *const *t)
{
    const tdm_conv2d_shape *s = &c->p.layer.conv;
    size_t spatial = tdm_conv2d_out_height(s) * tdm_conv2d_out_width(s);
    for (size_t i = 0; i < c->tensors[2].count; i++)
        t[2][i] = c->tensor_count > 3 ? t[3][(i / spatial) % s->out_channels] : 0.0;
    parity_conv_reference(s, t[0], t[1], NULL, t[2], NULL, NULL);
}

static void reference_conv_backward_input(const op_case *c, double *const *t)
{
    memset(t[2], 0, c->tensors[2].count * sizeof(double));
    parity_conv_reference(&c->p.layer.conv, NULL, t[0], t[1], NULL, t[2], NULL);
}

/* Sum over n and s of t[n][c][s], added to out[c]. */
static void add_channel_sums(const double *t, size_t batch, size_t channels, size_t spatial,
                             double *out)
{
    for (size_t i = 0; i < batch * channels * spatial; i++)
        out[(i / spatial) % channels] += t[i];
}

static void reference_conv_backward_weight(const op_case *c, double *const *t)
{
    const tdm_conv2d_shape *s = &c->p.layer.conv;
    parity_conv_reference(s, t[0], NULL, t[1], NULL, NULL, t[2]);
    if (c->tensor_count > 3)
        add_channel_sums(t[1], s->batch, s->out_channels,
                         tdm_conv2d_out_height(s) * tdm_conv2d_out_width(s), t[3]);
}

/* x, weight, dy, dx (its initial values kept with ACCUMULATE), dweight, dbias. */
static void reference_conv_backward_all(const op_case *c, double *const *t)
{
    const tdm_conv2d_shape *s = &c->p.layer.conv;
    if (c->tensors[3].init == INIT_NAN)
        memset(t[3], 0, c->tensors[3].count * sizeof(double));
    parity_conv_reference(s, t[0], t[1], t[2], NULL, t[3], t[4]);
    if (c->tensor_count > 5)
        add_channel_sums(t[2], s->batch, s->out_channels,
                         tdm_conv2d_out_height(s) * tdm_conv2d_out_width(s), t[5]);
}

/* ---------- linear ----------
 * Layers of at most 4096 weights run small_linear and small_linear_backward
 * (sums in order, no GEMM), larger ones GEMMs: each has its own table
 * entries, so that the GEMM-free ones count as ops without a GEMM (the same
 * bits on any thread count, Oclgrind's full checks). */

/* batch, in, out, pool (an average pool over `pool` values a feature first) */
static const tdm_linear_shape small_linear_shapes[] = {
    {1, 1, 1, 0, false},     {16, 4, 10, 0, false}, {128, 64, 10, 0, false}, {3, 7, 5, 0, false},
    {81, 1, 10, 0, false},   {2, 50, 3, 0, false},  {9, 19, 33, 0, false},   {5, 4096, 1, 0, false},
    {128, 64, 64, 0, false}, /* 4096 weights, the most
                              */
    {128, 64, 10, 4, false}, /* ResNet(64)'s head over its 2 x 2 block */
    {3, 7, 5, 9, false},     {2, 33, 17, 2, false},
};
static const tdm_linear_shape gemm_linear_shapes[] = {
    {8, 80, 60, 0, false}, /* 4800 weights */
    {3, 4097, 1, 0, false},
    {130, 65, 64, 0, false},
    {8, 80, 60, 3, false},
};

static size_t linear_pool(const tdm_linear_shape *s)
{
    return s->pool > 1 ? s->pool : 1;
}

/* A variant: the direction, and LINEAR_GEMM for the larger layers. */
enum { LINEAR_BACKWARD_ALL = CONV_BACKWARD_ALL, LINEAR_GEMM = 8 };

static void add_linear_tensors(op_case *c, int direction, bool bias)
{
    const tdm_linear_shape *s = &c->p.layer.linear;
    size_t nx = s->batch * s->in_features * linear_pool(s), nw = s->out_features * s->in_features,
           ny = s->batch * s->out_features;
    bool input_gradient = direction == CONV_BACKWARD_INPUT || direction == LINEAR_BACKWARD_ALL,
         weight_gradient = direction == CONV_BACKWARD_WEIGHT || direction == LINEAR_BACKWARD_ALL;
    if (direction == CONV_FORWARD) {
        add_tensor(c, "x", nx, false, INIT_RANDOM);
        add_tensor(c, "weight", nw, false, INIT_RANDOM);
        add_tensor(c, "y", ny, true, INIT_NAN);
        if (bias)
            add_tensor(c, "bias", s->out_features, false, INIT_RANDOM);
        return;
    }
    if (weight_gradient)
        add_tensor(c, "x", nx, false, INIT_RANDOM);
    if (input_gradient)
        add_tensor(c, "weight", nw, false, INIT_RANDOM);
    add_tensor(c, "dy", ny, false, INIT_RANDOM);
    if (input_gradient)
        add_tensor(c, "dx", nx, true, INIT_NAN);
    if (weight_gradient)
        add_tensor(c, "dweight", nw, true, INIT_RANDOM);
    if (weight_gradient && bias)
        add_tensor(c, "dbias", s->out_features, true, INIT_RANDOM);
}

static size_t make_linear_cases(op_case *cases, size_t capacity, int variant)
{
    bool gemm = variant & LINEAR_GEMM;
    const tdm_linear_shape *shapes = gemm ? gemm_linear_shapes : small_linear_shapes;
    size_t shape_count = gemm ? sizeof gemm_linear_shapes / sizeof gemm_linear_shapes[0]
                              : sizeof small_linear_shapes / sizeof small_linear_shapes[0];
    size_t count = 0;
    for (size_t i = 0; i < shape_count && count < capacity; i++) {
        const tdm_linear_shape *s = &shapes[i];
        op_case *c = new_case(cases, &count);
        c->p.layer.linear = *s;
        bool bias = i % 2 == 0;
        /* the input ReLU's backward (tdm_linear_backward alone takes it) */
        c->p.layer.linear.relu = (variant & ~LINEAR_GEMM) == LINEAR_BACKWARD_ALL && !bias;
        add_linear_tensors(c, variant & ~LINEAR_GEMM, bias);
        snprintf(c->label, sizeof c->label, "N=%zu in=%zu out=%zu pool=%zu%s%s", s->batch,
                 s->in_features, s->out_features, linear_pool(s), bias ? " bias" : "",
                 c->p.layer.linear.relu ? " relu" : "");
    }
    return count;
}

static tdm_status run_linear_forward(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_linear_forward(backend, &c->p.layer.linear, v[0], v[1], optional_view(c, v, 3),
                              v[2]);
}

static tdm_status run_linear_backward_input(tdm_backend *backend, const op_case *c,
                                            const tdm_view *v)
{
    return tdm_linear_backward_input(backend, &c->p.layer.linear, v[0], v[1], v[2]);
}

static tdm_status run_linear_backward_weight(tdm_backend *backend, const op_case *c,
                                             const tdm_view *v)
{
    return tdm_linear_backward_weight(backend, &c->p.layer.linear, v[0], v[1], v[2],
                                      optional_view(c, v, 3));
}

/* x, weight, dy, dx, dweight[, dbias] */
static tdm_status run_linear_backward(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_linear_backward(backend, &c->p.layer.linear, v[0], v[1], v[2], v[3], v[4],
                               optional_view(c, v, 5));
}

/* Feature `row` (n * in + i) of x: the mean of its pool, in double. */
static double linear_feature(const tdm_linear_shape *s, const double *x, size_t row)
{
    size_t pool = linear_pool(s);
    double sum = 0.0;
    for (size_t p = 0; p < pool; p++)
        sum += x[row * pool + p];
    return sum / (double)pool;
}

/* y [N][out] = features w^T (+ bias) */
static void reference_linear_forward(const op_case *c, double *const *t)
{
    const tdm_linear_shape *s = &c->p.layer.linear;
    for (size_t n = 0; n < s->batch; n++)
        for (size_t o = 0; o < s->out_features; o++) {
            double sum = c->tensor_count > 3 ? t[3][o] : 0.0;
            for (size_t i = 0; i < s->in_features; i++)
                sum +=
                    linear_feature(s, t[0], n * s->in_features + i) * t[1][o * s->in_features + i];
            t[2][n * s->out_features + o] = sum;
        }
}

/* dx [N][in][pool] = (dy w) / pool for each value of the pool */
static void linear_input_gradient(const tdm_linear_shape *s, const double *w, const double *dy,
                                  double *dx)
{
    size_t pool = linear_pool(s);
    for (size_t n = 0; n < s->batch; n++)
        for (size_t i = 0; i < s->in_features; i++) {
            double sum = 0.0;
            for (size_t o = 0; o < s->out_features; o++)
                sum += dy[n * s->out_features + o] * w[o * s->in_features + i];
            for (size_t p = 0; p < pool; p++)
                dx[(n * s->in_features + i) * pool + p] = sum / (double)pool;
        }
}

/* dw += dy^T features; db += column sums of dy (db may be NULL) */
static void linear_weight_gradient(const tdm_linear_shape *s, const double *x, const double *dy,
                                   double *dw, double *db)
{
    for (size_t o = 0; o < s->out_features; o++)
        for (size_t n = 0; n < s->batch; n++) {
            for (size_t i = 0; i < s->in_features; i++)
                dw[o * s->in_features + i] +=
                    dy[n * s->out_features + o] * linear_feature(s, x, n * s->in_features + i);
            if (db)
                db[o] += dy[n * s->out_features + o];
        }
}

static void reference_linear_backward_input(const op_case *c, double *const *t)
{
    linear_input_gradient(&c->p.layer.linear, t[0], t[1], t[2]);
}

static void reference_linear_backward_weight(const op_case *c, double *const *t)
{
    linear_weight_gradient(&c->p.layer.linear, t[0], t[1], t[2], c->tensor_count > 3 ? t[3] : NULL);
}

/* x, weight, dy, dx, dweight[, dbias]; with relu, dx is 0 where x is not > 0 */
static void reference_linear_backward(const op_case *c, double *const *t)
{
    const tdm_linear_shape *s = &c->p.layer.linear;
    linear_input_gradient(s, t[1], t[2], t[3]);
    for (size_t j = 0; s->relu && j < s->batch * s->in_features * linear_pool(s); j++)
        t[3][j] = t[0][j] > 0.0 ? t[3][j] : 0.0;
    linear_weight_gradient(&c->p.layer.linear, t[0], t[2], t[4], c->tensor_count > 5 ? t[5] : NULL);
}

/* ---------- batchnorm2d ---------- */

static const size_t norm_shapes[][3] = {
    /* batch, channels, spatial */
    {1, 1, 16},   {3, 1, 5}, {2, 3, 7}, {16, 4, 4},   {128, 1, 16},
    {7, 64, 4},   {2, 5, 1}, {1, 3, 2}, {32, 20, 64}, /* threaded on the cpu backend, a partial
                                                         block of channels */
    {64, 2, 100}, /* 6400 values a channel: OpenCL's two-launch way (fewer: one launch) */
    {5, 3, 37},   /* a small batch: OpenCL cuts each sample's values, unevenly */
};
enum { NORM_SHAPE_COUNT = sizeof norm_shapes / sizeof norm_shapes[0] };

/* NORM_ADD_*: the forwards with a residual added before the ReLU. */
typedef enum norm_mode {
    NORM_TRAIN,
    NORM_EVAL,
    NORM_BACKWARD,
    NORM_ADD_TRAIN,
    NORM_ADD_EVAL
} norm_mode;

static size_t make_norm_cases(op_case *cases, size_t capacity, int mode)
{
    size_t count = 0;
    for (size_t i = 0; i < NORM_SHAPE_COUNT && count < capacity; i++) {
        op_case *c = new_case(cases, &count);
        tdm_batchnorm_shape *s = &c->p.layer.norm;
        *s = (tdm_batchnorm_shape){
            norm_shapes[i][0],    norm_shapes[i][1], norm_shapes[i][2], i == 2 ? 1e-3f : 1e-5f,
            i == 2 ? 0.3f : 0.1f, .relu = i % 2 == 1}; /* the fused ReLU on every other shape */
        size_t n = s->batch * s->channels * s->spatial, ch = s->channels;
        if (mode == NORM_BACKWARD) {
            add_tensor(c, "x", n, false, INIT_RANDOM);
            add_tensor(c, "dy", n, false, INIT_RANDOM);
            add_tensor(c, "gamma", ch, false, INIT_RANDOM);
            add_tensor(c, "save_mean", ch, false, INIT_RANDOM);
            add_tensor(c, "save_invstd", ch, false, INIT_POSITIVE);
            add_tensor(c, "dx", n, true, INIT_NAN);
            add_tensor(c, "dgamma", ch, true, INIT_RANDOM);
            add_tensor(c, "dbeta", ch, true, INIT_RANDOM);
            /* the forward's output, a mask about half on; never read without relu */
            add_tensor(c, "y", n, false, s->relu ? INIT_RANDOM : INIT_NAN);
        } else {
            bool train = mode == NORM_TRAIN || mode == NORM_ADD_TRAIN;
            add_tensor(c, "x", n, false, INIT_RANDOM);
            add_tensor(c, "gamma", ch, false, INIT_RANDOM);
            add_tensor(c, "beta", ch, false, INIT_RANDOM);
            add_tensor(c, "running_mean", ch, train, INIT_RANDOM);
            add_tensor(c, "running_var", ch, train, INIT_POSITIVE);
            add_tensor(c, "y", n, true, INIT_NAN);
            if (train) {
                add_tensor(c, "save_mean", ch, true, INIT_NAN);
                add_tensor(c, "save_invstd", ch, true, INIT_NAN);
            }
            c->p.layer.residual = mode == NORM_ADD_TRAIN || mode == NORM_ADD_EVAL;
            if (c->p.layer.residual)
                add_tensor(c, "residual", n, false, INIT_RANDOM);
        }
        snprintf(c->label, sizeof c->label, "N=%zu C=%zu spatial=%zu eps=%g momentum=%g%s",
                 s->batch, s->channels, s->spatial, (double)s->eps, (double)s->momentum,
                 s->relu ? " relu" : "");
    }
    return count;
}

static tdm_status run_norm_train(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_batchnorm_forward_train(backend, &c->p.layer.norm, v[0], v[1], v[2], v[3], v[4],
                                       v[6], v[7], v[5]);
}

static tdm_status run_norm_eval(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_batchnorm_forward_eval(backend, &c->p.layer.norm, v[0], v[1], v[2], v[3], v[4],
                                      v[5]);
}

static tdm_status run_norm_add_train(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_batchnorm_add_forward_train(backend, &c->p.layer.norm, v[0], v[8], v[1], v[2], v[3],
                                           v[4], v[6], v[7], v[5]);
}

static tdm_status run_norm_add_eval(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_batchnorm_add_forward_eval(backend, &c->p.layer.norm, v[0], v[6], v[1], v[2], v[3],
                                          v[4], v[5]);
}

static tdm_status run_norm_backward(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_batchnorm_backward(backend, &c->p.layer.norm, v[0], v[1], v[8], v[2], v[3], v[4],
                                  v[5], v[6], v[7]);
}

static size_t norm_index(const tdm_batchnorm_shape *s, size_t c, size_t k)
{
    return ((k / s->spatial) * s->channels + c) * s->spatial + k % s->spatial;
}

/* y = (x - mean) * invstd * gamma + beta (+ residual where given), then the ReLU. */
static void normalize_reference(const tdm_batchnorm_shape *s, size_t c, const double *x,
                                const double *residual, double mean, double invstd, double gamma,
                                double beta, double *y)
{
    for (size_t k = 0; k < s->batch * s->spatial; k++) {
        size_t i = norm_index(s, c, k);
        double value = (x[i] - mean) * invstd * gamma + beta + (residual ? residual[i] : 0.0);
        y[i] = s->relu && value < 0.0 ? 0.0 : value;
    }
}

/* The tensor a case adds before the ReLU, or NULL. */
static const double *residual_of(const op_case *c, double *const *t)
{
    return c->p.layer.residual ? t[c->tensor_count - 1] : NULL;
}

static void reference_norm_train(const op_case *c, double *const *t)
{
    const tdm_batchnorm_shape *s = &c->p.layer.norm;
    double m = s->momentum, count = (double)(s->batch * s->spatial);
    for (size_t ch = 0; ch < s->channels; ch++) {
        double sum = 0.0, squares = 0.0;
        for (size_t k = 0; k < s->batch * s->spatial; k++)
            sum += t[0][norm_index(s, ch, k)];
        double mean = sum / count;
        for (size_t k = 0; k < s->batch * s->spatial; k++)
            squares += pow(t[0][norm_index(s, ch, k)] - mean, 2);
        double var = squares / count, invstd = 1.0 / sqrt(var + s->eps);
        t[3][ch] = (1.0 - m) * t[3][ch] + m * mean;
        t[4][ch] = (1.0 - m) * t[4][ch] + m * squares / (count - 1.0);
        t[6][ch] = mean;
        t[7][ch] = invstd;
        normalize_reference(s, ch, t[0], residual_of(c, t), mean, invstd, t[1][ch], t[2][ch], t[5]);
    }
}

static void reference_norm_eval(const op_case *c, double *const *t)
{
    const tdm_batchnorm_shape *s = &c->p.layer.norm;
    for (size_t ch = 0; ch < s->channels; ch++)
        normalize_reference(s, ch, t[0], residual_of(c, t), t[3][ch], 1.0 / sqrt(t[4][ch] + s->eps),
                            t[1][ch], t[2][ch], t[5]);
}

/* The gradient of y = (x - mean) * invstd * gamma + beta when mean and
 * invstd are the batch statistics of x (they are given here, as saved). */
/* dy, or 0 with the fused ReLU where its output y (t[8]) is not > 0 */
static double norm_dy(const tdm_batchnorm_shape *s, double *const *t, size_t i)
{
    return s->relu && !(t[8][i] > 0.0) ? 0.0 : t[1][i];
}

static void reference_norm_backward(const op_case *c, double *const *t)
{
    const tdm_batchnorm_shape *s = &c->p.layer.norm;
    double count = (double)(s->batch * s->spatial);
    for (size_t ch = 0; ch < s->channels; ch++) {
        double mean = t[3][ch], invstd = t[4][ch], sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (size_t k = 0; k < s->batch * s->spatial; k++) {
            size_t i = norm_index(s, ch, k);
            sum_dy += norm_dy(s, t, i);
            sum_dy_xhat += norm_dy(s, t, i) * (t[0][i] - mean) * invstd;
        }
        for (size_t k = 0; k < s->batch * s->spatial; k++) {
            size_t i = norm_index(s, ch, k);
            double xhat = (t[0][i] - mean) * invstd;
            t[5][i] = t[2][ch] * invstd *
                      (norm_dy(s, t, i) - sum_dy / count - xhat * sum_dy_xhat / count);
        }
        t[6][ch] += sum_dy_xhat;
        t[7][ch] += sum_dy;
    }
}

/* ---------- max-pool and global average pool ---------- */

static const tdm_pool2d_shape pool_shapes[] = {
    /* batch, channels, H, W, KH, KW, SH, SW */
    {1, 1, 4, 4, 2, 2, 2, 2},
    {2, 3, 5, 7, 2, 2, 2, 2}, /* floor mode drops a row */
    {1, 2, 6, 6, 3, 3, 2, 2}, /* overlapping windows */
    {2, 64, 4, 4, 2, 2, 2, 2},
    {1, 20, 24, 24, 2, 2, 2, 2}, /* LeNet */
    {3, 1, 5, 5, 3, 3, 1, 1},
    {2, 2, 7, 5, 3, 2, 2, 1},
    /* threaded on the cpu backend: */
    {32, 16, 8, 8, 2, 2, 2, 2},
    {16, 8, 16, 16, 3, 3, 2, 2},
};
enum { POOL_SHAPE_COUNT = sizeof pool_shapes / sizeof pool_shapes[0] };

static size_t make_pool_cases(op_case *cases, size_t capacity, int backward)
{
    size_t count = 0;
    for (size_t i = 0; i < POOL_SHAPE_COUNT && count < capacity; i++) {
        const tdm_pool2d_shape *s = &pool_shapes[i];
        op_case *c = new_case(cases, &count);
        c->p.layer.pool = *s;
        size_t nx = s->batch * s->channels * s->in_height * s->in_width;
        size_t ny = s->batch * s->channels * tdm_pool2d_out_height(s) * tdm_pool2d_out_width(s);
        add_tensor(c, "x", nx, false, INIT_RANDOM);
        add_tensor(c, "y", ny, true, INIT_NAN);
        add_tensor(c, "argmax", ny, true, INIT_INDEX);
        if (backward) {
            add_tensor(c, "dy", ny, false, INIT_RANDOM);
            add_tensor(c, "dx", nx, true, INIT_NAN);
        }
        snprintf(c->label, sizeof c->label, "N=%zu C=%zu %zux%zu k=%zux%zu s=%zux%zu", s->batch,
                 s->channels, s->in_height, s->in_width, s->kernel_h, s->kernel_w, s->stride_h,
                 s->stride_w);
    }
    return count;
}

static tdm_status run_maxpool(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_maxpool2d_forward(backend, &c->p.layer.pool, v[0], v[1], v[2]);
}

/* The backward pass needs the forward's argmax: the case runs both. */
static tdm_status run_maxpool_backward(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    tdm_status status = tdm_maxpool2d_forward(backend, &c->p.layer.pool, v[0], v[1], v[2]);
    if (status != TDM_OK)
        return status;
    return tdm_maxpool2d_backward(backend, &c->p.layer.pool, v[2], v[3], v[4]);
}

/* y and argmax of the pool of x. */
static void maxpool_reference(const tdm_pool2d_shape *s, const double *x, double *y, double *argmax)
{
    size_t oh_count = tdm_pool2d_out_height(s), ow_count = tdm_pool2d_out_width(s);
    size_t out = 0;
    for (size_t p = 0; p < s->batch * s->channels; p++)
        for (size_t oh = 0; oh < oh_count; oh++)
            for (size_t ow = 0; ow < ow_count; ow++, out++) {
                double best = -INFINITY;
                size_t best_index = 0;
                for (size_t i = 0; i < s->kernel_h; i++)
                    for (size_t j = 0; j < s->kernel_w; j++) {
                        size_t index = (oh * s->stride_h + i) * s->in_width + ow * s->stride_w + j;
                        double value = x[p * s->in_height * s->in_width + index];
                        if (value > best) {
                            best = value;
                            best_index = index;
                        }
                    }
                y[out] = best;
                argmax[out] = (double)best_index;
            }
}

/* dx = dy routed to each window's argmax (summed where windows overlap). */
static void maxpool_backward_reference(const tdm_pool2d_shape *s, const double *argmax,
                                       const double *dy, double *dx)
{
    size_t plane_out = tdm_pool2d_out_height(s) * tdm_pool2d_out_width(s);
    size_t plane_in = s->in_height * s->in_width;
    memset(dx, 0, s->batch * s->channels * plane_in * sizeof(double));
    for (size_t i = 0; i < s->batch * s->channels * plane_out; i++)
        dx[(i / plane_out) * plane_in + (size_t)argmax[i]] += dy[i];
}

static void reference_maxpool(const op_case *c, double *const *t)
{
    maxpool_reference(&c->p.layer.pool, t[0], t[1], t[2]);
}

static void reference_maxpool_backward(const op_case *c, double *const *t)
{
    reference_maxpool(c, t);
    maxpool_backward_reference(&c->p.layer.pool, t[2], t[3], t[4]);
}

/* ---------- a batch norm with the max-pool that reads it ----------
 * The training forward's cases have x on a grid and gamma positive, no
 * ReLU: y keeps x's order with gaps far above any rounding, so that the
 * argmax is the same on every backend (a near tie could go either way
 * otherwise). The backward takes its argmax from a pool of an input y. */

static const size_t norm_pool_shapes[][4] = {
    /* batch, channels, height, width; 2x2 windows at stride 2 */
    {5, 3, 4, 4}, /* ResNet's stem */
    {3, 2, 5, 7}, /* floor mode drops a row and a column */
    {128, 2, 4, 4},
    {8, 2, 20, 20}, /* 3200 values a channel: OpenCL's two-launch way on a GPU */
};
enum { NORM_POOL_SHAPE_COUNT = sizeof norm_pool_shapes / sizeof norm_pool_shapes[0] };

static size_t make_norm_pool_cases(op_case *cases, size_t capacity, int mode)
{
    size_t count = 0;
    for (size_t i = 0; i < NORM_POOL_SHAPE_COUNT && count < capacity; i++) {
        op_case *c = new_case(cases, &count);
        const size_t *shape = norm_pool_shapes[i];
        size_t n = shape[0], ch = shape[1], h = shape[2], w = shape[3];
        tdm_batchnorm_shape *s = &c->p.layer.norm;
        *s = (tdm_batchnorm_shape){n,     ch,   h * w,
                                   1e-5f, 0.1f, .relu = mode == NORM_BACKWARD && i % 2};
        c->p.layer.pool = (tdm_pool2d_shape){n, ch, h, w, 2, 2, 2, 2};
        size_t nx = n * ch * h * w, ny = n * ch * (h / 2) * (w / 2);
        if (mode == NORM_BACKWARD) { /* the first nine as batchnorm_backward's */
            add_tensor(c, "x", nx, false, INIT_RANDOM);
            add_tensor(c, "dy", nx, true, INIT_NAN);
            add_tensor(c, "gamma", ch, false, INIT_RANDOM);
            add_tensor(c, "save_mean", ch, false, INIT_RANDOM);
            add_tensor(c, "save_invstd", ch, false, INIT_POSITIVE);
            add_tensor(c, "dx", nx, true, INIT_NAN);
            add_tensor(c, "dgamma", ch, true, INIT_RANDOM);
            add_tensor(c, "dbeta", ch, true, INIT_RANDOM);
            add_tensor(c, "y", nx, false, INIT_RANDOM);
            add_tensor(c, "pooled", ny, true, INIT_NAN);
            add_tensor(c, "argmax", ny, true, INIT_INDEX);
            add_tensor(c, "pooled_dy", ny, false, INIT_RANDOM);
        } else { /* the first eight as batchnorm_forward_train's */
            add_tensor(c, "x", nx, false, INIT_GRID);
            add_tensor(c, "gamma", ch, false, INIT_POSITIVE);
            add_tensor(c, "beta", ch, false, INIT_RANDOM);
            add_tensor(c, "running_mean", ch, true, INIT_RANDOM);
            add_tensor(c, "running_var", ch, true, INIT_POSITIVE);
            add_tensor(c, "y", nx, true, INIT_NAN);
            add_tensor(c, "save_mean", ch, true, INIT_NAN);
            add_tensor(c, "save_invstd", ch, true, INIT_NAN);
            add_tensor(c, "pooled", ny, true, INIT_NAN);
            add_tensor(c, "argmax", ny, true, INIT_INDEX);
        }
        snprintf(c->label, sizeof c->label, "N=%zu C=%zu %zux%zu%s", n, ch, h, w,
                 s->relu ? " relu" : "");
    }
    return count;
}

static tdm_status run_norm_pool_train(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_batchnorm_pool_forward_train(backend, &c->p.layer.norm, &c->p.layer.pool, v[0], v[1],
                                            v[2], v[3], v[4], v[6], v[7], v[5], v[8], v[9]);
}

/* The argmax from a pool of y first (the same on every backend). */
static tdm_status run_norm_pool_backward(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    tdm_status status = tdm_maxpool2d_forward(backend, &c->p.layer.pool, v[8], v[9], v[10]);
    if (status != TDM_OK)
        return status;
    return tdm_batchnorm_pool_backward(backend, &c->p.layer.norm, &c->p.layer.pool, v[0], v[11],
                                       v[10], v[8], v[2], v[3], v[4], v[1], v[5], v[6], v[7]);
}

static void reference_norm_pool_train(const op_case *c, double *const *t)
{
    reference_norm_train(c, t);
    maxpool_reference(&c->p.layer.pool, t[5], t[8], t[9]);
}

static void reference_norm_pool_backward(const op_case *c, double *const *t)
{
    maxpool_reference(&c->p.layer.pool, t[8], t[9], t[10]);
    maxpool_backward_reference(&c->p.layer.pool, t[10], t[11], t[1]);
    reference_norm_backward(c, t);
}

static const size_t avgpool_shapes[][2] = {{1, 1},  {3, 16},  {512, 4}, {5, 7},
                                           {64, 1}, {2, 576}, {8192, 4}};
enum { AVGPOOL_SHAPE_COUNT = sizeof avgpool_shapes / sizeof avgpool_shapes[0] };

static size_t make_avgpool_cases(op_case *cases, size_t capacity, int backward)
{
    size_t count = 0;
    for (size_t i = 0; i < AVGPOOL_SHAPE_COUNT && count < capacity; i++) {
        op_case *c = new_case(cases, &count);
        size_t planes = avgpool_shapes[i][0], spatial = avgpool_shapes[i][1];
        c->p.layer.planes = planes;
        c->p.layer.spatial = spatial;
        add_tensor(c, backward ? "dy" : "x", backward ? planes : planes * spatial, false,
                   INIT_RANDOM);
        add_tensor(c, backward ? "dx" : "y", backward ? planes * spatial : planes, true, INIT_NAN);
        snprintf(c->label, sizeof c->label, "planes=%zu spatial=%zu", planes, spatial);
    }
    return count;
}

static tdm_status run_avgpool(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_global_avgpool_forward(backend, c->p.layer.planes, c->p.layer.spatial, v[0], v[1]);
}

static tdm_status run_avgpool_backward(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_global_avgpool_backward(backend, c->p.layer.planes, c->p.layer.spatial, v[0], v[1]);
}

static void reference_avgpool(const op_case *c, double *const *t)
{
    size_t spatial = c->p.layer.spatial;
    for (size_t p = 0; p < c->p.layer.planes; p++) {
        t[1][p] = 0.0;
        for (size_t i = 0; i < spatial; i++)
            t[1][p] += t[0][p * spatial + i] / (double)spatial;
    }
}

static void reference_avgpool_backward(const op_case *c, double *const *t)
{
    size_t spatial = c->p.layer.spatial;
    for (size_t i = 0; i < c->p.layer.planes * spatial; i++)
        t[1][i] = t[0][i / spatial] / (double)spatial;
}

/* ---------- softmax cross-entropy ---------- */

static const size_t loss_shapes[][2] = {{1, 10}, {16, 10}, {128, 10}, {3, 1},
                                        {5, 2},  {81, 10}, {2048, 10}};
enum { LOSS_SHAPE_COUNT = sizeof loss_shapes / sizeof loss_shapes[0] };

static size_t make_loss_cases(op_case *cases, size_t capacity, int variant)
{
    (void)variant;
    size_t count = 0;
    for (size_t i = 0; i < LOSS_SHAPE_COUNT && count < capacity; i++) {
        op_case *c = new_case(cases, &count);
        size_t batch = loss_shapes[i][0], classes = loss_shapes[i][1];
        c->p.layer.loss = (tdm_cross_entropy_shape){batch, classes};
        add_tensor(c, "logits", batch * classes, false, INIT_RANDOM);
        add_tensor(c, "labels", batch, false, INIT_LABELS)->int_range = classes;
        add_tensor(c, "losses", batch, true, INIT_NAN);
        add_tensor(c, "wrong", batch, true, INIT_NAN);
        add_tensor(c, "dlogits", batch * classes, true, INIT_NAN);
        snprintf(c->label, sizeof c->label, "N=%zu classes=%zu", batch, classes);
    }
    return count;
}

static tdm_status run_loss(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_softmax_cross_entropy(backend, &c->p.layer.loss, v[0], v[1], v[2], v[3], v[4]);
}

static void reference_loss(const op_case *c, double *const *t)
{
    size_t batch = c->p.layer.loss.batch, classes = c->p.layer.loss.classes;
    for (size_t n = 0; n < batch; n++) {
        const double *z = t[0] + n * classes;
        size_t label = (size_t)t[1][n], top = 0;
        for (size_t k = 0; k < classes; k++)
            top = z[k] > z[top] ? k : top;
        double sum = 0.0;
        for (size_t k = 0; k < classes; k++)
            sum += exp(z[k] - z[top]);
        double log_sum = z[top] + log(sum);
        t[2][n] = log_sum - z[label];
        t[3][n] = top == label ? 0.0 : 1.0;
        for (size_t k = 0; k < classes; k++)
            t[4][n * classes + k] =
                (exp(z[k] - log_sum) - (k == label ? 1.0 : 0.0)) / (double)batch;
    }
}

/* ---------- SGD ---------- */

/* variant 1: the step that then zeroes grad (tdm_sgd_step_zero_grad) */
static size_t make_sgd_cases(op_case *cases, size_t capacity, int variant)
{
    static const tdm_sgd_options options[] = {
        {0.1f, 0.0f, 0.0f, 0.0f, false},  {0.05f, 0.9f, 0.0f, 0.0f, false},
        {0.1f, 0.9f, 0.1f, 1e-4f, false}, {0.01f, 0.5f, 0.0f, 5e-4f, true},
        {0.2f, 0.0f, 0.0f, 1e-2f, false},
    };
    static const size_t sizes[] = {1, 17, 1000, 4099, 40000};
    size_t count = 0;
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        for (size_t first = 0; first < 2 && count < capacity; first++) {
            op_case *c = new_case(cases, &count);
            const tdm_sgd_options *o = &options[i];
            size_t n = sizes[(i + first) % 5];
            c->p.layer.sgd = *o;
            c->p.layer.first_step = first;
            c->p.layer.spatial = n;
            add_tensor(c, "weight", n, true, INIT_RANDOM);
            add_tensor(c, "grad", n, variant == 1, INIT_RANDOM);
            add_tensor(c, "velocity", n, o->momentum != 0.0f,
                       o->momentum != 0.0f ? INIT_RANDOM : INIT_NAN);
            snprintf(c->label, sizeof c->label,
                     "count=%zu lr=%g momentum=%g dampening=%g wd=%g%s%s", n, (double)o->lr,
                     (double)o->momentum, (double)o->dampening, (double)o->weight_decay,
                     o->nesterov ? " nesterov" : "", first ? " first step" : "");
        }
    return count;
}

static tdm_status run_sgd(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_sgd_step(backend, &c->p.layer.sgd, c->p.layer.first_step, c->p.layer.spatial, v[0],
                        v[1], v[2]);
}

static tdm_status run_sgd_zero_grad(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_sgd_step_zero_grad(backend, &c->p.layer.sgd, c->p.layer.first_step,
                                  c->p.layer.spatial, v[0], v[1], v[2]);
}

static void reference_sgd(const op_case *c, double *const *t)
{
    const tdm_sgd_options *o = &c->p.layer.sgd;
    for (size_t i = 0; i < c->p.layer.spatial; i++) {
        double d = t[1][i] + (double)o->weight_decay * t[0][i];
        if (o->momentum != 0.0f) {
            t[2][i] = c->p.layer.first_step
                          ? d
                          : o->momentum * t[2][i] + (1.0 - (double)o->dampening) * d;
            d = o->nesterov ? d + o->momentum * t[2][i] : t[2][i];
        }
        t[0][i] -= (double)o->lr * d;
    }
}

static void reference_sgd_zero_grad(const op_case *c, double *const *t)
{
    reference_sgd(c, t);
    memset(t[1], 0, c->p.layer.spatial * sizeof(double));
}

/* ---------- softmax over rows (the E step of EM) ---------- */

/* rows, cols: the OpenCL kernel's vectors of eight whole (8, 16), with a
 * rest (10, 20, 50) and none (1, 3) */
static const size_t softmax_shapes[][2] = {{1, 1},  {3, 10},    {1000, 20}, {17, 3}, {64, 1},
                                           {5, 50}, {2000, 20}, {4, 8},     {6, 16}};
enum { SOFTMAX_SHAPE_COUNT = sizeof softmax_shapes / sizeof softmax_shapes[0] };

static size_t make_softmax_cases(op_case *cases, size_t capacity, int variant)
{
    (void)variant;
    size_t count = 0;
    for (size_t i = 0; i < SOFTMAX_SHAPE_COUNT && count < capacity; i++) {
        op_case *c = new_case(cases, &count);
        size_t rows = softmax_shapes[i][0], cols = softmax_shapes[i][1];
        c->p.layer.loss = (tdm_cross_entropy_shape){rows, cols};
        add_tensor(c, "x", rows * cols, true, INIT_RANDOM);
        add_tensor(c, "lse", rows, true, INIT_NAN);
        snprintf(c->label, sizeof c->label, "rows=%zu cols=%zu", rows, cols);
    }
    return count;
}

static tdm_status run_softmax(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_softmax_rows(backend, c->p.layer.loss.batch, c->p.layer.loss.classes, v[0], v[1]);
}

static void reference_softmax(const op_case *c, double *const *t)
{
    size_t rows = c->p.layer.loss.batch, cols = c->p.layer.loss.classes;
    for (size_t r = 0; r < rows; r++) {
        double *row = t[0] + r * cols, sum = 0.0;
        for (size_t j = 0; j < cols; j++)
            sum += exp(row[j]);
        t[1][r] = log(sum);
        for (size_t j = 0; j < cols; j++)
            row[j] = exp(row[j] - t[1][r]);
    }
}

/* ---------- EM on bit-packed rows ---------- */

/* rows, cols, K: odd columns (not a multiple of 8 or 64), K = 1, 64 and 65
 * (the cpu backend's widest in registers and its first a float at a time),
 * K = 1 and 9 with rows past the ones the cpu backend reads as whole vectors
 * in place, the digits' and MNIST's widths, and sizes the cpu backend
 * threads. */
static const size_t bits_shapes[][3] = {
    {1, 1, 1},    {3, 4, 1},    {17, 13, 3},  {5, 64, 2},     {7, 67, 5},    {33, 130, 64},
    {9, 200, 65}, {20, 100, 1}, {40, 520, 9}, {100, 784, 20}, {300, 64, 10}, {2000, 50, 20}};
enum { BITS_SHAPE_COUNT = sizeof bits_shapes / sizeof bits_shapes[0] };

static tdm_bits_shape bits_shape_of(const op_case *c)
{
    const tdm_linear_shape *l = &c->p.layer.linear; /* batch = rows, in = cols, out = K */
    return (tdm_bits_shape){l->batch, l->in_features, (l->in_features + 63) / 64, l->out_features};
}

static size_t make_bits_cases(op_case *cases, size_t capacity, int sums)
{
    size_t count = 0;
    for (size_t i = 0; i < BITS_SHAPE_COUNT && count < capacity; i++) {
        op_case *c = new_case(cases, &count);
        size_t rows = bits_shapes[i][0], cols = bits_shapes[i][1], k = bits_shapes[i][2];
        c->p.layer.linear = (tdm_linear_shape){rows, cols, k, 0, false};
        tdm_bits_shape s = bits_shape_of(c);
        add_tensor(c, "bits", 2 * rows * s.row_words, false, INIT_BITS);
        c->tensors[0].int_range = cols;
        if (sums) {
            add_tensor(c, "weights", rows * k, false, INIT_RANDOM);
            add_tensor(c, "sums", k * (cols + 1), true, INIT_NAN);
        } else {
            add_tensor(c, "table", tdm_bits_groups(&s) * TDM_BITS_PATTERNS * k, false, INIT_RANDOM);
            add_tensor(c, "bias", k, false, INIT_RANDOM);
            add_tensor(c, "scores", rows * k, true, INIT_NAN);
        }
        snprintf(c->label, sizeof c->label, "rows=%zu cols=%zu K=%zu", rows, cols, k);
    }
    return count;
}

static tdm_status run_bits_scores(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    tdm_bits_shape s = bits_shape_of(c);
    return tdm_bits_scores(backend, &s, v[0], v[1], v[2], v[3]);
}

static tdm_status run_bits_sums(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    tdm_bits_shape s = bits_shape_of(c);
    return tdm_bits_sums(backend, &s, v[0], v[1], v[2]);
}

static bool bit_of(const double *bits, const tdm_bits_shape *s, size_t row, size_t col)
{
    return bits_word(bits, row * s->row_words + col / 64) >> (col % 64) & 1u;
}

/* The lookup itself, term by term, in double. */
static void reference_bits_scores(const op_case *c, double *const *t)
{
    tdm_bits_shape s = bits_shape_of(c);
    size_t k_count = s.components;
    for (size_t r = 0; r < s.rows; r++)
        for (size_t k = 0; k < k_count; k++) {
            double sum = t[2][k];
            for (size_t g = 0; g < tdm_bits_groups(&s); g++) {
                unsigned pattern = 0;
                for (unsigned j = 0; j < TDM_BITS_GROUP; j++)
                    if (g * TDM_BITS_GROUP + j < s.cols &&
                        bit_of(t[0], &s, r, g * TDM_BITS_GROUP + j))
                        pattern |= 1u << j;
                sum += t[1][(g * TDM_BITS_PATTERNS + pattern) * k_count + k];
            }
            t[3][r * k_count + k] = sum;
        }
}

static void reference_bits_sums(const op_case *c, double *const *t)
{
    tdm_bits_shape s = bits_shape_of(c);
    for (size_t k = 0; k < s.components; k++)
        for (size_t col = 0; col < s.cols; col++) {
            double sum = 0.0;
            for (size_t r = 0; r < s.rows; r++)
                sum += bit_of(t[0], &s, r, col) ? t[1][r * s.components + k] : 0.0;
            t[2][k * s.cols + col] = sum;
        }
    for (size_t k = 0; k < s.components; k++) {
        double total = 0.0;
        for (size_t r = 0; r < s.rows; r++)
            total += t[1][r * s.components + k];
        t[2][s.components * s.cols + k] = total;
    }
}

/* ---------- the table ---------- */

const parity_op parity_layer_ops[] = {
    /* conv2d and linear are GEMMs of up to 576-term dot products plus exact
     * data movement: the SGEMM tolerance (see test_parity.c) holds. */
    {"conv2d_forward", TDM_OP_IM2COL, 1e-10, 1e-4, make_conv_cases, CONV_FORWARD, run_conv_forward,
     reference_conv_forward, true, false},
    {"conv2d_backward_input", TDM_OP_COL2IM, 1e-10, 1e-4, make_conv_cases, CONV_BACKWARD_INPUT,
     run_conv_backward_input, reference_conv_backward_input, true, false},
    {"conv2d_backward_weight", TDM_OP_IM2COL, 1e-10, 1e-4, make_conv_cases, CONV_BACKWARD_WEIGHT,
     run_conv_backward_weight, reference_conv_backward_weight, true, false},
    /* Sums in order of at most Cin*KH*KW products (576 for Block(64)) and
     * Cout*KH*KW for the input gradient: the GEMM's bound holds. */
    {"conv2d_forward_direct", TDM_OP_CONV_DIRECT_FORWARD, 1e-10, 1e-4, make_conv_cases,
     CONV_FORWARD | FEW_TAPS | SMALL_IMAGES, run_conv_forward_direct, reference_conv_forward, false,
     false},
    {"conv2d_backward", TDM_OP_IM2COL, 1e-10, 1e-4, make_conv_cases, CONV_BACKWARD_ALL,
     run_conv_backward_all, reference_conv_backward_all, true, false},
    {"conv2d_backward_input_direct", TDM_OP_CONV_DIRECT_BACKWARD, 1e-10, 1e-4, make_conv_cases,
     CONV_BACKWARD_INPUT | SMALL_IMAGES, run_conv_backward_input_direct,
     reference_conv_backward_input, false, false},
    /* Sums of at most N*OH*OW products in order (here 128 * 16 = 2048; past
     * 2^16 positions the col's GEMM runs, the 66 x 66 shape). */
    {"conv2d_backward_weight_direct", TDM_OP_CONV_DIRECT_BACKWARD, 1e-10, 1e-4, make_conv_cases,
     CONV_BACKWARD_WEIGHT | SMALL_IMAGES | FEW_TAPS, run_conv_backward_weight_direct,
     reference_conv_backward_weight, true, false},
    /* Both gradients in one launch: the bounds of the two entries above. */
    {"conv2d_backward_direct", TDM_OP_CONV_DIRECT_BACKWARD, 1e-10, 1e-4, make_conv_cases,
     CONV_BACKWARD_ALL | SMALL_IMAGES, run_conv_backward_all_direct, reference_conv_backward_all,
     false, false},
    {"conv2d_backward_accumulate_direct", TDM_OP_CONV_DIRECT_BACKWARD, 1e-10, 1e-4, make_conv_cases,
     CONV_BACKWARD_ALL | SMALL_IMAGES | ACCUMULATE, run_conv_backward_accumulate_direct,
     reference_conv_backward_all, false, false},
    {"linear_forward_gemm", TDM_OP_BIAS_ADD, 1e-10, 1e-4, make_linear_cases,
     CONV_FORWARD | LINEAR_GEMM, run_linear_forward, reference_linear_forward, true, false},
    {"linear_backward_input_gemm", TDM_OP_SGEMM, 1e-10, 1e-4, make_linear_cases,
     CONV_BACKWARD_INPUT | LINEAR_GEMM, run_linear_backward_input, reference_linear_backward_input,
     true, false},
    {"linear_backward_weight_gemm", TDM_OP_BIAS_BACKWARD, 1e-10, 1e-4, make_linear_cases,
     CONV_BACKWARD_WEIGHT | LINEAR_GEMM, run_linear_backward_weight,
     reference_linear_backward_weight, true, false},
    {"linear_backward_gemm", TDM_OP_SGEMM, 1e-10, 1e-4, make_linear_cases,
     LINEAR_BACKWARD_ALL | LINEAR_GEMM, run_linear_backward, reference_linear_backward, true,
     false},
    /* Layers of few weights: float sums in order of up to 4096 products
     * (the 4096-input layer): typically sqrt(4096) * 2^-24 ~ 4e-6 relative,
     * inside the GEMM tolerance. */
    {"linear_forward", TDM_OP_SMALL_LINEAR, 1e-10, 1e-4, make_linear_cases, CONV_FORWARD,
     run_linear_forward, reference_linear_forward, false, false},
    {"linear_backward_input", TDM_OP_SMALL_LINEAR_BACKWARD, 1e-10, 1e-4, make_linear_cases,
     CONV_BACKWARD_INPUT, run_linear_backward_input, reference_linear_backward_input, false, false},
    {"linear_backward_weight", TDM_OP_SMALL_LINEAR_BACKWARD, 1e-10, 1e-4, make_linear_cases,
     CONV_BACKWARD_WEIGHT, run_linear_backward_weight, reference_linear_backward_weight, false,
     false},
    {"linear_backward", TDM_OP_SMALL_LINEAR_BACKWARD, 1e-10, 1e-4, make_linear_cases,
     LINEAR_BACKWARD_ALL, run_linear_backward, reference_linear_backward, false, false},
    /* Batch statistics are float sums of up to 2048 values: on OpenCL as 64
     * strided partial sums and a fixed tree, about 40 roundings deep, so
     * ~40 * 2^-24 = 2.4e-6 relative at worst; 1e-4 leaves room for the
     * cancellation in x - mean. */
    {"batchnorm_forward_train", TDM_OP_BATCHNORM_FORWARD, 1e-10, 1e-4, make_norm_cases, NORM_TRAIN,
     run_norm_train, reference_norm_train, false, true},
    /* Four float operations per element plus one sqrt and division. */
    {"batchnorm_forward_eval", TDM_OP_BATCHNORM_FORWARD, 1e-12, 1e-5, make_norm_cases, NORM_EVAL,
     run_norm_eval, reference_norm_eval, false, true},
    {"batchnorm_backward", TDM_OP_BATCHNORM_BACKWARD, 1e-10, 1e-4, make_norm_cases, NORM_BACKWARD,
     run_norm_backward, reference_norm_backward, false, true},
    /* The same bounds: the residual adds one rounding. */
    {"batchnorm_add_forward_train", TDM_OP_BATCHNORM_FORWARD, 1e-10, 1e-4, make_norm_cases,
     NORM_ADD_TRAIN, run_norm_add_train, reference_norm_train, false, true},
    {"batchnorm_add_forward_eval", TDM_OP_BATCHNORM_FORWARD, 1e-12, 1e-5, make_norm_cases,
     NORM_ADD_EVAL, run_norm_add_eval, reference_norm_eval, false, true},
    /* Max-pool selects one input: exact, argmax included. Its backward adds
     * at most (k/s)^2 values in a fixed order: a few roundings. */
    /* The batch norm's bounds; the pool selects and routes exactly. */
    {"batchnorm_pool_forward_train", TDM_OP_BATCHNORM_FORWARD, 1e-10, 1e-4, make_norm_pool_cases,
     NORM_TRAIN, run_norm_pool_train, reference_norm_pool_train, false, true},
    {"batchnorm_pool_backward", TDM_OP_BATCHNORM_BACKWARD, 1e-10, 1e-4, make_norm_pool_cases,
     NORM_BACKWARD, run_norm_pool_backward, reference_norm_pool_backward, false, true},
    {"maxpool2d_forward", TDM_OP_MAXPOOL2D, 0.0, 0.0, make_pool_cases, 0, run_maxpool,
     reference_maxpool, false, false},
    {"maxpool2d_backward", TDM_OP_MAXPOOL2D_BACKWARD, 1e-12, 1e-6, make_pool_cases, 1,
     run_maxpool_backward, reference_maxpool_backward, false, false},
    /* A float sum of up to 576 values, one division: 576 * 2^-24 ~ 3.4e-5
     * worst case, far less in practice. */
    {"global_avgpool_forward", TDM_OP_GLOBAL_AVGPOOL, 1e-12, 4e-5, make_avgpool_cases, 0,
     run_avgpool, reference_avgpool, false, true},
    {"global_avgpool_backward", TDM_OP_GLOBAL_AVGPOOL_BACKWARD, 1e-12, 1e-6, make_avgpool_cases, 1,
     run_avgpool_backward, reference_avgpool_backward, false, false},
    /* exp and log: 3 ulp each in OpenCL, over 10 classes, then a difference
     * of O(1) values: ~1e-6 relative to the loss. */
    {"softmax_cross_entropy", TDM_OP_SOFTMAX_CROSS_ENTROPY, 1e-10, 1e-5, make_loss_cases, 0,
     run_loss, reference_loss, false, false},
    /* At most five float operations per element; FMA contraction may differ. */
    /* exp and log in float on OpenCL (3 ulp each) over up to 50 columns. */
    {"softmax_rows", TDM_OP_SOFTMAX_ROWS, 1e-10, 1e-5, make_softmax_cases, 0, run_softmax,
     reference_softmax, false, false},
    {"sgd_step", TDM_OP_SGD, 1e-12, 1e-6, make_sgd_cases, 0, run_sgd, reference_sgd, false, true},
    {"sgd_step_zero_grad", TDM_OP_SGD, 1e-12, 1e-6, make_sgd_cases, 1, run_sgd_zero_grad,
     reference_sgd_zero_grad, false, true},
    /* Float sums of up to 98 table entries (scores) or 2000 weights (sums)
     * of values in [-1, 1], in a fixed order per backend: like SGEMM's dot
     * products, ~1e-6 typical, 1e-4 of the result's RMS allowed. */
    {"bits_scores", TDM_OP_BITS_SCORES, 1e-10, 1e-4, make_bits_cases, 0, run_bits_scores,
     reference_bits_scores, false, false},
    {"bits_sums", TDM_OP_BITS_SUMS, 1e-10, 1e-4, make_bits_cases, 1, run_bits_sums,
     reference_bits_sums, false, false},
};
const size_t parity_layer_op_count = sizeof parity_layer_ops / sizeof parity_layer_ops[0];

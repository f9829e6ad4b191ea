/* Finite-difference checks of every backward op, on every backend.
 *
 * For an op with output y = f(inputs) and a fixed random r, the scalar
 * L = sum(r * y) has dL/dinput = backward(dy = r). The backend's backward
 * (float32) is compared with central differences of L computed in double
 * from the definition of the forward pass (independent of the backward code
 * and of the parity harness's backward references).
 *
 * Tolerance: the central difference with h = 1e-3 in double has truncation
 * error ~h^2 |f'''| / 6 ~ 1e-7 relative, the float32 backward ~1e-7 (both
 * measured: at most 2e-7); we require
 * max |analytic - numeric| / max(|numeric|, rms(numeric)) <= 1e-5, while a
 * wrong gradient (a dropped term, a factor of 2) is off by 1e-2 or more.
 * Kinks (relu at 0, a max-pool window whose top two values are within h)
 * are found without knowing the op: where the differences with h and h/2
 * disagree by more than the tolerance the point is skipped, and at most 5%
 * of the points of a case may be skipped, or one (batch norm's 3 betas
 * with the fused ReLU meet one at some seeds: TANDEM_TEST_SEED=12). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.h"
#include "parity.h"

enum { MAX_INPUTS = 3 };
static const double step = 1e-3, tolerance = 1e-5, max_skipped_fraction = 0.05;

typedef struct fd_case fd_case;

struct fd_case {
    const char *name;
    size_t input_count;
    const char *input_names[MAX_INPUTS];
    size_t input_sizes[MAX_INPUTS];
    size_t output_size;
    /* y = f(inputs), in double, from the definition. */
    void (*forward)(const fd_case *c, double *const *inputs, double *y);
    /* The gradients of sum(dy * y) with respect to every input, by the
     * backend's ops (forward first where the backward needs saved values). */
    tdm_status (*backward)(tdm_backend *backend, const fd_case *c, const tdm_view *inputs,
                           tdm_view dy, const tdm_view *grads);
    tdm_conv2d_shape conv;
    tdm_pool2d_shape pool;
    tdm_batchnorm_shape norm;
    size_t count, classes;
};

/* ---------- forwards in double ---------- */

static void forward_conv(const fd_case *c, double *const *in, double *y)
{
    size_t spatial = tdm_conv2d_out_height(&c->conv) * tdm_conv2d_out_width(&c->conv);
    for (size_t i = 0; i < c->output_size; i++)
        y[i] = in[2][(i / spatial) % c->conv.out_channels];
    parity_conv_reference(&c->conv, in[0], in[1], NULL, y, NULL, NULL);
}

static void forward_norm(const fd_case *c, double *const *in, double *y)
{
    const tdm_batchnorm_shape *s = &c->norm;
    size_t m = s->batch * s->spatial;
    for (size_t ch = 0; ch < s->channels; ch++) {
        double sum = 0.0, squares = 0.0;
        for (size_t k = 0; k < m; k++)
            sum += in[0][((k / s->spatial) * s->channels + ch) * s->spatial + k % s->spatial];
        double mean = sum / (double)m;
        for (size_t k = 0; k < m; k++)
            squares += pow(
                in[0][((k / s->spatial) * s->channels + ch) * s->spatial + k % s->spatial] - mean,
                2);
        double invstd = 1.0 / sqrt(squares / (double)m + s->eps);
        for (size_t k = 0; k < m; k++) {
            size_t i = ((k / s->spatial) * s->channels + ch) * s->spatial + k % s->spatial;
            y[i] = (in[0][i] - mean) * invstd * in[1][ch] + in[2][ch];
            y[i] = s->relu && y[i] < 0.0 ? 0.0 : y[i];
        }
    }
}

static void forward_relu(const fd_case *c, double *const *in, double *y)
{
    for (size_t i = 0; i < c->count; i++)
        y[i] = in[0][i] > 0.0 ? in[0][i] : 0.0;
}

/* A slope other than PyTorch's default, so that a slope ignored shows. */
static const float LEAKY_SLOPE = 0.2f;

static void forward_leaky_relu(const fd_case *c, double *const *in, double *y)
{
    for (size_t i = 0; i < c->count; i++)
        y[i] = in[0][i] > 0.0 ? in[0][i] : LEAKY_SLOPE * in[0][i];
}

static void forward_sigmoid(const fd_case *c, double *const *in, double *y)
{
    for (size_t i = 0; i < c->count; i++)
        y[i] = 1.0 / (1.0 + exp(-in[0][i]));
}

static void forward_add(const fd_case *c, double *const *in, double *y)
{
    for (size_t i = 0; i < c->count; i++)
        y[i] = in[0][i] + in[1][i];
}

static void forward_maxpool(const fd_case *c, double *const *in, double *y)
{
    const tdm_pool2d_shape *s = &c->pool;
    size_t oh_count = tdm_pool2d_out_height(s), ow_count = tdm_pool2d_out_width(s), out = 0;
    for (size_t p = 0; p < s->batch * s->channels; p++)
        for (size_t oh = 0; oh < oh_count; oh++)
            for (size_t ow = 0; ow < ow_count; ow++) {
                double best = -INFINITY;
                for (size_t i = 0; i < s->kernel_h; i++)
                    for (size_t j = 0; j < s->kernel_w; j++)
                        best = fmax(best,
                                    in[0][(p * s->in_height + oh * s->stride_h + i) * s->in_width +
                                          ow * s->stride_w + j]);
                y[out++] = best;
            }
}

static void forward_avgpool(const fd_case *c, double *const *in, double *y)
{
    size_t spatial = c->count / c->output_size;
    for (size_t p = 0; p < c->output_size; p++) {
        y[p] = 0.0;
        for (size_t i = 0; i < spatial; i++)
            y[p] += in[0][p * spatial + i] / (double)spatial;
    }
}

/* Per-sample losses; the labels are fixed: sample n has label n % classes. */
static void forward_cross_entropy(const fd_case *c, double *const *in, double *y)
{
    for (size_t n = 0; n < c->output_size; n++) {
        const double *z = in[0] + n * c->classes;
        double top = z[0], sum = 0.0;
        for (size_t k = 1; k < c->classes; k++)
            top = fmax(top, z[k]);
        for (size_t k = 0; k < c->classes; k++)
            sum += exp(z[k] - top);
        y[n] = top + log(sum) - z[n % c->classes];
    }
}

/* ---------- backwards through the backend ---------- */

static tdm_status backward_conv(tdm_backend *b, const fd_case *c, const tdm_view *in, tdm_view dy,
                                const tdm_view *g)
{
    tdm_status status = tdm_conv2d_backward_input(b, &c->conv, in[1], dy, g[0]);
    return status ? status : tdm_conv2d_backward_weight(b, &c->conv, in[0], dy, g[1], g[2]);
}

static tdm_status backward_linear(tdm_backend *b, const fd_case *c, const tdm_view *in, tdm_view dy,
                                  const tdm_view *g)
{
    tdm_linear_shape s = {c->conv.batch, c->conv.in_channels, c->conv.out_channels, 0, false};
    tdm_status status = tdm_linear_backward_input(b, &s, in[1], dy, g[0]);
    return status ? status : tdm_linear_backward_weight(b, &s, in[0], dy, g[1], g[2]);
}

/* Needs the saved batch statistics of a training forward. */
static tdm_status backward_norm(tdm_backend *b, const fd_case *c, const tdm_view *in, tdm_view dy,
                                const tdm_view *g)
{
    size_t ch = c->norm.channels;
    tdm_buffer *work = NULL;
    tdm_status status = tdm_buffer_alloc(b, (4 * ch + c->count) * sizeof(float), &work);
    if (status)
        return status;
    tdm_view mean = {work, 0}, var = {work, ch}, save_mean = {work, 2 * ch},
             save_invstd = {work, 3 * ch}, y = {work, 4 * ch};
    status = tdm_fill(b, mean, 2 * ch, 1.0f);
    if (!status)
        status = tdm_batchnorm_forward_train(b, &c->norm, in[0], in[1], in[2], mean, var, save_mean,
                                             save_invstd, y);
    if (!status)
        status = tdm_batchnorm_backward(b, &c->norm, in[0], dy, y, in[1], save_mean, save_invstd,
                                        g[0], g[1], g[2]);
    if (!status)
        status = tdm_backend_synchronize(b);
    tdm_buffer_free(work);
    return status;
}

static tdm_status backward_relu(tdm_backend *b, const fd_case *c, const tdm_view *in, tdm_view dy,
                                const tdm_view *g)
{
    return tdm_relu_backward(b, c->count, in[0], dy, g[0]);
}

static tdm_status backward_leaky_relu(tdm_backend *b, const fd_case *c, const tdm_view *in,
                                      tdm_view dy, const tdm_view *g)
{
    return tdm_leaky_relu_backward(b, c->count, LEAKY_SLOPE, in[0], dy, g[0]);
}

/* sigmoid_backward takes the forward output: compute it into g[0] first. */
static tdm_status backward_sigmoid(tdm_backend *b, const fd_case *c, const tdm_view *in,
                                   tdm_view dy, const tdm_view *g)
{
    tdm_status status = tdm_sigmoid(b, c->count, in[0], g[0]);
    return status ? status : tdm_sigmoid_backward(b, c->count, g[0], dy, g[0]);
}

/* The residual add passes dy to both inputs: that is what the model does. */
static tdm_status backward_add(tdm_backend *b, const fd_case *c, const tdm_view *in, tdm_view dy,
                               const tdm_view *g)
{
    (void)in;
    tdm_status status = tdm_copy(b, dy, g[0], c->count);
    return status ? status : tdm_copy(b, dy, g[1], c->count);
}

static tdm_status backward_maxpool(tdm_backend *b, const fd_case *c, const tdm_view *in,
                                   tdm_view dy, const tdm_view *g)
{
    tdm_buffer *work = NULL;
    tdm_status status = tdm_buffer_alloc(b, 2 * c->output_size * sizeof(float), &work);
    if (status)
        return status;
    tdm_view y = {work, 0}, argmax = {work, c->output_size};
    status = tdm_maxpool2d_forward(b, &c->pool, in[0], y, argmax);
    if (!status)
        status = tdm_maxpool2d_backward(b, &c->pool, argmax, dy, g[0]);
    if (!status)
        status = tdm_backend_synchronize(b);
    tdm_buffer_free(work);
    return status;
}

static tdm_status backward_avgpool(tdm_backend *b, const fd_case *c, const tdm_view *in,
                                   tdm_view dy, const tdm_view *g)
{
    (void)in;
    return tdm_global_avgpool_backward(b, c->output_size, c->count / c->output_size, dy, g[0]);
}

/* dlogits is the gradient of the batch mean: scale it by the sum of dy,
 * which the harness sets to 1/N everywhere for this op. */
static tdm_status backward_cross_entropy(tdm_backend *b, const fd_case *c, const tdm_view *in,
                                         tdm_view dy, const tdm_view *g)
{
    (void)dy;
    size_t batch = c->output_size;
    int32_t labels[64];
    for (size_t n = 0; n < batch; n++)
        labels[n] = (int32_t)(n % c->classes);
    tdm_buffer *work = NULL;
    tdm_status status = tdm_buffer_alloc(b, 2 * batch * sizeof(float), &work);
    if (!status)
        status = tdm_buffer_upload(work, 0, labels, batch * sizeof(int32_t));
    tdm_cross_entropy_shape s = {batch, c->classes};
    if (!status)
        status = tdm_softmax_cross_entropy(b, &s, in[0], (tdm_view){work, 0},
                                           (tdm_view){work, batch}, (tdm_view){0}, g[0]);
    if (!status)
        status = tdm_backend_synchronize(b);
    tdm_buffer_free(work);
    return status;
}

/* ---------- the cases ---------- */

static fd_case conv_case(const char *name, tdm_conv2d_shape s, bool linear)
{
    fd_case c = {.name = name,
                 .input_count = 3,
                 .input_names = {"x", "weight", "bias"},
                 .forward = forward_conv,
                 .backward = linear ? backward_linear : backward_conv,
                 .conv = s};
    c.input_sizes[0] = s.batch * s.in_channels * s.in_height * s.in_width;
    c.input_sizes[1] = s.out_channels * s.in_channels * s.kernel_h * s.kernel_w;
    c.input_sizes[2] = s.out_channels;
    c.output_size = s.batch * s.out_channels * tdm_conv2d_out_height(&s) * tdm_conv2d_out_width(&s);
    return c;
}

static fd_case elementwise_case(const char *name, size_t count, size_t inputs,
                                void (*forward)(const fd_case *, double *const *, double *),
                                tdm_status (*backward)(tdm_backend *, const fd_case *,
                                                       const tdm_view *, tdm_view,
                                                       const tdm_view *))
{
    fd_case c = {.name = name,
                 .input_count = inputs,
                 .input_names = {"a", "b"},
                 .input_sizes = {count, count},
                 .output_size = count,
                 .forward = forward,
                 .backward = backward,
                 .count = count};
    return c;
}

/* relu: the ReLU fused after it, forward and backward. */
static fd_case norm_case(size_t batch, size_t channels, size_t spatial, bool relu)
{
    fd_case c = {.name = relu ? "batchnorm2d + relu" : "batchnorm2d",
                 .input_count = 3,
                 .input_names = {"x", "gamma", "beta"},
                 .input_sizes = {batch * channels * spatial, channels, channels},
                 .output_size = batch * channels * spatial,
                 .forward = forward_norm,
                 .backward = backward_norm,
                 .norm = {batch, channels, spatial, 1e-5f, 0.1f, .relu = relu},
                 .count = batch * channels * spatial};
    return c;
}

static fd_case maxpool_case(tdm_pool2d_shape s)
{
    fd_case c = {.name = "maxpool2d",
                 .input_count = 1,
                 .input_names = {"x"},
                 .input_sizes = {s.batch * s.channels * s.in_height * s.in_width},
                 .output_size =
                     s.batch * s.channels * tdm_pool2d_out_height(&s) * tdm_pool2d_out_width(&s),
                 .forward = forward_maxpool,
                 .backward = backward_maxpool,
                 .pool = s};
    return c;
}

static fd_case avgpool_case(size_t planes, size_t spatial)
{
    fd_case c =
        elementwise_case("global_avgpool", planes * spatial, 1, forward_avgpool, backward_avgpool);
    c.output_size = planes;
    return c;
}

static fd_case cross_entropy_case(size_t batch, size_t classes)
{
    fd_case c = {.name = "softmax_cross_entropy",
                 .input_count = 1,
                 .input_names = {"logits"},
                 .input_sizes = {batch * classes},
                 .output_size = batch,
                 .forward = forward_cross_entropy,
                 .backward = backward_cross_entropy,
                 .classes = classes};
    return c;
}

/* ---------- the harness ---------- */

static double weighted_sum(const fd_case *c, double *const *inputs, const double *r, double *y)
{
    c->forward(c, inputs, y);
    double sum = 0.0;
    for (size_t i = 0; i < c->output_size; i++)
        sum += r[i] * y[i];
    return sum;
}

static double central_difference(const fd_case *c, double *const *inputs, size_t input, size_t j,
                                 const double *r, double *y, double h)
{
    double saved = inputs[input][j];
    inputs[input][j] = saved + h;
    double plus = weighted_sum(c, inputs, r, y);
    inputs[input][j] = saved - h;
    double minus = weighted_sum(c, inputs, r, y);
    inputs[input][j] = saved;
    return (plus - minus) / (2.0 * h);
}

/* The backend's gradients of sum(r * y), downloaded into grads. */
static void analytic_gradients(tdm_backend *backend, const fd_case *c, float *const *inputs,
                               const float *r, float **grads)
{
    tdm_buffer *in[MAX_INPUTS] = {0}, *out[MAX_INPUTS] = {0}, *dy = NULL;
    tdm_view in_views[MAX_INPUTS] = {{0}}, out_views[MAX_INPUTS] = {{0}};
    for (size_t t = 0; t < c->input_count; t++) {
        size_t bytes = c->input_sizes[t] * sizeof(float);
        assert_int_equal(tdm_buffer_alloc(backend, bytes, &in[t]), TDM_OK);
        assert_int_equal(tdm_buffer_alloc(backend, bytes, &out[t]), TDM_OK);
        assert_int_equal(tdm_buffer_upload(in[t], 0, inputs[t], bytes), TDM_OK);
        assert_int_equal(tdm_fill(backend, (tdm_view){out[t], 0}, c->input_sizes[t], 0.0f),
                         TDM_OK); /* parameter gradients accumulate */
        in_views[t] = (tdm_view){in[t], 0};
        out_views[t] = (tdm_view){out[t], 0};
    }
    assert_int_equal(tdm_buffer_alloc(backend, c->output_size * sizeof(float), &dy), TDM_OK);
    assert_int_equal(tdm_buffer_upload(dy, 0, r, c->output_size * sizeof(float)), TDM_OK);
    if (c->backward(backend, c, in_views, (tdm_view){dy, 0}, out_views) != TDM_OK)
        fail_msg("%s backward on %s failed: %s", c->name, tdm_backend_description(backend),
                 tdm_last_error());
    for (size_t t = 0; t < c->input_count; t++) {
        assert_int_equal(
            tdm_buffer_download(out[t], 0, grads[t], c->input_sizes[t] * sizeof(float)), TDM_OK);
        tdm_buffer_free(in[t]);
        tdm_buffer_free(out[t]);
    }
    tdm_buffer_free(dy);
}

/* Compares one input's analytic gradient with central differences. */
static void check_input(tdm_backend *backend, const fd_case *c, double *const *inputs, size_t input,
                        const double *r, const float *analytic)
{
    size_t n = c->input_sizes[input], skipped = 0;
    double *numeric = malloc(n * sizeof(double)), *y = malloc(c->output_size * sizeof(double));
    bool *kink = calloc(n, sizeof(bool));
    assert_true(numeric && y && kink);
    double squares = 0.0, worst = 0.0;
    for (size_t j = 0; j < n; j++) {
        numeric[j] = central_difference(c, inputs, input, j, r, y, step);
        double half = central_difference(c, inputs, input, j, r, y, step / 2);
        kink[j] = fabs(numeric[j] - half) > tolerance * fmax(fabs(half), 1e-3);
        skipped += kink[j];
        squares += kink[j] ? 0.0 : numeric[j] * numeric[j];
    }
    double rms = sqrt(squares / (double)n);
    for (size_t j = 0; j < n; j++)
        if (!kink[j])
            worst = fmax(worst,
                         fabs(analytic[j] - numeric[j]) / fmax(fmax(fabs(numeric[j]), rms), 1e-12));
    printf("  %-22s d%-7s on %-7s max relative error %.2e, %zu of %zu points at kinks\n", c->name,
           c->input_names[input], tdm_backend_name(backend), worst, skipped, n);
    if (!(worst <= tolerance) || (double)skipped > fmax(1.0, max_skipped_fraction * (double)n))
        fail_msg("%s: d%s on %s disagrees with finite differences (max relative error %.3g, "
                 "%zu of %zu points skipped; seed %llu)",
                 c->name, c->input_names[input], tdm_backend_description(backend), worst, skipped,
                 n, (unsigned long long)test_base_seed());
    free(numeric);
    free(y);
    free(kink);
}

static void check_case(const fd_case *c)
{
    test_rng rng = {test_base_seed() * 7919u + c->output_size};
    double *inputs[MAX_INPUTS] = {0}, *r = malloc(c->output_size * sizeof(double));
    float *inputs_f[MAX_INPUTS] = {0}, *grads[MAX_INPUTS] = {0};
    float *r_f = malloc(c->output_size * sizeof(float));
    assert_true(r && r_f);
    for (size_t t = 0; t < c->input_count; t++) {
        inputs[t] = malloc(c->input_sizes[t] * sizeof(double));
        inputs_f[t] = malloc(c->input_sizes[t] * sizeof(float));
        grads[t] = malloc(c->input_sizes[t] * sizeof(float));
        assert_true(inputs[t] && inputs_f[t] && grads[t]);
        for (size_t i = 0; i < c->input_sizes[t]; i++)
            inputs[t][i] = inputs_f[t][i] = test_rng_uniform(&rng, -1.0f, 1.0f);
    }
    for (size_t i = 0; i < c->output_size; i++) /* the loss is the mean for cross-entropy */
        r[i] = r_f[i] = c->classes ? 1.0f / (float)c->output_size : test_rng_uniform(&rng, -1, 1);
    for (size_t b = 0; b < test_all_backends.count; b++) {
        analytic_gradients(test_all_backends.all[b], c, inputs_f, r_f, grads);
        for (size_t t = 0; t < c->input_count; t++)
            check_input(test_all_backends.all[b], c, inputs, t, r, grads[t]);
    }
    for (size_t t = 0; t < c->input_count; t++) {
        free(inputs[t]);
        free(inputs_f[t]);
        free(grads[t]);
    }
    free(r);
    free(r_f);
}

static void test_conv2d(void **state)
{
    (void)state;
    const tdm_conv2d_shape shapes[] = {
        {2, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1}, /* odd size, same padding */
        {2, 1, 8, 8, 2, 3, 3, 2, 2, 1, 1}, /* the ResNet's stem */
        {1, 2, 6, 5, 3, 2, 3, 2, 1, 1, 0}, /* unequal kernel, stride, padding */
        {2, 3, 2, 2, 4, 3, 3, 1, 1, 1, 1}, /* small image: the dense-matrix path */
        {1, 2, 3, 3, 3, 3, 3, 2, 2, 1, 1}, /* dense path with stride 2 */
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        fd_case c = conv_case("conv2d", shapes[i], false);
        check_case(&c);
    }
}

static void test_linear(void **state)
{
    (void)state;
    fd_case c = conv_case("linear", (tdm_conv2d_shape){3, 5, 1, 1, 4, 1, 1, 1, 1, 0, 0}, true);
    check_case(&c);
}

static void test_batchnorm2d(void **state)
{
    (void)state;
    fd_case small = norm_case(4, 3, 5, false), wide = norm_case(16, 2, 4, false);
    fd_case fused = norm_case(8, 3, 6, true);
    check_case(&small);
    check_case(&wide);
    check_case(&fused);
}

static void test_elementwise(void **state)
{
    (void)state;
    fd_case cases[] = {
        elementwise_case("relu", 64, 1, forward_relu, backward_relu),
        elementwise_case("leaky_relu", 64, 1, forward_leaky_relu, backward_leaky_relu),
        elementwise_case("sigmoid", 64, 1, forward_sigmoid, backward_sigmoid),
        elementwise_case("add", 33, 2, forward_add, backward_add),
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
}

static void test_pooling(void **state)
{
    (void)state;
    fd_case cases[] = {
        maxpool_case((tdm_pool2d_shape){2, 2, 5, 5, 2, 2, 2, 2}),
        maxpool_case((tdm_pool2d_shape){1, 2, 6, 6, 3, 3, 2, 2}), /* overlapping windows */
        avgpool_case(6, 9),
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
}

static void test_cross_entropy(void **state)
{
    (void)state;
    fd_case ten = cross_entropy_case(8, 10), three = cross_entropy_case(5, 3);
    check_case(&ten);
    check_case(&three);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d),      cmocka_unit_test(test_linear),
        cmocka_unit_test(test_batchnorm2d), cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_pooling),     cmocka_unit_test(test_cross_entropy),
    };
    return cmocka_run_group_tests(tests, test_open_all_backends, test_close_all_backends);
}

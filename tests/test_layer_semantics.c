/* What random inputs cannot reach: max-pool ties and NaN, labels out of
 * range, the errors of bad shapes and of misused models, and whole models
 * other than the ResNet running the same on every backend. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/backend_impl.h"
#include "common.h"

static tdm_buffer *upload(tdm_backend *backend, const void *values, size_t floats)
{
    tdm_buffer *buffer = NULL;
    assert_int_equal(tdm_buffer_alloc(backend, floats * sizeof(float), &buffer), TDM_OK);
    if (values)
        assert_int_equal(tdm_buffer_upload(buffer, 0, values, floats * sizeof(float)), TDM_OK);
    return buffer;
}

static void download(const tdm_buffer *buffer, void *out, size_t floats)
{
    assert_int_equal(tdm_buffer_download(buffer, 0, out, floats * sizeof(float)), TDM_OK);
}

static void download_view(tdm_view view, void *out, size_t floats)
{
    assert_int_equal(
        tdm_buffer_download(view.buffer, view.offset * sizeof(float), out, floats * sizeof(float)),
        TDM_OK);
}

static void expect_error(tdm_status status, const char *fragment)
{
    assert_int_equal(status, TDM_ERR_INVALID_ARGUMENT);
    if (!strstr(tdm_last_error(), fragment))
        fail_msg("error '%s' does not mention '%s'", tdm_last_error(), fragment);
}

/* PyTorch: the first maximum in window order wins a tie; NaN wins always. */
static void test_maxpool_ties_and_nan(void **state)
{
    (void)state;
    const float x[16] = {1, 3,   0, 0,  /* window 0: 3 at index 1 and 3 at index 4 */
                         3, 2,   0, 0,  /* window 1: all zero, first index 2 */
                         5, NAN, 7, 7,  /* window 2: NaN at 9 */
                         5, 5,   7, 7}; /* window 3: 7 four times, first index 10 */
    const int32_t expected_index[4] = {1, 2, 9, 10};
    tdm_pool2d_shape s = {1, 1, 4, 4, 2, 2, 2, 2};
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        tdm_buffer *in = upload(backend, x, 16), *out = upload(backend, NULL, 8);
        float y[4], dx[16];
        int32_t index[4];
        const float dy[4] = {1, 2, 3, 4};
        assert_int_equal(tdm_maxpool2d_forward(backend, &s, (tdm_view){in, 0}, (tdm_view){out, 0},
                                               (tdm_view){out, 4}),
                         TDM_OK);
        download(out, y, 4);
        assert_int_equal(tdm_buffer_download(out, 4 * sizeof(float), index, sizeof index), TDM_OK);
        assert_memory_equal(index, expected_index, sizeof index);
        assert_true(y[0] == 3 && y[1] == 0 && isnan(y[2]) && y[3] == 7);
        assert_int_equal(tdm_buffer_upload(in, 0, dy, sizeof dy), TDM_OK);
        tdm_buffer *grad = upload(backend, NULL, 16);
        assert_int_equal(tdm_maxpool2d_backward(backend, &s, (tdm_view){out, 4}, (tdm_view){in, 0},
                                                (tdm_view){grad, 0}),
                         TDM_OK);
        download(grad, dx, 16);
        for (size_t i = 0; i < 16; i++)
            assert_true(dx[i] == (i == 1 ? 1 : i == 2 ? 2 : i == 9 ? 3 : i == 10 ? 4 : 0));
        tdm_buffer_free(in);
        tdm_buffer_free(out);
        tdm_buffer_free(grad);
    }
}

/* A label outside [0, classes) poisons only its own sample. */
static void test_cross_entropy_bad_label(void **state)
{
    (void)state;
    const float logits[6] = {0, 1, 2, 2, 1, 0};
    const int32_t labels[2] = {2, 7};
    tdm_cross_entropy_shape s = {2, 3};
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        tdm_buffer *z = upload(backend, logits, 6), *y = upload(backend, labels, 2);
        tdm_buffer *out = upload(backend, NULL, 10);
        float result[10];
        assert_int_equal(tdm_softmax_cross_entropy(backend, &s, (tdm_view){z, 0}, (tdm_view){y, 0},
                                                   (tdm_view){out, 0}, (tdm_view){out, 2},
                                                   (tdm_view){out, 4}),
                         TDM_OK);
        download(out, result, 10);
        double expected = log(exp(0.0) + exp(1.0) + exp(2.0)) - 2.0;
        assert_true(fabs(result[0] - expected) < 1e-6);
        assert_true(isnan(result[1]));
        assert_true(result[2] == 0.0f && result[3] == 1.0f); /* argmax 2 is right; 7 never */
        assert_true(isnan(result[7]) && !isnan(result[4]));
        tdm_buffer_free(z);
        tdm_buffer_free(y);
        tdm_buffer_free(out);
    }
}

static void test_bad_shapes_are_errors(void **state)
{
    (void)state;
    tdm_backend *backend = test_all_backends.all[0];
    tdm_buffer *buffer = upload(backend, NULL, 4096);
    tdm_view v = {buffer, 0}, w = {buffer, 2048}, none = {0};
    tdm_conv2d_shape too_big = {1, 1, 4, 4, 1, 5, 5, 1, 1, 0, 0};
    expect_error(tdm_conv2d_forward(backend, &too_big, v, w, none, w),
                 "the 5x5 kernel is larger than the padded 4x4 input");
    tdm_conv2d_shape no_stride = {1, 1, 4, 4, 1, 3, 3, 0, 1, 0, 0};
    expect_error(tdm_conv2d_forward(backend, &no_stride, v, w, none, w), "stride height");
    tdm_conv2d_shape fine = {1, 1, 4, 4, 1, 3, 3, 1, 1, 1, 1};
    expect_error(tdm_conv2d_forward(backend, &fine, v, w, none, (tdm_view){buffer, 8}),
                 "output y overlaps an input");
    tdm_conv2d_shape huge = {1, 1, 4096, 4096, 1, 1, 1, 1, 1, 0, 0};
    expect_error(tdm_conv2d_forward(backend, &huge, v, w, none, w), "operand x needs floats");
    tdm_batchnorm_shape fused = {2, 3, 4, 1e-5f, 0.1f, .relu = true}; /* reads y */
    expect_error(tdm_batchnorm_backward(backend, &fused, v, (tdm_view){buffer, 100}, none,
                                        (tdm_view){buffer, 200}, (tdm_view){buffer, 210},
                                        (tdm_view){buffer, 220}, (tdm_view){buffer, 300},
                                        (tdm_view){buffer, 400}, (tdm_view){buffer, 410}),
                 "operand y (read with relu) has no buffer");
    tdm_batchnorm_shape single = {1, 3, 1, 1e-5f, 0.1f, .relu = false};
    expect_error(tdm_batchnorm_forward_train(backend, &single, v, v, v, v, v, w, w, w),
                 "more than one value per channel");
    tdm_pool2d_shape window = {1, 1, 3, 3, 4, 4, 4, 4};
    expect_error(tdm_maxpool2d_forward(backend, &window, v, w, w), "larger than the 3x3 input");
    tdm_sgd_options bad_lr = {0.0f, 0.0f, 0.0f, 0.0f, false};
    expect_error(tdm_sgd_step(backend, &bad_lr, true, 4, v, w, none), "lr must be");
    tdm_sgd_options nesterov = {0.1f, 0.0f, 0.0f, 0.0f, true};
    expect_error(tdm_sgd_step(backend, &nesterov, true, 4, v, w, none), "nesterov");
    expect_error(tdm_sgd_step_zero_grad(backend, &bad_lr, true, 4, v, w, none),
                 "sgd_step_zero_grad: lr must be");
    expect_error(tdm_conv2d_col_floats(backend, &too_big, &(size_t){0}),
                 "the 5x5 kernel is larger than the padded 4x4 input");
    tdm_buffer_free(buffer);
}

/* The linear layer's checks: a gradient it must compute given as an empty
 * view, gradients sharing floats, an x too short for its pools, and the
 * input ReLU's mask asked of the call without x. */
static void test_bad_linear_arguments(void **state)
{
    (void)state;
    tdm_backend *backend = test_all_backends.all[0];
    tdm_buffer *buffer = upload(backend, NULL, 4096);
    tdm_view x = {buffer, 0}, w = {buffer, 100}, dy = {buffer, 200}, dx = {buffer, 300},
             dw = {buffer, 400}, none = {0};
    tdm_linear_shape s = {2, 8, 4, 0, false}; /* x 16, w 32, dy 8 floats */
    expect_error(tdm_linear_backward_input(backend, &s, w, dy, none),
                 "linear_backward_input: dx is empty");
    expect_error(tdm_linear_backward_weight(backend, &s, x, dy, none, none),
                 "linear_backward_weight: dweight is empty");
    expect_error(tdm_linear_backward(backend, &s, x, w, dy, dx, none, none),
                 "linear_backward: dweight is empty");
    expect_error(tdm_linear_backward(backend, &s, x, w, dy, dx, (tdm_view){buffer, 310}, none),
                 "linear_backward: output dweight overlaps an input");
    expect_error(tdm_linear_backward(backend, &s, x, w, dy, dx, dw, (tdm_view){buffer, 420}),
                 "linear_backward: output dbias overlaps an input");
    tdm_linear_shape masked = {2, 8, 4, 0, true};
    expect_error(tdm_linear_backward_input(backend, &masked, w, dy, dx),
                 "linear_backward_input: shape.relu masks dx with x");
    tdm_linear_shape pooled = {2, 8, 4, 300, false}; /* x 4800 floats */
    expect_error(tdm_linear_forward(backend, &pooled, x, w, none, dy),
                 "linear_forward: operand x needs floats");
    assert_int_equal(tdm_linear_backward(backend, &s, x, w, dy, dx, dw, none), TDM_OK);
    tdm_buffer_free(buffer);
}

/* tdm_conv2d_backward_input_dense_accumulate adds the plain form's dx to
 * what dx holds: on OpenCL with the bits of dx + g (CLBlast adds C once,
 * after the sum); a cpu GEMM (oneDNN) may add C into its partial sums, which
 * moves the result by a few roundings of values no larger than the largest
 * |dx| here, so 1e-5 of that is hundreds of ulps of margin. */
static void check_dense_accumulate(tdm_backend *backend, const tdm_conv2d_shape *s, tdm_view dense,
                                   tdm_view dy, const float *dx)
{
    enum { X = 7 * 16 * 2 * 2 };
    float g[X], got[X], largest = 0.0f;
    test_fill_random(g, X, 4);
    tdm_buffer *sum = upload(backend, g, X);
    assert_int_equal(
        tdm_conv2d_backward_input_dense_accumulate(backend, s, dense, dy, (tdm_view){sum, 0}),
        TDM_OK);
    download(sum, got, X);
    for (size_t i = 0; i < X; i++)
        largest = fmaxf(largest, fabsf(dx[i]));
    bool exact = strcmp(tdm_backend_name(backend), "opencl") == 0;
    for (size_t i = 0; i < X; i++) {
        float want = dx[i] + g[i];
        if (exact)
            assert_memory_equal(&got[i], &want, sizeof want);
        else
            assert_true(fabsf(got[i] - want) <= 1e-5f * largest);
    }
    tdm_buffer_free(sum);
}

/* The dense forms with a matrix built once give the plain forms' bits. */
static void check_dense_forms(tdm_backend *backend, const tdm_conv2d_shape *s, size_t dense_floats)
{
    enum { X = 7 * 16 * 2 * 2, W = 5 * 16 * 3 * 3, Y = 7 * 5 * 2 * 2 };
    float x[X], w[W], bias[5], y[Y], y_dense[Y], dx[X], dx_dense[X];
    test_fill_random(x, X, 1);
    test_fill_random(w, W, 2);
    test_fill_random(bias, 5, 3);
    tdm_buffer *in = upload(backend, x, X), *weight = upload(backend, w, W);
    tdm_buffer *b = upload(backend, bias, 5), *dense = upload(backend, NULL, dense_floats);
    tdm_buffer *out = upload(backend, NULL, Y), *grad = upload(backend, NULL, X);
    tdm_view dense_view = {dense, 0};
    assert_int_equal(tdm_conv2d_dense_weight(backend, s, (tdm_view){weight, 0}, dense_view),
                     TDM_OK);
    assert_int_equal(tdm_conv2d_forward(backend, s, (tdm_view){in, 0}, (tdm_view){weight, 0},
                                        (tdm_view){b, 0}, (tdm_view){out, 0}),
                     TDM_OK);
    download(out, y, Y);
    assert_int_equal(tdm_conv2d_forward_dense(backend, s, (tdm_view){in, 0}, dense_view,
                                              (tdm_view){b, 0}, (tdm_view){out, 0}),
                     TDM_OK);
    download(out, y_dense, Y);
    assert_memory_equal(y, y_dense, sizeof y);
    assert_int_equal(tdm_conv2d_backward_input(backend, s, (tdm_view){weight, 0},
                                               (tdm_view){out, 0}, (tdm_view){grad, 0}),
                     TDM_OK);
    download(grad, dx, X);
    assert_int_equal(tdm_conv2d_backward_input_dense(backend, s, dense_view, (tdm_view){out, 0},
                                                     (tdm_view){grad, 0}),
                     TDM_OK);
    download(grad, dx_dense, X);
    assert_memory_equal(dx, dx_dense, sizeof dx);
    check_dense_accumulate(backend, s, dense_view, (tdm_view){out, 0}, dx_dense);
    tdm_buffer *buffers[] = {in, weight, b, dense, out, grad};
    for (size_t i = 0; i < 6; i++)
        tdm_buffer_free(buffers[i]);
}

/* ResNet's block conv (2x2 images, 3x3 kernel) runs with a dense matrix
 * (where small convs are not direct kernels); the dense forms refuse a conv
 * that does not, and a matrix too small. */
static void test_conv_dense_forms(void **state)
{
    (void)state;
    tdm_conv2d_shape block = {7, 16, 2, 2, 5, 3, 3, 1, 1, 1, 1};
    tdm_conv2d_shape wide = {7, 16, 8, 8, 5, 3, 3, 1, 1, 1, 1};
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        bool direct = backend->direct_small_convs;
        backend->direct_small_convs = false;
        size_t floats = 0;
        assert_int_equal(tdm_conv2d_dense_floats(backend, &block, &floats), TDM_OK);
        assert_int_equal(floats, (5 * 2 * 2) * (16 * 2 * 2));
        check_dense_forms(backend, &block, floats);
        assert_int_equal(tdm_conv2d_dense_floats(backend, &wide, &floats), TDM_OK);
        assert_int_equal(floats, 0);
        tdm_conv2d_shape no_conv = {7, 16, 2, 2, 5, 7, 7, 1, 1, 1, 1};
        expect_error(tdm_conv2d_dense_floats(backend, &no_conv, &floats),
                     "kernel is larger than the padded 4x4 input");
        tdm_buffer *buffer = upload(backend, NULL, 8192);
        tdm_view v = {buffer, 0}, w = {buffer, 4096}, short_dense = {buffer, 8000}, none = {0};
        expect_error(tdm_conv2d_dense_weight(backend, &wide, v, w),
                     "does not run with a dense matrix");
        expect_error(tdm_conv2d_forward_dense(backend, &wide, v, w, none, w),
                     "does not run with a dense matrix");
        expect_error(tdm_conv2d_backward_input_dense(backend, &wide, w, v, w),
                     "does not run with a dense matrix");
        expect_error(tdm_conv2d_dense_weight(backend, &block, v, short_dense),
                     "operand dense needs");
        expect_error(tdm_conv2d_forward_dense(backend, &block, v, short_dense, none, w),
                     "operand dense needs");
        expect_error(tdm_conv2d_backward_input_dense(backend, &block, short_dense, v, w),
                     "operand dense needs");
        expect_error(tdm_conv2d_backward_input_dense_accumulate(backend, &wide, w, v, w),
                     "conv2d_backward_input_dense_accumulate: this convolution does not run");
        tdm_view dy = {buffer, 2000}, dx = {buffer, 3000}, dw = {buffer, 5000};
        expect_error(tdm_conv2d_backward_accumulate(backend, &block, v, w, dy, dx, dw, none),
                     "conv2d_backward_accumulate: this convolution adds its input gradient in "
                     "place only as a direct kernel");
        backend->direct_small_convs = direct;
        tdm_buffer_free(buffer);
    }
}

/* The OpenCL commands of a conv's three passes (no bias) into counts. */
static void conv_pass_launches(tdm_backend *backend, const tdm_conv2d_shape *s, tdm_view x,
                               tdm_view w, tdm_view y, tdm_view dx, tdm_view dw, size_t counts[3])
{
    tdm_backend_counts before = tdm_backend_get_counts(backend);
    assert_int_equal(tdm_conv2d_forward(backend, s, x, w, (tdm_view){0}, y), TDM_OK);
    tdm_backend_counts forward = tdm_backend_get_counts(backend);
    assert_int_equal(tdm_conv2d_backward_input(backend, s, w, y, dx), TDM_OK);
    tdm_backend_counts input = tdm_backend_get_counts(backend);
    assert_int_equal(tdm_conv2d_backward_weight(backend, s, x, y, dw, (tdm_view){0}), TDM_OK);
    counts[0] = forward.launches - before.launches;
    counts[1] = input.launches - forward.launches;
    counts[2] = tdm_backend_get_counts(backend).launches - input.launches;
}

/* tdm_conv2d_backward's commands, into dx and dw (zeroed first); with
 * accumulate, dx starts at `start`. */
static size_t both_gradients(tdm_backend *backend, const tdm_conv2d_shape *s, tdm_view x,
                             tdm_view w, tdm_view dy, tdm_view dx, tdm_view dw, const float *start,
                             size_t x_count, size_t w_count)
{
    assert_int_equal(tdm_fill(backend, dw, w_count, 0.0f), TDM_OK);
    if (start)
        assert_int_equal(
            tdm_buffer_upload(dx.buffer, dx.offset * sizeof(float), start, x_count * sizeof(float)),
            TDM_OK);
    else
        assert_int_equal(tdm_fill(backend, dx, x_count, NAN), TDM_OK);
    tdm_backend_counts before = tdm_backend_get_counts(backend);
    assert_int_equal(
        start ? tdm_conv2d_backward_accumulate(backend, s, x, w, dy, dx, dw, (tdm_view){0})
              : tdm_conv2d_backward(backend, s, x, w, dy, dx, dw, (tdm_view){0}),
        TDM_OK);
    return tdm_backend_get_counts(backend).launches - before.launches;
}

/* Small images as direct kernels (direct_small_convs, a GPU's plan): no T
 * (tdm_conv2d_dense_floats gives 0), one command a pass and one for both
 * gradients, which have the bits of the passes one at a time; the input
 * gradient added in place with the bits of the plain one and an add. */
static void test_conv_direct_small_images(void **state)
{
    (void)state;
    enum { X = 7 * 16 * 2 * 2, W = 5 * 16 * 3 * 3, Y = 7 * 5 * 2 * 2 };
    tdm_conv2d_shape block = {7, 16, 2, 2, 5, 3, 3, 1, 1, 1, 1};
    float x[X], w[W], g[X], dx[X], dw[W], both_dx[X], both_dw[W], sum[X];
    test_fill_random(x, X, 12);
    test_fill_random(w, W, 13);
    test_fill_random(g, X, 14);
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        bool direct = backend->direct_small_convs, accumulates = false;
        bool opencl = strcmp(tdm_backend_name(backend), "opencl") == 0;
        backend->direct_small_convs = true;
        size_t floats = 1, counts[3];
        assert_int_equal(tdm_conv2d_dense_floats(backend, &block, &floats), TDM_OK);
        assert_int_equal(floats, 0);
        assert_int_equal(tdm_conv2d_accumulates(backend, &block, &accumulates), TDM_OK);
        assert_true(accumulates);
        tdm_conv2d_shape no_conv = {7, 16, 2, 2, 5, 7, 7, 1, 1, 1, 1};
        expect_error(tdm_conv2d_accumulates(backend, &no_conv, &accumulates),
                     "conv2d_accumulates: the 7x7 kernel is larger than the padded 4x4 input");
        assert_false(accumulates);
        tdm_buffer *all = upload(backend, NULL, 2 * X + W + Y + W);
        tdm_view xv = {all, 0}, wv = {all, X}, yv = {all, X + W}, dxv = {all, X + W + Y},
                 dwv = {all, 2 * X + W + Y};
        assert_int_equal(tdm_buffer_upload(all, 0, x, sizeof x), TDM_OK);
        assert_int_equal(tdm_buffer_upload(all, X * sizeof(float), w, sizeof w), TDM_OK);
        assert_int_equal(tdm_fill(backend, dwv, W, 0.0f), TDM_OK);
        conv_pass_launches(backend, &block, xv, wv, yv, dxv, dwv, counts);
        if (opencl)
            for (int pass = 0; pass < 3; pass++)
                assert_int_equal(counts[pass], 1);
        download_view(dxv, dx, X);
        download_view(dwv, dw, W);
        size_t launches = both_gradients(backend, &block, xv, wv, yv, dxv, dwv, NULL, X, W);
        if (opencl)
            assert_int_equal(launches, 1);
        download_view(dxv, both_dx, X);
        download_view(dwv, both_dw, W);
        assert_memory_equal(both_dx, dx, sizeof dx);
        assert_memory_equal(both_dw, dw, sizeof dw);
        launches = both_gradients(backend, &block, xv, wv, yv, dxv, dwv, g, X, W);
        if (opencl)
            assert_int_equal(launches, 1);
        download_view(dxv, sum, X);
        download_view(dwv, both_dw, W);
        for (size_t i = 0; i < X; i++) {
            float want = dx[i] + g[i];
            assert_memory_equal(&sum[i], &want, sizeof want);
        }
        assert_memory_equal(both_dw, dw, sizeof dw);
        expect_error(tdm_conv2d_backward(backend, &block, xv, wv, yv,
                                         (tdm_view){all, X + W + Y + 1},
                                         (tdm_view){all, X + W + Y + X}, (tdm_view){0}),
                     "conv2d_backward: output dx overlaps an input");
        expect_error(tdm_conv2d_backward_accumulate(backend, &block, xv, wv, yv, (tdm_view){0}, dwv,
                                                    (tdm_view){0}),
                     "conv2d_backward_accumulate: dx is empty");
        backend->direct_small_convs = direct;
        tdm_buffer_free(all);
    }
}

/* The col forms give the plain forms' bits: y (with a bias), the kept
 * col, and the weight and bias gradients from it. */
static void check_col_forms(tdm_backend *backend, const tdm_conv2d_shape *s, size_t col_floats)
{
    enum { X = 3 * 2 * 7 * 7, W = 4 * 2 * 2 * 2, Y = 3 * 4 * 4 * 4 };
    float x[X], w[W], bias[4], y[2][Y], grads[2][W + 4];
    test_fill_random(x, X, 7);
    test_fill_random(w, W, 8);
    test_fill_random(bias, 4, 9);
    tdm_buffer *in = upload(backend, x, X), *weight = upload(backend, w, W);
    tdm_buffer *b = upload(backend, bias, 4), *col = upload(backend, NULL, col_floats);
    tdm_buffer *out = upload(backend, NULL, Y), *dweight = upload(backend, NULL, W + 4);
    tdm_view xv = {in, 0}, wv = {weight, 0}, bv = {b, 0}, yv = {out, 0}, colv = {col, 0};
    tdm_view dw = {dweight, 0}, db = {dweight, W};
    for (int kept = 0; kept < 2; kept++) {
        assert_int_equal(kept ? tdm_conv2d_forward_col(backend, s, xv, wv, bv, yv, colv)
                              : tdm_conv2d_forward(backend, s, xv, wv, bv, yv),
                         TDM_OK);
        download(out, y[kept], Y);
        assert_int_equal(tdm_fill(backend, dw, W + 4, 0.5f), TDM_OK);
        assert_int_equal(kept ? tdm_conv2d_backward_weight_col(backend, s, colv, yv, dw, db)
                              : tdm_conv2d_backward_weight(backend, s, xv, yv, dw, db),
                         TDM_OK);
        download(dweight, grads[kept], W + 4);
    }
    assert_memory_equal(y[0], y[1], sizeof y[0]);
    assert_memory_equal(grads[0], grads[1], sizeof grads[0]);
    tdm_buffer *buffers[] = {in, weight, b, col, out, dweight};
    for (size_t i = 0; i < 6; i++)
        tdm_buffer_free(buffers[i]);
}

/* A conv with few taps a sample (8: 2 channels of 2 x 2) keeps its col
 * (where small convs are not direct kernels); the col forms refuse a conv
 * that does not, and a col too small. */
static void test_conv_col_forms(void **state)
{
    (void)state;
    tdm_conv2d_shape stem = {3, 2, 7, 7, 4, 2, 2, 2, 2, 1, 1}; /* 4 x 4 outputs */
    tdm_conv2d_shape many_taps = {3, 5, 7, 7, 4, 2, 2, 2, 2, 1, 1};
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        bool direct = backend->direct_small_convs;
        backend->direct_small_convs = false;
        size_t floats = 0;
        assert_int_equal(tdm_conv2d_col_floats(backend, &stem, &floats), TDM_OK);
        assert_int_equal(floats, (2 * 2 * 2) * (3 * 4 * 4));
        check_col_forms(backend, &stem, floats);
        assert_int_equal(tdm_conv2d_col_floats(backend, &many_taps, &floats), TDM_OK);
        assert_int_equal(floats, 0); /* 20 taps */
        tdm_buffer *buffer = upload(backend, NULL, 8192);
        tdm_view v = {buffer, 0}, w = {buffer, 4096}, y = {buffer, 6000},
                 short_col = {buffer, 8000};
        expect_error(tdm_conv2d_forward_col(backend, &many_taps, v, w, (tdm_view){0}, y, y),
                     "keeps no col");
        expect_error(tdm_conv2d_backward_weight_col(backend, &many_taps, v, y, w, (tdm_view){0}),
                     "keeps no col");
        expect_error(tdm_conv2d_forward_col(backend, &stem, v, w, (tdm_view){0}, y, short_col),
                     "operand col needs");
        expect_error(tdm_conv2d_backward_weight_col(backend, &stem, short_col, y, w, (tdm_view){0}),
                     "operand col needs");
        backend->direct_small_convs = direct;
        tdm_buffer_free(buffer);
    }
}

/* conv2d's forward of x into y (no bias), with or without small convs as
 * direct kernels; gives its OpenCL commands. */
static size_t forward_with(tdm_backend *backend, bool direct, const tdm_conv2d_shape *s, tdm_view x,
                           tdm_view w, tdm_buffer *y, float *out, size_t count)
{
    bool was = backend->direct_small_convs;
    backend->direct_small_convs = direct;
    size_t col_floats = 1;
    assert_int_equal(tdm_conv2d_col_floats(backend, s, &col_floats), TDM_OK);
    assert_true(direct ? col_floats == 0 : col_floats > 0); /* direct: no col kept */
    tdm_backend_counts before = tdm_backend_get_counts(backend);
    assert_int_equal(tdm_conv2d_forward(backend, s, x, w, (tdm_view){0}, (tdm_view){y, 0}), TDM_OK);
    size_t launches = tdm_backend_get_counts(backend).launches - before.launches;
    backend->direct_small_convs = was;
    download(y, out, count);
    return launches;
}

/* A few-tap conv as a direct kernel (direct_small_convs, a GPU's plan)
 * gives the bits of im2col and the product with col, in one command where
 * those take two, and keeps no col. */
static void test_conv_direct_forward(void **state)
{
    (void)state;
    enum { X = 3 * 2 * 7 * 7, W = 4 * 2 * 2 * 2, Y = 3 * 4 * 4 * 4 };
    tdm_conv2d_shape stem = {3, 2, 7, 7, 4, 2, 2, 2, 2, 1, 1}; /* 4 x 4 outputs */
    float x[X], w[W], y[2][Y];
    test_fill_random(x, X, 10);
    test_fill_random(w, W, 11);
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        tdm_buffer *in = upload(backend, x, X), *weight = upload(backend, w, W);
        tdm_buffer *out = upload(backend, NULL, Y);
        size_t launches[2];
        for (int direct = 0; direct < 2; direct++)
            launches[direct] = forward_with(backend, direct, &stem, (tdm_view){in, 0},
                                            (tdm_view){weight, 0}, out, y[direct], Y);
        assert_memory_equal(y[0], y[1], sizeof y[0]);
        if (strcmp(tdm_backend_name(backend), "opencl") == 0) {
            assert_int_equal(launches[0], 2);
            assert_int_equal(launches[1], 1);
        }
        tdm_buffer_free(in);
        tdm_buffer_free(weight);
        tdm_buffer_free(out);
    }
}

/* The OpenCL commands conv2d's weight gradient issues for a shape (no bias). */
static size_t weight_gradient_launches(tdm_backend *backend, const tdm_conv2d_shape *s)
{
    size_t x_floats = s->batch * s->in_channels * s->in_height * s->in_width;
    size_t y_floats =
        s->batch * s->out_channels * tdm_conv2d_out_height(s) * tdm_conv2d_out_width(s);
    size_t w_floats = s->out_channels * s->in_channels * s->kernel_h * s->kernel_w;
    tdm_buffer *x = upload(backend, NULL, x_floats), *dy = upload(backend, NULL, y_floats),
               *dw = upload(backend, NULL, w_floats);
    assert_int_equal(tdm_fill(backend, (tdm_view){x, 0}, x_floats, 1.0f), TDM_OK);
    assert_int_equal(tdm_fill(backend, (tdm_view){dy, 0}, y_floats, 1.0f), TDM_OK);
    assert_int_equal(tdm_fill(backend, (tdm_view){dw, 0}, w_floats, 0.0f), TDM_OK);
    tdm_backend_counts before = tdm_backend_get_counts(backend);
    assert_int_equal(tdm_conv2d_backward_weight(backend, s, (tdm_view){x, 0}, (tdm_view){dy, 0},
                                                (tdm_view){dw, 0}, (tdm_view){0}),
                     TDM_OK);
    size_t launches = tdm_backend_get_counts(backend).launches - before.launches;
    float first = 0.0f;
    assert_int_equal(tdm_buffer_download(dw, 0, &first, sizeof first), TDM_OK);
    assert_true(first > 0.0f); /* ones times ones, some of them in the padding */
    tdm_buffer_free(x);
    tdm_buffer_free(dy);
    tdm_buffer_free(dw);
    return launches;
}

/* Few taps a sample take the weight gradient without a GEMM (im2col, then
 * the product: 2 commands on OpenCL; 1 where small convs are direct
 * kernels, from x) up to 2^16 positions N*OH*OW, and the GEMM past them
 * (transposes of dy and col, im2col, the GEMM: 4), which spreads that much
 * work better. */
static void test_few_tap_weight_gradient_plans(void **state)
{
    (void)state;
    const tdm_conv2d_shape stem = {128, 1, 8, 8, 64, 3, 3, 2, 2, 1, 1};  /* 2048 positions */
    const tdm_conv2d_shape large = {16, 1, 66, 66, 2, 3, 3, 1, 1, 1, 1}; /* 69696 */
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        if (strcmp(tdm_backend_name(backend), "opencl") != 0)
            continue; /* the cpu backend counts no launches */
        assert_int_equal(weight_gradient_launches(backend, &stem),
                         backend->direct_small_convs ? 1 : 2);
        assert_int_equal(weight_gradient_launches(backend, &large), 4);
    }
}

/* The OpenCL commands of a linear layer's forward and its whole backward
 * (tdm_linear_backward, with bias), as a model runs them. */
static void linear_launches(tdm_backend *backend, const tdm_linear_shape *s, size_t *forward,
                            size_t *backward)
{
    size_t nx = s->batch * s->in_features * (s->pool > 1 ? s->pool : 1),
           nw = s->out_features * s->in_features, ny = s->batch * s->out_features,
           total = 2 * nx + 2 * nw + 2 * ny + 2 * s->out_features;
    tdm_buffer *all = upload(backend, NULL, total);
    assert_int_equal(tdm_fill(backend, (tdm_view){all, 0}, total, 0.5f), TDM_OK);
    tdm_view x = {all, 0}, w = {all, nx}, b = {all, nx + nw}, y = {all, nx + nw + s->out_features},
             dy = {all, y.offset + ny}, dx = {all, dy.offset + ny}, dw = {all, dx.offset + nx},
             db = {all, dw.offset + nw};
    tdm_backend_counts before = tdm_backend_get_counts(backend);
    assert_int_equal(tdm_linear_forward(backend, s, x, w, b, y), TDM_OK);
    tdm_backend_counts middle = tdm_backend_get_counts(backend);
    assert_int_equal(tdm_linear_backward(backend, s, x, w, dy, dx, dw, db), TDM_OK);
    *forward = middle.launches - before.launches;
    *backward = tdm_backend_get_counts(backend).launches - middle.launches;
    float first = 0.0f;
    assert_int_equal(tdm_buffer_download(all, db.offset * sizeof(float), &first, sizeof first),
                     TDM_OK);
    assert_true(first == 0.5f + 0.5f * (float)s->batch); /* db += the sum of dy over the batch */
    tdm_buffer_free(all);
}

/* A linear layer of at most 4096 weights (ResNet's head) runs each pass in
 * one command (small_linear, small_linear_backward), also with the average
 * pool before it; a larger one runs GEMMs: the product and the bias forward
 * (2), and backward the weight GEMM, the bias sums and the input GEMM (3);
 * with a pool, 1 more forward and 2 more backward (the pool of x, again for
 * the weight gradient, and the input gradient's spread over the pools). The
 * input ReLU's backward (relu) adds none to the small plan, 1 to a GEMM's. */
static void test_linear_plans(void **state)
{
    (void)state;
    const tdm_linear_shape shapes[] = {{128, 64, 64, 0, false}, {16, 65, 64, 0, false},
                                       {128, 64, 10, 4, false}, {16, 65, 64, 4, false},
                                       {128, 64, 10, 4, true},  {16, 65, 64, 4, true}};
    const size_t forward_launches[] = {1, 2, 1, 3, 1, 3}, backward_launches[] = {1, 3, 1, 5, 1, 6};
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        if (strcmp(tdm_backend_name(backend), "opencl") != 0)
            continue; /* the cpu backend counts no launches */
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            size_t forward = 0, backward = 0;
            linear_launches(backend, &shapes[i], &forward, &backward);
            assert_int_equal(forward, forward_launches[i]);
            assert_int_equal(backward, backward_launches[i]);
        }
    }
}

/* A small linear layer's forward and whole backward on random operands
 * from `seed` (dw and db start non-zero: the backward adds to them); every
 * operand into out, `floats` of them. */
static void linear_results(tdm_backend *backend, const tdm_linear_shape *s, uint64_t seed,
                           float *out, size_t floats)
{
    size_t nx = s->batch * s->in_features * (s->pool > 1 ? s->pool : 1),
           nw = s->out_features * s->in_features, ny = s->batch * s->out_features;
    assert_int_equal(floats, 2 * nx + 2 * nw + 2 * ny + 2 * s->out_features);
    test_fill_random(out, floats, seed);
    tdm_buffer *all = upload(backend, out, floats);
    tdm_view x = {all, 0}, w = {all, nx}, b = {all, nx + nw}, y = {all, nx + nw + s->out_features},
             dy = {all, y.offset + ny}, dx = {all, dy.offset + ny}, dw = {all, dx.offset + nx},
             db = {all, dw.offset + nw};
    assert_int_equal(tdm_linear_forward(backend, s, x, w, b, y), TDM_OK);
    assert_int_equal(tdm_linear_backward(backend, s, x, w, dy, dx, dw, db), TDM_OK);
    download(all, out, floats);
    tdm_buffer_free(all);
}

/* The small linear layer's two OpenCL forms, a work-item a sample or a
 * feature (tdm_small_linear_rows, tdm_small_linear_backward with rows: a
 * CPU device) and a work-item a value (a GPU), give the same bits: each
 * sum in the same order. ResNet's head, more outputs than a work-item's 16
 * lanes, no pool. */
static void test_linear_forms(void **state)
{
    (void)state;
    const tdm_linear_shape shapes[] = {
        {128, 64, 10, 4, true}, {5, 3, 37, 3, true}, {6, 40, 20, 0, false}};
    enum { ROOM = 80000 };
    static float rows[ROOM], spread[ROOM];
    test_backends gpu_forms;
    const char *const settings[][2] = {{"TANDEM_OPENCL_REDUCTION_GROUP", "16"}};
    test_backends_open_with(&gpu_forms, settings, 1);
    for (size_t b = 1; b < test_all_backends.count; b++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            const tdm_linear_shape *s = &shapes[i];
            size_t nx = s->batch * s->in_features * (s->pool > 1 ? s->pool : 1),
                   nw = s->out_features * s->in_features, ny = s->batch * s->out_features,
                   floats = 2 * nx + 2 * nw + 2 * ny + 2 * s->out_features;
            assert_true(floats <= ROOM);
            linear_results(test_all_backends.all[b], s, 70 + i, rows, floats);
            linear_results(gpu_forms.all[b], s, 70 + i, spread, floats);
            assert_memory_equal(rows, spread, floats * sizeof(float));
        }
    test_backends_close(&gpu_forms);
}

/* The operands of a batch norm with the max-pool that reads it, at
 * consecutive offsets of one buffer. */
enum {
    NP_X,
    NP_GAMMA,
    NP_BETA,
    NP_MEAN,
    NP_VAR,
    NP_SAVE_MEAN,
    NP_SAVE_INVSTD,
    NP_Y,
    NP_POOLED,
    NP_ARGMAX,
    NP_POOLED_DY,
    NP_DY,
    NP_DX,
    NP_DGAMMA,
    NP_DBETA,
    NP_COUNT
};

/* The operands of a batch norm whose output a residual add reads, the
 * same way. */
enum {
    NA_X,
    NA_GAMMA,
    NA_BETA,
    NA_MEAN,
    NA_VAR,
    NA_SAVE_MEAN,
    NA_SAVE_INVSTD,
    NA_RESIDUAL,
    NA_Y,
    NA_COUNT
};

/* A batch norm's operands at consecutive offsets of one buffer (NP_* or
 * NA_*), and the shape of the max-pool that reads it where one does. */
typedef struct norm_case {
    tdm_batchnorm_shape norm;
    tdm_pool2d_shape pool;
    tdm_buffer *buffer;
    size_t at[NP_COUNT + 1];
} norm_case;

_Static_assert((int)NA_COUNT <= (int)NP_COUNT, "norm_case holds either set of operands");

static tdm_view norm_view(const norm_case *c, int operand)
{
    return (tdm_view){c->buffer, c->at[operand]};
}

/* Lays out `count` operands of the given sizes and fills them with values
 * from `seed`, the running variance (operand `var`) positive; returns the
 * floats. */
static size_t norm_layout(norm_case *c, const size_t *sizes, int count, int var, float *values,
                          size_t capacity, uint64_t seed)
{
    c->at[0] = 0;
    for (int i = 0; i < count; i++)
        c->at[i + 1] = c->at[i] + sizes[i];
    assert_true(c->at[count] <= capacity);
    test_fill_random(values, c->at[count], seed);
    for (size_t i = c->at[var]; i < c->at[var + 1]; i++)
        values[i] = fabsf(values[i]) + 0.5f;
    return c->at[count];
}

/* The operands with the pool, laid out and filled (norm_layout). */
static size_t np_layout(norm_case *c, float *values, size_t capacity, uint64_t seed)
{
    const tdm_pool2d_shape *p = &c->pool;
    size_t nx = p->batch * p->channels * p->in_height * p->in_width, ch = p->channels;
    size_t ny = p->batch * p->channels * tdm_pool2d_out_height(p) * tdm_pool2d_out_width(p);
    size_t sizes[NP_COUNT] = {nx, ch, ch, ch, ch, ch, ch, nx, ny, ny, ny, nx, nx, ch, ch};
    return norm_layout(c, sizes, NP_COUNT, NP_VAR, values, capacity, seed);
}

/* The operands with the residual, laid out and filled (norm_layout). */
static size_t na_layout(norm_case *c, float *values, size_t capacity, uint64_t seed)
{
    size_t n = c->norm.batch * c->norm.channels * c->norm.spatial, ch = c->norm.channels;
    size_t sizes[NA_COUNT] = {n, ch, ch, ch, ch, ch, ch, n, n};
    return norm_layout(c, sizes, NA_COUNT, NA_VAR, values, capacity, seed);
}

/* The training forward and then the backward, with the pool in the batch
 * norm's calls or apart; each pass's commands into launches. */
static void np_run(tdm_backend *backend, const norm_case *c, bool together, size_t launches[2])
{
    const tdm_batchnorm_shape *s = &c->norm;
    const tdm_pool2d_shape *p = &c->pool;
    tdm_backend_counts start = tdm_backend_get_counts(backend);
    tdm_view x = norm_view(c, NP_X), g = norm_view(c, NP_GAMMA), b = norm_view(c, NP_BETA),
             mean = norm_view(c, NP_MEAN), var = norm_view(c, NP_VAR),
             save_mean = norm_view(c, NP_SAVE_MEAN), save_invstd = norm_view(c, NP_SAVE_INVSTD),
             y = norm_view(c, NP_Y), pooled = norm_view(c, NP_POOLED),
             argmax = norm_view(c, NP_ARGMAX), pooled_dy = norm_view(c, NP_POOLED_DY),
             dy = norm_view(c, NP_DY), dx = norm_view(c, NP_DX), dgamma = norm_view(c, NP_DGAMMA),
             dbeta = norm_view(c, NP_DBETA);
    if (together) {
        assert_int_equal(tdm_batchnorm_pool_forward_train(backend, s, p, x, g, b, mean, var,
                                                          save_mean, save_invstd, y, pooled,
                                                          argmax),
                         TDM_OK);
    } else {
        assert_int_equal(
            tdm_batchnorm_forward_train(backend, s, x, g, b, mean, var, save_mean, save_invstd, y),
            TDM_OK);
        assert_int_equal(tdm_maxpool2d_forward(backend, p, y, pooled, argmax), TDM_OK);
    }
    tdm_backend_counts middle = tdm_backend_get_counts(backend);
    if (together) {
        assert_int_equal(tdm_batchnorm_pool_backward(backend, s, p, x, pooled_dy, argmax, y, g,
                                                     save_mean, save_invstd, dy, dx, dgamma, dbeta),
                         TDM_OK);
    } else {
        assert_int_equal(tdm_maxpool2d_backward(backend, p, argmax, pooled_dy, dy), TDM_OK);
        assert_int_equal(tdm_batchnorm_backward(backend, s, x, dy, y, g, save_mean, save_invstd, dx,
                                                dgamma, dbeta),
                         TDM_OK);
    }
    launches[0] = middle.launches - start.launches;
    launches[1] = tdm_backend_get_counts(backend).launches - middle.launches;
}

/* A batch norm with the max-pool that reads it gives, with the pool in its
 * calls, the bits of the two ops one after the other, every operand
 * included; on OpenCL in one command a pass fewer for 2x2 windows where a
 * work-group takes a channel (a CPU device's always, a GPU's up to 2048
 * values), else as many as apart. */
static void test_batchnorm_pool(void **state)
{
    (void)state;
    enum { CAPACITY = 60000 };
    static float values[CAPACITY], apart[CAPACITY], together[CAPACITY];
    /* the stem of ResNet; odd images (floor mode); a channel too large for
       one work-group on OpenCL; 3x3 windows, which the pool runs apart */
    const size_t shapes[][4] = {{5, 3, 4, 4}, {3, 2, 5, 7}, {8, 2, 20, 20}, {2, 3, 7, 7}};
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        bool opencl = strcmp(tdm_backend_name(backend), "opencl") == 0;
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            size_t n = shapes[i][0], ch = shapes[i][1], h = shapes[i][2], w = shapes[i][3];
            size_t k = i == 3 ? 3 : 2;
            norm_case c = {.norm = {n, ch, h * w, 1e-5f, 0.1f, .relu = i != 1},
                           .pool = {n, ch, h, w, k, k, 2, 2}};
            size_t floats = np_layout(&c, values, CAPACITY, 40 + i), launches[2][2];
            float *results[2] = {apart, together};
            for (int fused = 0; fused < 2; fused++) {
                c.buffer = upload(backend, values, floats);
                np_run(backend, &c, fused, launches[fused]);
                download(c.buffer, results[fused], floats);
                tdm_buffer_free(c.buffer);
            }
            assert_memory_equal(apart, together, floats * sizeof(float));
            if (opencl && i != 2) /* the large channel's way depends on the device */
                for (int pass = 0; pass < 2; pass++)
                    assert_int_equal(launches[1][pass], launches[0][pass] - (k == 2 ? 1 : 0));
        }
    }
}

/* The pool's shape must be the batch norm's; its outputs overlap nothing;
 * its gradient lies in its buffer. */
static void test_batchnorm_pool_errors(void **state)
{
    (void)state;
    static float values[4096];
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        norm_case c = {.norm = {2, 3, 16, 1e-5f, 0.1f, .relu = true},
                       .pool = {2, 3, 4, 4, 2, 2, 2, 2}};
        size_t floats = np_layout(&c, values, 4096, 7);
        c.buffer = upload(backend, values, floats);
        tdm_view x = norm_view(&c, NP_X), g = norm_view(&c, NP_GAMMA), bt = norm_view(&c, NP_BETA),
                 mean = norm_view(&c, NP_MEAN), var = norm_view(&c, NP_VAR),
                 sm = norm_view(&c, NP_SAVE_MEAN), si = norm_view(&c, NP_SAVE_INVSTD),
                 y = norm_view(&c, NP_Y), pooled = norm_view(&c, NP_POOLED),
                 argmax = norm_view(&c, NP_ARGMAX), dy = norm_view(&c, NP_DY),
                 dx = norm_view(&c, NP_DX);
        tdm_pool2d_shape wide = {2, 3, 4, 8, 2, 2, 2, 2};
        expect_error(tdm_batchnorm_pool_forward_train(backend, &c.norm, &wide, x, g, bt, mean, var,
                                                      sm, si, y, pooled, argmax),
                     "batchnorm_pool_forward_train: the pool's 2 x 3 images of 4x8 are not the "
                     "batch norm's 2 x 3 of 16 values");
        expect_error(tdm_batchnorm_pool_forward_train(backend, &c.norm, &c.pool, x, g, bt, mean,
                                                      var, sm, si, y, y, argmax),
                     "batchnorm_pool_forward_train: output pooled overlaps an input");
        expect_error(tdm_batchnorm_pool_backward(backend, &c.norm, &c.pool, x, pooled, argmax, y, g,
                                                 sm, si, x, dx, norm_view(&c, NP_DGAMMA),
                                                 norm_view(&c, NP_DBETA)),
                     "batchnorm_pool_backward: output dy overlaps an input");
        expect_error(tdm_batchnorm_pool_backward(backend, &c.norm, &c.pool, x, pooled, argmax, y, g,
                                                 sm, si, dy, pooled, norm_view(&c, NP_DGAMMA),
                                                 norm_view(&c, NP_DBETA)),
                     "batchnorm_pool_backward: output dx overlaps an input");
        tdm_view past_end = {c.buffer, floats - 2};
        expect_error(tdm_batchnorm_pool_backward(backend, &c.norm, &c.pool, x, past_end, argmax, y,
                                                 g, sm, si, dy, dx, norm_view(&c, NP_DGAMMA),
                                                 norm_view(&c, NP_DBETA)),
                     "batchnorm_pool_backward: operand pooled_dy needs floats");
        expect_error(tdm_batchnorm_pool_forward_train(backend, &c.norm, &c.pool, x, g, bt, mean,
                                                      var, sm, si, y, pooled, pooled),
                     "batchnorm_pool_forward_train: output argmax overlaps an input");
        tdm_buffer_free(c.buffer);
    }
}

/* The forward (training or evaluation) with the add in the batch norm's
 * call, or the batch norm and then tdm_add (tdm_add_relu with the ReLU) in
 * place; returns its commands. */
static size_t na_run(tdm_backend *backend, const norm_case *c, bool train, bool together)
{
    tdm_view x = norm_view(c, NA_X), g = norm_view(c, NA_GAMMA), b = norm_view(c, NA_BETA),
             mean = norm_view(c, NA_MEAN), var = norm_view(c, NA_VAR),
             save_mean = norm_view(c, NA_SAVE_MEAN), save_invstd = norm_view(c, NA_SAVE_INVSTD),
             residual = norm_view(c, NA_RESIDUAL), y = norm_view(c, NA_Y);
    tdm_backend_counts start = tdm_backend_get_counts(backend);
    tdm_batchnorm_shape plain = c->norm;
    plain.relu = false;
    if (together && train)
        assert_int_equal(tdm_batchnorm_add_forward_train(backend, &c->norm, x, residual, g, b, mean,
                                                         var, save_mean, save_invstd, y),
                         TDM_OK);
    else if (together)
        assert_int_equal(
            tdm_batchnorm_add_forward_eval(backend, &c->norm, x, residual, g, b, mean, var, y),
            TDM_OK);
    else if (train)
        assert_int_equal(tdm_batchnorm_forward_train(backend, &plain, x, g, b, mean, var, save_mean,
                                                     save_invstd, y),
                         TDM_OK);
    else
        assert_int_equal(tdm_batchnorm_forward_eval(backend, &plain, x, g, b, mean, var, y),
                         TDM_OK);
    size_t count = c->norm.batch * c->norm.channels * c->norm.spatial;
    if (!together)
        assert_int_equal((c->norm.relu ? tdm_add_relu : tdm_add)(backend, count, y, residual, y),
                         TDM_OK);
    return tdm_backend_get_counts(backend).launches - start.launches;
}

/* A batch norm whose output a residual add reads gives, with the add in
 * its call, the bits of the two ops one after the other, every operand
 * included, in training and in evaluation; on OpenCL in one command fewer. */
static void test_batchnorm_add(void **state)
{
    (void)state;
    enum { CAPACITY = 20000 };
    static float values[CAPACITY], apart[CAPACITY], together[CAPACITY];
    /* ResNet's Block; without the ReLU, odd sizes; a channel too large for
       one work-group on OpenCL */
    const size_t shapes[][3] = {{5, 4, 16}, {3, 2, 35}, {8, 2, 400}};
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        bool opencl = strcmp(tdm_backend_name(backend), "opencl") == 0;
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            norm_case c = {
                .norm = {shapes[i][0], shapes[i][1], shapes[i][2], 1e-5f, 0.1f, .relu = i != 1}};
            size_t floats = na_layout(&c, values, CAPACITY, 60 + i);
            for (int train = 0; train < 2; train++) {
                size_t launches[2];
                float *results[2] = {apart, together};
                for (int fused = 0; fused < 2; fused++) {
                    c.buffer = upload(backend, values, floats);
                    launches[fused] = na_run(backend, &c, train, fused);
                    download(c.buffer, results[fused], floats);
                    tdm_buffer_free(c.buffer);
                }
                assert_memory_equal(apart, together, floats * sizeof(float));
                if (opencl)
                    assert_int_equal(launches[1], launches[0] - 1);
            }
        }
    }
}

/* The residual is checked as x is: in its buffer, overlapping no output. */
static void test_batchnorm_add_errors(void **state)
{
    (void)state;
    tdm_backend *backend = test_all_backends.all[0];
    norm_case c = {.norm = {2, 3, 4, 1e-5f, 0.1f, .relu = true}};
    float values[96];
    c.buffer = upload(backend, values, na_layout(&c, values, 96, 1));
    tdm_view x = norm_view(&c, NA_X), g = norm_view(&c, NA_GAMMA), bt = norm_view(&c, NA_BETA),
             mean = norm_view(&c, NA_MEAN), var = norm_view(&c, NA_VAR),
             sm = norm_view(&c, NA_SAVE_MEAN), si = norm_view(&c, NA_SAVE_INVSTD),
             y = norm_view(&c, NA_Y), past_end = {c.buffer, c.at[NA_COUNT] - 2};
    expect_error(
        tdm_batchnorm_add_forward_train(backend, &c.norm, x, y, g, bt, mean, var, sm, si, y),
        "batchnorm_add_forward_train: output y overlaps an input");
    expect_error(
        tdm_batchnorm_add_forward_train(backend, &c.norm, x, past_end, g, bt, mean, var, sm, si, y),
        "batchnorm_add_forward_train: operand residual needs");
    expect_error(tdm_batchnorm_add_forward_eval(backend, &c.norm, x, y, g, bt, mean, var, y),
                 "batchnorm_add_forward_eval: output y overlaps an input");
    expect_error(tdm_batchnorm_add_forward_eval(backend, &c.norm, x, past_end, g, bt, mean, var, y),
                 "batchnorm_add_forward_eval: operand residual needs");
    tdm_buffer_free(c.buffer);
}

/* ResNet's passes on OpenCL. The forward, once its dense matrices are
 * built (a training forward builds them when the parameters have changed),
 * issues 8 commands in training: the stem 2 (im2col, which keeps its col,
 * and the product), its batch norm with the ReLU and the max-pool 1, each
 * block conv 1 (a GEMM with T) and batch norm 1 (4; the second writes the
 * add's sum with its ReLU, tdm_batchnorm_add_*: none for the add), the
 * head with its average pool 1; an evaluation runs the max-pool apart, 1
 * more. The backward, from the gradient the loss writes where it
 * starts (tdm_model_output_gradient: no copy), issues 11: the head with its
 * average pool and the backward of the ReLU after the add 1
 * (small_linear_backward), the add none (both inputs take the add's
 * gradient as their own: no copies), each batch norm 1 (3; the stem's with
 * the max-pool's backward), each block conv 3 (the GEMM of dT, its
 * weights' sums, the input GEMM: 6), conv1's input GEMM adding the block
 * input's share of the add's gradient (beta = 1: no add), the stem's weight
 * gradient 1 (its products with the col its training forward kept). Where
 * small convs are direct kernels (direct_small_convs) the stem's forward is
 * one kernel (7 in training), and each block conv's gradients are one,
 * conv1's adding its dx in place (7). */
static void test_resnet_plans(void **state)
{
    (void)state;
    tdm_model_spec spec;
    assert_int_equal(tdm_model_spec_resnet(4, (tdm_sample_shape){1, 8, 8}, 10, &spec), TDM_OK);
    float input[3 * 64];
    test_fill_random(input, 3 * 64, 5);
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        if (strcmp(tdm_backend_name(backend), "opencl") != 0)
            continue; /* the cpu backend counts no launches */
        tdm_model *model = NULL;
        assert_int_equal(tdm_model_create(backend, &spec, 3, 1, &model), TDM_OK);
        tdm_buffer *x = upload(backend, input, 3 * 64);
        size_t training = backend->direct_small_convs ? 7 : 8;
        for (int train = 0; train < 2; train++) { /* training last, for the backward */
            assert_int_equal(tdm_model_forward(model, (tdm_view){x, 0}, 3, train), TDM_OK);
            tdm_backend_counts before = tdm_backend_get_counts(backend);
            assert_int_equal(tdm_model_forward(model, (tdm_view){x, 0}, 3, train), TDM_OK);
            assert_int_equal(tdm_backend_get_counts(backend).launches - before.launches,
                             train ? training : training + 1);
        }
        tdm_view doutput = tdm_model_output_gradient(model);
        assert_int_equal(tdm_fill(backend, doutput, 3 * 10, 0.25f), TDM_OK);
        tdm_backend_counts before = tdm_backend_get_counts(backend);
        assert_int_equal(tdm_model_backward(model, doutput), TDM_OK);
        assert_int_equal(tdm_backend_get_counts(backend).launches - before.launches,
                         backend->direct_small_convs ? 7 : 11);
        tdm_buffer_free(x);
        tdm_model_free(model);
    }
}

/* The launches of a model's zero_grad. */
static size_t zero_grad_launches(tdm_backend *backend, tdm_model *model)
{
    tdm_backend_counts before = tdm_backend_get_counts(backend);
    assert_int_equal(tdm_model_zero_grad(model), TDM_OK);
    return tdm_backend_get_counts(backend).launches - before.launches;
}

/* tdm_model_sgd_step_zero_grad takes tdm_model_sgd_step's step (the same
 * bits) and leaves the gradients zero, so the next zero_grad has nothing to
 * do until a backward pass writes them again. */
static void test_sgd_step_zero_grad(void **state)
{
    (void)state;
    tdm_model_spec spec;
    assert_int_equal(tdm_model_spec_resnet(2, (tdm_sample_shape){1, 8, 8}, 10, &spec), TDM_OK);
    float input[3 * 64];
    test_fill_random(input, 3 * 64, 6);
    const tdm_sgd_options sgd = {0.1f, 0.9f, 0.0f, 0.0f, false};
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        tdm_model *models[2] = {NULL, NULL}; /* fused, plain */
        tdm_buffer *x = upload(backend, input, 3 * 64);
        for (int i = 0; i < 2; i++) {
            assert_int_equal(tdm_model_create(backend, &spec, 3, 1, &models[i]), TDM_OK);
            assert_int_equal(tdm_model_forward(models[i], (tdm_view){x, 0}, 3, true), TDM_OK);
            tdm_view doutput = tdm_model_output_gradient(models[i]);
            assert_int_equal(tdm_fill(backend, doutput, 3 * 10, 0.25f), TDM_OK);
            assert_int_equal(tdm_model_backward(models[i], doutput), TDM_OK);
        }
        assert_int_equal(tdm_model_sgd_step_zero_grad(models[0], &sgd), TDM_OK);
        assert_int_equal(tdm_model_sgd_step(models[1], &sgd), TDM_OK);
        size_t count = tdm_model_parameter_count(models[0]);
        float *values = malloc(4 * count * sizeof(float));
        assert_non_null(values);
        for (int i = 0; i < 2; i++) {
            assert_int_equal(tdm_model_get_parameters(models[i], values + 2 * i * count), TDM_OK);
            assert_int_equal(tdm_model_get_gradients(models[i], values + (2 * i + 1) * count),
                             TDM_OK);
        }
        assert_memory_equal(values, values + 2 * count, count * sizeof(float));
        bool plain_nonzero = false;
        for (size_t i = 0; i < count; i++) {
            assert_true(values[count + i] == 0.0f);
            plain_nonzero = plain_nonzero || values[3 * count + i] != 0.0f;
        }
        assert_true(plain_nonzero);
        if (strcmp(tdm_backend_name(backend), "opencl") == 0) {
            assert_int_equal(zero_grad_launches(backend, models[0]), 0);
            assert_int_equal(zero_grad_launches(backend, models[1]), 1);
        }
        free(values);
        tdm_buffer_free(x);
        tdm_model_free(models[0]);
        tdm_model_free(models[1]);
    }
}

/* The model's output for a batch, in evaluation mode. */
static void model_output(tdm_model *model, tdm_view x, size_t batch, float *out)
{
    assert_int_equal(tdm_model_forward(model, x, batch, false), TDM_OK);
    tdm_view y = tdm_model_output(model);
    assert_int_equal(
        tdm_buffer_download(y.buffer, y.offset * sizeof(float), out, batch * 10 * sizeof(float)),
        TDM_OK);
}

/* New parameters take effect at the next pass, though the model keeps its
 * block convs' dense matrices from one pass to the next. */
static void test_new_parameters_take_effect(void **state)
{
    (void)state;
    tdm_model_spec spec;
    assert_int_equal(tdm_model_spec_resnet(4, (tdm_sample_shape){1, 8, 8}, 10, &spec), TDM_OK);
    float input[3 * 64], before[30], after[30], fresh[30];
    test_fill_random(input, 3 * 64, 4);
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        tdm_model *model = NULL, *other = NULL;
        assert_int_equal(tdm_model_create(backend, &spec, 3, 1, &model), TDM_OK);
        assert_int_equal(tdm_model_create(backend, &spec, 3, 2, &other), TDM_OK);
        size_t count = tdm_model_parameter_count(model);
        float *params = malloc(count * sizeof(float));
        assert_non_null(params);
        tdm_buffer *x = upload(backend, input, 3 * 64);
        model_output(model, (tdm_view){x, 0}, 3, before);
        assert_int_equal(tdm_model_get_parameters(other, params), TDM_OK);
        assert_int_equal(tdm_model_set_parameters(model, params), TDM_OK);
        model_output(model, (tdm_view){x, 0}, 3, after);
        model_output(other, (tdm_view){x, 0}, 3, fresh);
        assert_memory_equal(after, fresh, sizeof after);
        assert_memory_not_equal(before, after, sizeof after);
        free(params);
        tdm_buffer_free(x);
        tdm_model_free(model);
        tdm_model_free(other);
    }
}

static void test_model_misuse_is_an_error(void **state)
{
    (void)state;
    tdm_backend *backend = test_all_backends.all[0];
    tdm_model_spec spec;
    assert_int_equal(tdm_model_spec_resnet(2, (tdm_sample_shape){1, 8, 8}, 10, &spec), TDM_OK);
    tdm_model *model = NULL;
    assert_int_equal(tdm_model_create(backend, &spec, 4, 1, &model), TDM_OK);
    tdm_buffer *x = upload(backend, NULL, 4 * 64);
    assert_int_equal(tdm_fill(backend, (tdm_view){x, 0}, 4 * 64, 1.0f), TDM_OK);
    expect_error(tdm_model_forward(model, (tdm_view){x, 0}, 5, true), "outside 1..4");
    expect_error(tdm_model_forward(model, (tdm_view){x, 1}, 4, true), "must hold 256 floats");
    assert_int_equal(tdm_model_forward(model, (tdm_view){x, 0}, 4, false), TDM_OK);
    expect_error(tdm_model_backward(model, (tdm_view){x, 0}), "training mode");
    tdm_model_spec block_mismatch;
    tdm_model_spec_init(&block_mismatch);
    block_mismatch.input = (tdm_sample_shape){3, 4, 4};
    assert_int_equal(tdm_model_spec_add_layer(&block_mismatch, "block out=2"), TDM_OK);
    tdm_model *bad = NULL;
    expect_error(tdm_model_create(backend, &block_mismatch, 1, 1, &bad), "keeps its channels");
    assert_null(bad);
    tdm_model_spec text;
    tdm_model_spec_init(&text);
    assert_int_equal(tdm_model_spec_add_layer(&text, "conv2d out=2 size=3"), TDM_ERR_CONFIG);
    assert_non_null(strstr(tdm_last_error(), "unknown layer option 'size'"));
    assert_int_equal(tdm_model_spec_add_layer(&text, "dense out=2"), TDM_ERR_CONFIG);
    assert_int_equal(tdm_model_spec_add_layer(&text, "conv2d out=-2"), TDM_ERR_CONFIG);
    tdm_buffer_free(x);
    tdm_model_free(model);
}

/* PyTorch's default initialisation, bit-identical on every backend. */
static void test_initialization(void **state)
{
    (void)state;
    tdm_model_spec spec;
    assert_int_equal(tdm_model_spec_resnet(4, (tdm_sample_shape){1, 8, 8}, 10, &spec), TDM_OK);
    enum { PARAMS = 398, STATS = 24 };
    float first[PARAMS], params[PARAMS], stats[STATS];
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_model *model = NULL;
        assert_int_equal(tdm_model_create(test_all_backends.all[b], &spec, 2, 7, &model), TDM_OK);
        assert_int_equal(tdm_model_parameter_count(model), PARAMS);
        assert_int_equal(tdm_model_statistics_count(model), STATS);
        assert_int_equal(tdm_model_get_parameters(model, b == 0 ? first : params), TDM_OK);
        if (b > 0)
            assert_memory_equal(first, params, sizeof params);
        assert_int_equal(tdm_model_get_statistics(model, stats), TDM_OK);
        for (size_t i = 0; i < STATS; i++) /* per layer: means 0, then variances 1 */
            assert_true(stats[i] == (i % 8 < 4 ? 0.0f : 1.0f));
        tdm_model_free(model);
    }
    /* Layout: stem conv 36 (fan_in 9), bn 4 + 4, block conv 144 (fan_in 36),
     * bn, conv 144, bn, linear 40 + 10 (fan_in 4). */
    static const struct {
        size_t start, count;
        float bound;
    } uniform[] = {
        {0, 36, 1.0f / 3.0f}, {44, 144, 1.0f / 6.0f}, {196, 144, 1.0f / 6.0f}, {348, 50, 0.5f}};
    for (size_t u = 0; u < 4; u++) {
        float low = 1.0f, high = -1.0f;
        for (size_t i = uniform[u].start; i < uniform[u].start + uniform[u].count; i++) {
            low = first[i] < low ? first[i] : low;
            high = first[i] > high ? first[i] : high;
        }
        assert_true(low >= -uniform[u].bound && high < uniform[u].bound);
        assert_true(high - low > uniform[u].bound); /* spread over the range, not constant */
    }
    static const size_t gammas[] = {36, 188, 340}, betas[] = {40, 192, 344};
    for (size_t l = 0; l < 3; l++)
        for (size_t c = 0; c < 4; c++)
            assert_true(first[gammas[l] + c] == 1.0f && first[betas[l] + c] == 0.0f);
    tdm_model *other = NULL; /* another seed, other weights */
    assert_int_equal(tdm_model_create(test_all_backends.all[0], &spec, 2, 8, &other), TDM_OK);
    assert_int_equal(tdm_model_get_parameters(other, params), TDM_OK);
    assert_true(memcmp(first, params, sizeof params) != 0);
    tdm_model_free(other);
}

/* The LeNet-like model (conv, pool, flatten, linear, relu) trains one step
 * the same way on every backend, from the same seed. */
static void test_lenet_agrees_across_backends(void **state)
{
    (void)state;
    tdm_model_spec spec;
    test_load_model(TANDEM_CONFIG_DIR "/lenet.ini", &spec);
    enum { BATCH = 3, PIXELS = 28 * 28 };
    static float images[BATCH * PIXELS], first[431080], params[431080], logits[BATCH * 10];
    const int32_t labels[BATCH] = {3, 1, 4};
    test_rng rng = {test_base_seed()};
    for (size_t i = 0; i < BATCH * PIXELS; i++)
        images[i] = test_rng_uniform(&rng, 0.0f, 1.0f);
    tdm_sgd_options sgd = {0.05f, 0.9f, 0.0f, 1e-4f, false};
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        tdm_model *model = NULL;
        assert_int_equal(tdm_model_create(backend, &spec, BATCH, 42, &model), TDM_OK);
        assert_int_equal(tdm_model_parameter_count(model), 431080);
        tdm_buffer *x = upload(backend, images, BATCH * PIXELS), *y = upload(backend, labels, 3);
        tdm_buffer *loss = upload(backend, NULL, BATCH * 11);
        assert_int_equal(tdm_model_forward(model, (tdm_view){x, 0}, BATCH, true), TDM_OK);
        tdm_cross_entropy_shape s = {BATCH, 10};
        assert_int_equal(tdm_softmax_cross_entropy(backend, &s, tdm_model_output(model),
                                                   (tdm_view){y, 0}, (tdm_view){loss, 0},
                                                   (tdm_view){0}, (tdm_view){loss, BATCH}),
                         TDM_OK);
        assert_int_equal(tdm_model_backward(model, (tdm_view){loss, BATCH}), TDM_OK);
        assert_int_equal(tdm_model_sgd_step(model, &sgd), TDM_OK);
        assert_int_equal(tdm_model_get_parameters(model, b == 0 ? first : params), TDM_OK);
        tdm_view out = tdm_model_output(model);
        assert_int_equal(
            tdm_buffer_download(out.buffer, out.offset * sizeof(float), logits, sizeof logits),
            TDM_OK);
        for (size_t i = 0; i < BATCH * 10; i++)
            assert_true(isfinite(logits[i]));
        /* One step of lr 0.05 moves a weight by ~1e-3; float rounding of
         * 800-term sums differs by ~1e-7 of it. */
        for (size_t i = 0; b > 0 && i < 431080; i++)
            if (fabs(params[i] - first[i]) > 1e-6)
                fail_msg("parameter %zu: %g on %s, %g on cpu", i, (double)params[i],
                         tdm_backend_name(backend), (double)first[i]);
        tdm_buffer_free(x);
        tdm_buffer_free(y);
        tdm_buffer_free(loss);
        tdm_model_free(model);
    }
}

/* A leaky_relu layer from a [model] line: the model's output is exactly
 * linear(leaky_relu(x)) with its own parameters, on every backend. */
static void test_leaky_relu_layer(void **state)
{
    (void)state;
    tdm_model_spec spec;
    tdm_model_spec_init(&spec);
    spec.input = (tdm_sample_shape){6, 1, 1};
    assert_int_equal(tdm_model_spec_add_layer(&spec, "leaky_relu slope=0.25"), TDM_OK);
    assert_int_equal(tdm_model_spec_add_layer(&spec, "linear out=2"), TDM_OK);
    assert_int_equal(tdm_model_spec_add_layer(&spec, "leaky_relu slope=nan"), TDM_ERR_CONFIG);
    assert_int_equal(spec.layer_count, 2);
    const float x[2 * 6] = {-2.0f, -0.5f, 0.0f, 0.5f,  1.0f,  3.0f,
                            4.0f,  -4.0f, 2.0f, -1.0f, 0.25f, -0.25f};
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        tdm_model *model = NULL;
        float params[14], out[4];
        assert_int_equal(tdm_model_create(backend, &spec, 2, 5, &model), TDM_OK);
        assert_int_equal(tdm_model_parameter_count(model), 14);
        assert_int_equal(tdm_model_get_parameters(model, params), TDM_OK); /* W (2 x 6), b */
        tdm_buffer *input = upload(backend, x, 12);
        assert_int_equal(tdm_model_forward(model, (tdm_view){input, 0}, 2, false), TDM_OK);
        tdm_view y = tdm_model_output(model);
        assert_int_equal(tdm_buffer_download(y.buffer, y.offset * sizeof(float), out, sizeof out),
                         TDM_OK);
        for (size_t n = 0; n < 2; n++)
            for (size_t k = 0; k < 2; k++) {
                double expected = params[12 + k];
                for (size_t i = 0; i < 6; i++) {
                    double v = x[n * 6 + i];
                    expected += params[k * 6 + i] * (v > 0.0 ? v : 0.25 * v);
                }
                assert_true(fabs(out[n * 2 + k] - expected) < 1e-6);
            }
        tdm_buffer_free(input);
        tdm_model_free(model);
    }
}

/* A model that starts with a global average pool, read only by its linear
 * layer through a flatten: the layer pools the model's input itself. The
 * output is linear(mean of each channel), and the weights' gradient of a
 * unit dy is the batch's sum of the means. */
static void test_pooled_head_on_the_input(void **state)
{
    (void)state;
    tdm_model_spec spec;
    tdm_model_spec_init(&spec);
    spec.input = (tdm_sample_shape){2, 3, 3};
    const char *layers[] = {"avgpool", "flatten", "linear out=2"};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(tdm_model_spec_add_layer(&spec, layers[i]), TDM_OK);
    float x[2 * 18], means[4];
    test_fill_random(x, 2 * 18, 13);
    for (size_t r = 0; r < 4; r++) {
        double sum = 0.0;
        for (size_t p = 0; p < 9; p++)
            sum += x[r * 9 + p];
        means[r] = (float)(sum / 9.0);
    }
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        tdm_model *model = NULL;
        float params[6], grads[6], out[4], ones[4] = {1.0f, 1.0f, 1.0f, 1.0f};
        assert_int_equal(tdm_model_create(backend, &spec, 2, 5, &model), TDM_OK);
        assert_int_equal(tdm_model_get_parameters(model, params), TDM_OK); /* W (2 x 2), b */
        tdm_buffer *input = upload(backend, x, 2 * 18);
        assert_int_equal(tdm_model_forward(model, (tdm_view){input, 0}, 2, true), TDM_OK);
        tdm_view y = tdm_model_output(model), dy = tdm_model_output_gradient(model);
        assert_int_equal(tdm_buffer_download(y.buffer, y.offset * sizeof(float), out, sizeof out),
                         TDM_OK);
        assert_int_equal(tdm_buffer_upload(dy.buffer, dy.offset * sizeof(float), ones, sizeof ones),
                         TDM_OK);
        assert_int_equal(tdm_model_backward(model, dy), TDM_OK);
        assert_int_equal(tdm_model_get_gradients(model, grads), TDM_OK);
        for (size_t n = 0; n < 2; n++)
            for (size_t k = 0; k < 2; k++) {
                double expected = params[4 + k] + params[k * 2] * means[n * 2] +
                                  params[k * 2 + 1] * means[n * 2 + 1];
                assert_true(fabs(out[n * 2 + k] - expected) < 1e-6);
                assert_true(fabs(grads[k * 2 + n] - (means[n] + means[2 + n])) < 1e-6);
            }
        assert_true(grads[4] == 2.0f && grads[5] == 2.0f); /* db: the batch's dy */
        tdm_buffer_free(input);
        tdm_model_free(model);
    }
}

/* A model's output, loss-free gradients and statistics after one training
 * pass of x with dy = 1 everywhere; floats into out (at most `room`). */
static size_t train_pass(tdm_backend *backend, const tdm_model_spec *spec, const float *x,
                         size_t x_count, float *out, size_t room)
{
    tdm_model *model = NULL;
    assert_int_equal(tdm_model_create(backend, spec, 4, 5, &model), TDM_OK);
    tdm_buffer *input = upload(backend, x, x_count);
    assert_int_equal(tdm_model_forward(model, (tdm_view){input, 0}, 4, true), TDM_OK);
    tdm_view y = tdm_model_output(model), dy = tdm_model_output_gradient(model);
    size_t outputs = 4 * 3, params = tdm_model_parameter_count(model),
           stats = tdm_model_statistics_count(model);
    assert_true(outputs + params + stats <= room);
    float ones[4 * 3];
    for (size_t i = 0; i < outputs; i++)
        ones[i] = 1.0f;
    download_view(y, out, outputs);
    assert_int_equal(tdm_buffer_upload(dy.buffer, dy.offset * sizeof(float), ones, sizeof ones),
                     TDM_OK);
    assert_int_equal(tdm_model_backward(model, dy), TDM_OK);
    assert_int_equal(tdm_model_get_gradients(model, out + outputs), TDM_OK);
    assert_int_equal(tdm_model_get_statistics(model, out + outputs + params), TDM_OK);
    tdm_buffer_free(input);
    tdm_model_free(model);
    return outputs + params + stats;
}

/* A batch norm read only by a max-pool, without a ReLU between, has the
 * pool run by the batch norm in training: the same bits as the same model
 * with an identity between them (leaky_relu slope=1, which nothing fuses),
 * output, gradients and running statistics, on every backend. */
static void test_norm_pool_model(void **state)
{
    (void)state;
    tdm_model_spec fused, apart;
    tdm_model_spec_init(&fused);
    tdm_model_spec_init(&apart);
    fused.input = apart.input = (tdm_sample_shape){2, 4, 6};
    const char *layers[] = {"batchnorm2d", "maxpool2d kernel=2", "flatten", "linear out=3"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(tdm_model_spec_add_layer(&fused, layers[i]), TDM_OK);
        if (i == 1)
            assert_int_equal(tdm_model_spec_add_layer(&apart, "leaky_relu slope=1"), TDM_OK);
        assert_int_equal(tdm_model_spec_add_layer(&apart, layers[i]), TDM_OK);
    }
    enum { X = 4 * 2 * 4 * 6, ROOM = 256 };
    float x[X], with_pool[ROOM], without[ROOM];
    test_fill_random(x, X, 21);
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        size_t floats = train_pass(backend, &fused, x, X, with_pool, ROOM);
        assert_int_equal(train_pass(backend, &apart, x, X, without, ROOM), floats);
        assert_memory_equal(with_pool, without, floats * sizeof(float));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maxpool_ties_and_nan),
        cmocka_unit_test(test_cross_entropy_bad_label),
        cmocka_unit_test(test_bad_shapes_are_errors),
        cmocka_unit_test(test_bad_linear_arguments),
        cmocka_unit_test(test_conv_dense_forms),
        cmocka_unit_test(test_conv_col_forms),
        cmocka_unit_test(test_conv_direct_forward),
        cmocka_unit_test(test_conv_direct_small_images),
        cmocka_unit_test(test_new_parameters_take_effect),
        cmocka_unit_test(test_model_misuse_is_an_error),
        cmocka_unit_test(test_initialization),
        cmocka_unit_test(test_lenet_agrees_across_backends),
        cmocka_unit_test(test_leaky_relu_layer),
        cmocka_unit_test(test_pooled_head_on_the_input),
        cmocka_unit_test(test_few_tap_weight_gradient_plans),
        cmocka_unit_test(test_linear_plans),
        cmocka_unit_test(test_linear_forms),
        cmocka_unit_test(test_batchnorm_pool),
        cmocka_unit_test(test_batchnorm_pool_errors),
        cmocka_unit_test(test_norm_pool_model),
        cmocka_unit_test(test_batchnorm_add),
        cmocka_unit_test(test_batchnorm_add_errors),
        cmocka_unit_test(test_resnet_plans),
        cmocka_unit_test(test_sgd_step_zero_grad),
    };
    return cmocka_run_group_tests(tests, test_open_all_backends, test_close_all_backends);
}

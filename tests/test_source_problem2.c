/* The source's problem 2 (docs/experiments.md, section 2), answered by the library:
 * - the sigmoid chain f = w3 s(w2 s(w1 x)) built as a model of the library's
 *   layers; its backward pass equals the closed forms for several (w, x);
 * - shape inference on the LeNet-like model of configs/lenet.ini gives the
 *   answers to (g) and (h): 20x24x24, 20x12x12, 50x8x8, 50x4x4. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common.h"

static double s(double u)
{
    return 1.0 / (1.0 + exp(-u));
}

/* Three weightless linears with sigmoids between: f = w3 s(w2 s(w1 x)). */
static tdm_model *sigmoid_chain(tdm_backend *backend)
{
    tdm_model_spec spec;
    tdm_model_spec_init(&spec);
    spec.input = (tdm_sample_shape){1, 1, 1};
    const char *layers[] = {"linear out=1 bias=false", "sigmoid", "linear out=1 bias=false",
                            "sigmoid", "linear out=1 bias=false"};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(tdm_model_spec_add_layer(&spec, layers[i]), TDM_OK);
    tdm_model *model = NULL;
    assert_int_equal(tdm_model_create(backend, &spec, 1, 0, &model), TDM_OK);
    assert_int_equal(tdm_model_parameter_count(model), 3);
    return model;
}

/* f and its gradient (df/dw1, df/dw2, df/dw3) from the library. */
static void library_gradient(tdm_backend *backend, tdm_model *model, tdm_buffer *io,
                             const float w[3], float x, float *f, float grad[3])
{
    const float one = 1.0f;
    assert_int_equal(tdm_model_set_parameters(model, w), TDM_OK);
    assert_int_equal(tdm_buffer_upload(io, 0, &x, sizeof x), TDM_OK);
    assert_int_equal(tdm_buffer_upload(io, sizeof x, &one, sizeof one), TDM_OK);
    assert_int_equal(tdm_model_zero_grad(model), TDM_OK);
    assert_int_equal(tdm_model_forward(model, (tdm_view){io, 0}, 1, true), TDM_OK);
    tdm_view out = tdm_model_output(model);
    assert_int_equal(tdm_buffer_download(out.buffer, out.offset * sizeof(float), f, sizeof *f),
                     TDM_OK);
    assert_int_equal(tdm_model_backward(model, (tdm_view){io, 1}), TDM_OK);
    assert_int_equal(tdm_model_get_gradients(model, grad), TDM_OK);
    (void)backend;
}

/* Float32 through three layers: a few ulps, 1e-5 relative with margin. */
static void expect_close(double got, double want, const char *what, const float w[3], float x)
{
    if (fabs(got - want) > 1e-5 * fmax(fabs(want), 1e-3))
        fail_msg("%s = %.9g, closed form %.9g (w = %g %g %g, x = %g)", what, got, want,
                 (double)w[0], (double)w[1], (double)w[2], (double)x);
}

static void test_sigmoid_chain_closed_forms(void **state)
{
    (void)state;
    static const float cases[][4] = {
        /* w1, w2, w3, x */
        {0.5f, -1.0f, 2.0f, 1.5f},  {1.0f, 1.0f, 1.0f, 0.0f},    {-2.0f, 0.3f, -0.7f, 0.25f},
        {3.0f, -2.5f, 0.1f, -1.0f}, {0.01f, 4.0f, -3.0f, 10.0f},
    };
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        tdm_model *model = sigmoid_chain(backend);
        tdm_buffer *io = NULL;
        assert_int_equal(tdm_buffer_alloc(backend, 2 * sizeof(float), &io), TDM_OK);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            const float *w = cases[i], x = cases[i][3];
            float f, grad[3];
            library_gradient(backend, model, io, w, x, &f, grad);
            double s1 = s((double)w[0] * x), s2 = s((double)w[1] * s1);
            expect_close(f, w[2] * s2, "f", w, x);
            expect_close(grad[2], s2, "df/dw3", w, x);
            expect_close(grad[1], w[2] * s2 * (1 - s2) * s1, "df/dw2", w, x);
            expect_close(grad[0], w[2] * s2 * (1 - s2) * w[1] * s1 * (1 - s1) * x, "df/dw1", w, x);
        }
        printf("sigmoid chain on %s: %zu cases match the closed forms\n", tdm_backend_name(backend),
               sizeof cases / sizeof cases[0]);
        tdm_buffer_free(io);
        tdm_model_free(model);
    }
}

static void test_lenet_shapes(void **state)
{
    (void)state;
    tdm_model_spec spec;
    test_load_model(TANDEM_CONFIG_DIR "/lenet.ini", &spec);
    tdm_layer_info infos[16];
    size_t count = 0;
    assert_int_equal(tdm_model_spec_describe(&spec, infos, 16, &count), TDM_OK);
    static const size_t expected[4][3] = {{20, 24, 24}, {20, 12, 12}, {50, 8, 8}, {50, 4, 4}};
    assert_true(count >= 4);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(infos[i].output.channels, expected[i][0]);
        assert_int_equal(infos[i].output.height, expected[i][1]);
        assert_int_equal(infos[i].output.width, expected[i][2]);
    }
    /* (h): the second conv has 50 filters, each 5x5 and 20 channels deep. */
    assert_int_equal(infos[2].parameters, 50 * 20 * 5 * 5 + 50);
}

/* Shape rules: out = floor((in + 2 pad - kernel) / stride) + 1, pool out = floor(in / 2). */
static void test_shape_rules(void **state)
{
    (void)state;
    tdm_conv2d_shape conv = {1, 1, 7, 9, 1, 3, 3, 2, 2, 1, 0};
    assert_int_equal(tdm_conv2d_out_height(&conv), 4); /* (7 + 2 - 3) / 2 + 1 */
    assert_int_equal(tdm_conv2d_out_width(&conv), 4);  /* (9 - 3) / 2 + 1 */
    tdm_pool2d_shape pool = {1, 1, 5, 7, 2, 2, 2, 2};
    assert_int_equal(tdm_pool2d_out_height(&pool), 2);
    assert_int_equal(tdm_pool2d_out_width(&pool), 3);
    tdm_model_spec spec;
    tdm_model_spec_init(&spec);
    spec.input = (tdm_sample_shape){1, 4, 4};
    assert_int_equal(tdm_model_spec_add_layer(&spec, "conv2d out=2 kernel=5"), TDM_OK);
    tdm_layer_info infos[4];
    size_t count = 0;
    assert_int_equal(tdm_model_spec_describe(&spec, infos, 4, &count), TDM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(tdm_last_error(), "layer 1 (conv2d) on a 1x4x4 input"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigmoid_chain_closed_forms),
        cmocka_unit_test(test_lenet_shapes),
        cmocka_unit_test(test_shape_rules),
    };
    return cmocka_run_group_tests(tests, test_open_all_backends, test_close_all_backends);
}

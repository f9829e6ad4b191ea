/* Golden values from PyTorch: each fixture in tests/fixtures/ (written by
 * tools/make_fixtures.py) holds a model's input, initial state, outputs,
 * gradients and the state after SGD steps, computed by PyTorch. Every
 * backend, started from the same initial state, must reproduce them.
 *
 * Tolerance: PyTorch and tandem sum in different orders, so results differ by
 * float32 rounding. We require max |x - y| / max(|y|, rms(y)) <= 1e-4 for
 * outputs, losses, running statistics and parameters, and <= 5e-5 for
 * gradients. Measured on the cpu backend and PoCL: at most 1.0e-5 (the
 * Block's loss, a sum of 512 products that partly cancel) and 2.2e-6 on any
 * gradient, so both bounds leave a 10-20x margin for other devices' rounding;
 * a wrong formula (a missing term, a transposed weight, a biased variance
 * where the unbiased belongs) is off by 1e-3 or more. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.h"

enum { MAX_FIXTURE_TENSORS = 16 };

typedef struct named_tensor {
    char name[32];
    size_t count;
    float *values;
} named_tensor;

typedef struct fixture {
    char kind[16];
    size_t channels, batch, in_channels, height, width, steps;
    float lr, momentum, weight_decay;
    named_tensor tensors[MAX_FIXTURE_TENSORS];
    size_t tensor_count;
} fixture;

static void read_values(FILE *file, named_tensor *t)
{
    t->values = malloc((t->count + 1) * sizeof(float));
    assert_non_null(t->values);
    for (size_t i = 0; i < t->count; i++)
        assert_int_equal(fscanf(file, "%f", &t->values[i]), 1);
}

static void load_fixture(const char *name, fixture *f)
{
    char path[512], word[32];
    snprintf(path, sizeof path, "%s/%s.txt", TANDEM_FIXTURE_DIR, name);
    FILE *file = fopen(path, "r");
    if (!file)
        fail_msg("cannot open fixture %s", path);
    memset(f, 0, sizeof *f);
    char line[256];
    assert_non_null(fgets(line, sizeof line, file)); /* the provenance comment */
    assert_int_equal(fscanf(file, " model %15s %zu", f->kind, &f->channels), 2);
    assert_int_equal(
        fscanf(file, " input %zu %zu %zu %zu", &f->batch, &f->in_channels, &f->height, &f->width),
        4);
    assert_int_equal(
        fscanf(file, " sgd %zu %f %f %f", &f->steps, &f->lr, &f->momentum, &f->weight_decay), 4);
    while (fscanf(file, " %31s", word) == 1) {
        assert_string_equal(word, "tensor");
        assert_true(f->tensor_count < MAX_FIXTURE_TENSORS);
        named_tensor *t = &f->tensors[f->tensor_count++];
        assert_int_equal(fscanf(file, " %31s %zu", t->name, &t->count), 2);
        read_values(file, t);
    }
    fclose(file);
}

static void free_fixture(fixture *f)
{
    for (size_t i = 0; i < f->tensor_count; i++)
        free(f->tensors[i].values);
}

static const named_tensor *tensor(const fixture *f, const char *name)
{
    for (size_t i = 0; i < f->tensor_count; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    fail_msg("fixture has no tensor '%s'", name);
    return NULL;
}

static tdm_model_spec spec_of(const fixture *f)
{
    tdm_model_spec spec;
    tdm_sample_shape input = {f->in_channels, f->height, f->width};
    if (strcmp(f->kind, "resnet") == 0) {
        assert_int_equal(tdm_model_spec_resnet(f->channels, input, 10, &spec), TDM_OK);
        return spec;
    }
    tdm_model_spec_init(&spec);
    spec.input = input;
    char layer[64];
    snprintf(layer, sizeof layer, "block out=%zu", f->channels);
    /* "block": one; "blocks": two in a row */
    for (int i = 0; i < (strcmp(f->kind, "blocks") == 0 ? 2 : 1); i++)
        assert_int_equal(tdm_model_spec_add_layer(&spec, layer), TDM_OK);
    return spec;
}

static void expect_close(const char *fixture_name, tdm_backend *backend, const char *what,
                         const float *got, const named_tensor *want, double tolerance)
{
    double error = test_max_relative_error(got, want->values, want->count);
    printf("  %-18s %-16s max relative error %.2e (tolerance %.0e)\n", fixture_name, what, error,
           tolerance);
    if (!(error <= tolerance))
        fail_msg("%s on %s: %s differs from PyTorch: max relative error %.3g > %.0e", fixture_name,
                 tdm_backend_description(backend), what, error, tolerance);
}

static const double output_tolerance = 1e-4, gradient_tolerance = 5e-5;

/* Device buffers of one run: input, labels, per-sample losses, dlogits. */
typedef struct run_buffers {
    tdm_buffer *input, *labels, *losses, *doutput;
} run_buffers;

static void upload_floats(tdm_buffer *buffer, const float *values, size_t count)
{
    assert_int_equal(tdm_buffer_upload(buffer, 0, values, count * sizeof(float)), TDM_OK);
}

static tdm_buffer *new_buffer(tdm_backend *backend, size_t floats)
{
    tdm_buffer *buffer = NULL;
    assert_int_equal(tdm_buffer_alloc(backend, floats * sizeof(float), &buffer), TDM_OK);
    return buffer;
}

static void make_run_buffers(tdm_backend *backend, const fixture *f, size_t output_size,
                             run_buffers *b)
{
    const named_tensor *input = tensor(f, "input");
    b->input = new_buffer(backend, input->count);
    upload_floats(b->input, input->values, input->count);
    b->labels = new_buffer(backend, f->batch);
    b->losses = new_buffer(backend, f->batch);
    b->doutput = new_buffer(backend, f->batch * output_size);
    if (strcmp(f->kind, "resnet") == 0) {
        const named_tensor *labels = tensor(f, "labels");
        int32_t ints[1024];
        assert_true(f->batch <= 1024);
        for (size_t i = 0; i < f->batch; i++)
            ints[i] = (int32_t)labels->values[i];
        assert_int_equal(tdm_buffer_upload(b->labels, 0, ints, f->batch * sizeof(int32_t)), TDM_OK);
    } else {
        upload_floats(b->doutput, tensor(f, "upstream")->values, f->batch * output_size);
    }
}

static void free_run_buffers(run_buffers *b)
{
    tdm_buffer_free(b->input);
    tdm_buffer_free(b->labels);
    tdm_buffer_free(b->losses);
    tdm_buffer_free(b->doutput);
}

/* One training step's forward and backward; returns the loss PyTorch
 * reports (the batch mean of the cross-entropy, or sum(out * upstream)). */
static size_t output_size_of(const tdm_model *model)
{
    tdm_sample_shape out = tdm_model_output_shape(model);
    return out.channels * out.height * out.width;
}

static double forward_backward(tdm_backend *backend, tdm_model *model, const fixture *f,
                               run_buffers *b, float *output)
{
    size_t output_size = output_size_of(model), count = f->batch * output_size;
    assert_int_equal(tdm_model_zero_grad(model), TDM_OK);
    assert_int_equal(tdm_model_forward(model, (tdm_view){b->input, 0}, f->batch, true), TDM_OK);
    assert_int_equal(tdm_buffer_download(tdm_model_output(model).buffer,
                                         tdm_model_output(model).offset * sizeof(float), output,
                                         count * sizeof(float)),
                     TDM_OK);
    double loss = 0.0;
    if (strcmp(f->kind, "resnet") == 0) {
        tdm_cross_entropy_shape s = {f->batch, output_size};
        float losses[1024];
        assert_int_equal(tdm_softmax_cross_entropy(
                             backend, &s, tdm_model_output(model), (tdm_view){b->labels, 0},
                             (tdm_view){b->losses, 0}, (tdm_view){0}, (tdm_view){b->doutput, 0}),
                         TDM_OK);
        assert_int_equal(tdm_buffer_download(b->losses, 0, losses, f->batch * sizeof(float)),
                         TDM_OK);
        for (size_t i = 0; i < f->batch; i++)
            loss += losses[i] / (double)f->batch;
    } else {
        const float *upstream = tensor(f, "upstream")->values;
        for (size_t i = 0; i < count; i++)
            loss += (double)output[i] * upstream[i];
    }
    assert_int_equal(tdm_model_backward(model, (tdm_view){b->doutput, 0}), TDM_OK);
    return loss;
}

static void check_fixture_on(const char *name, const fixture *f, tdm_backend *backend)
{
    tdm_model_spec spec = spec_of(f);
    tdm_model *model = NULL;
    assert_int_equal(tdm_model_create(backend, &spec, f->batch, 1, &model), TDM_OK);
    size_t n_params = tdm_model_parameter_count(model), n_stats = tdm_model_statistics_count(model);
    assert_int_equal(n_params, tensor(f, "params_initial")->count);
    assert_int_equal(n_stats, tensor(f, "stats_initial")->count);
    assert_int_equal(tdm_model_set_parameters(model, tensor(f, "params_initial")->values), TDM_OK);
    assert_int_equal(tdm_model_set_statistics(model, tensor(f, "stats_initial")->values), TDM_OK);

    size_t output_size = output_size_of(model);
    run_buffers buffers;
    make_run_buffers(backend, f, output_size, &buffers);
    float *output = malloc(f->batch * output_size * sizeof(float));
    float *params = malloc(n_params * sizeof(float)), *stats = malloc(n_stats * sizeof(float));
    assert_true(output && params && stats);
    tdm_sgd_options sgd = {f->lr, f->momentum, 0.0f, f->weight_decay, false};

    float loss = (float)forward_backward(backend, model, f, &buffers, output);
    expect_close(name, backend, "train output", output, tensor(f, "output"), output_tolerance);
    expect_close(name, backend, "loss", &loss, tensor(f, "loss"), output_tolerance);
    assert_int_equal(tdm_model_get_gradients(model, params), TDM_OK);
    expect_close(name, backend, "gradients", params, tensor(f, "grads"), gradient_tolerance);
    assert_int_equal(tdm_model_get_statistics(model, stats), TDM_OK);
    expect_close(name, backend, "running stats", stats, tensor(f, "stats_after_step"),
                 output_tolerance);
    assert_int_equal(tdm_model_sgd_step(model, &sgd), TDM_OK);
    for (size_t step = 1; step < f->steps; step++) {
        forward_backward(backend, model, f, &buffers, output);
        assert_int_equal(tdm_model_sgd_step(model, &sgd), TDM_OK);
    }
    assert_int_equal(tdm_model_get_parameters(model, params), TDM_OK);
    expect_close(name, backend, "params after SGD", params, tensor(f, "params_after"),
                 output_tolerance);
    assert_int_equal(tdm_model_get_statistics(model, stats), TDM_OK);
    expect_close(name, backend, "final stats", stats, tensor(f, "stats_after"), output_tolerance);
    assert_int_equal(tdm_model_forward(model, (tdm_view){buffers.input, 0}, f->batch, false),
                     TDM_OK);
    tdm_view out = tdm_model_output(model);
    assert_int_equal(tdm_buffer_download(out.buffer, out.offset * sizeof(float), output,
                                         f->batch * output_size * sizeof(float)),
                     TDM_OK);
    expect_close(name, backend, "eval output", output, tensor(f, "eval_output"), output_tolerance);

    free(output);
    free(params);
    free(stats);
    free_run_buffers(&buffers);
    tdm_model_free(model);
}

static void test_fixture(void **state)
{
    const char *name = *state;
    fixture f;
    load_fixture(name, &f);
    for (size_t b = 0; b < test_all_backends.count; b++)
        check_fixture_on(name, &f, test_all_backends.all[b]);
    free_fixture(&f);
}

int main(void)
{
    static const char *const fixtures[] = {"block1",           "block2",           "block4",
                                           "resnet1",          "resnet2",          "resnet4",
                                           "resnet4_batch128", "resnet2_momentum", "blocks2"};
    enum { FIXTURE_COUNT = sizeof fixtures / sizeof fixtures[0] };
    struct CMUnitTest tests[FIXTURE_COUNT];
    for (size_t i = 0; i < FIXTURE_COUNT; i++)
        tests[i] = (struct CMUnitTest){fixtures[i], test_fixture, NULL, NULL, (void *)fixtures[i]};
    return _cmocka_run_group_tests("pytorch", tests, FIXTURE_COUNT, test_open_all_backends,
                                   test_close_all_backends);
}

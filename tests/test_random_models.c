/* Random models, as a [model] section may stack layers: each trains one pass
 * with the bits of the same model with an identity (leaky_relu slope=1,
 * which nothing fuses) after every layer, on every backend, so the model's
 * fusions (a ReLU into a batch norm or an add, a max-pool into a batch norm,
 * a global pool into a linear layer, a ReLU's mask into a linear layer's
 * backward, gradients shared and added in place) compute what the layers
 * one at a time do, whatever their neighbours. And every OpenCL device, in
 * its own forms and in a GPU's (work-groups of 16 reductions, small convs
 * as direct kernels), agrees with the cpu backend (check_against_cpu says
 * within what, and why). Parameters are PyTorch's initial ones, each moved
 * a little (move_parameters says why). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.h"

enum { MODELS = 40, BATCH = 8, CLASSES = 3, MOST_BODY_LAYERS = 6, MAX_LAYER_TEXT = 96 };

typedef struct random_model {
    tdm_model_spec spec;
    char text[TDM_MAX_LAYERS][MAX_LAYER_TEXT]; /* the layers, for the messages */
    size_t count;
} random_model;

static size_t pick(test_rng *rng, size_t choices)
{
    return (size_t)(test_rng_next(rng) % choices);
}

/* Appends a layer if the model still describes (its input fits). */
static bool try_layer(random_model *m, const char *text)
{
    tdm_model_spec grown = m->spec;
    tdm_layer_info infos[4 * TDM_MAX_LAYERS];
    size_t lines = 0;
    if (tdm_model_spec_add_layer(&grown, text) != TDM_OK ||
        tdm_model_spec_describe(&grown, infos, 4 * TDM_MAX_LAYERS, &lines) != TDM_OK) {
        tdm_clear_error();
        return false;
    }
    m->spec = grown;
    snprintf(m->text[m->count++], MAX_LAYER_TEXT, "%s", text);
    return true;
}

/* The channels of the model's output so far. */
static size_t channels_now(const random_model *m)
{
    tdm_layer_info infos[4 * TDM_MAX_LAYERS];
    size_t lines = 0;
    if (m->count == 0)
        return m->spec.input.channels;
    if (tdm_model_spec_describe(&m->spec, infos, 4 * TDM_MAX_LAYERS, &lines) != TDM_OK)
        fail_msg("describe: %s", tdm_last_error());
    return infos[lines - 1].output.channels;
}

/* One body layer of a random kind and options. */
static void random_layer(test_rng *rng, const random_model *m, char *text)
{
    switch (pick(rng, 9)) {
    case 0:
    case 1:
        snprintf(text, MAX_LAYER_TEXT, "conv2d out=%zu kernel=%zu stride=%zu padding=%zu bias=%s",
                 1 + pick(rng, 5), 1 + pick(rng, 3), 1 + pick(rng, 2), pick(rng, 2),
                 pick(rng, 2) ? "true" : "false");
        break;
    case 2: snprintf(text, MAX_LAYER_TEXT, "batchnorm2d"); break;
    case 3: snprintf(text, MAX_LAYER_TEXT, "relu"); break;
    case 4:
        snprintf(text, MAX_LAYER_TEXT, pick(rng, 2) ? "leaky_relu slope=0.1" : "sigmoid");
        break;
    case 5:
        snprintf(text, MAX_LAYER_TEXT, "maxpool2d kernel=%zu stride=%zu", 2 + pick(rng, 2),
                 1 + pick(rng, 2));
        break;
    case 6: snprintf(text, MAX_LAYER_TEXT, "block out=%zu", channels_now(m)); break;
    case 7: snprintf(text, MAX_LAYER_TEXT, "avgpool"); break;
    default: snprintf(text, MAX_LAYER_TEXT, "batchnorm2d"); break;
    }
}

/* An input of 1-3 channels and 3-9 pixels a side, 1 to 6 body layers that
 * fit it, then flatten, maybe a hidden linear layer and its ReLU, and a
 * linear layer to CLASSES scores. */
static random_model make_model(test_rng *rng)
{
    random_model m;
    memset(&m, 0, sizeof m);
    tdm_model_spec_init(&m.spec);
    m.spec.input = (tdm_sample_shape){1 + pick(rng, 3), 3 + pick(rng, 7), 3 + pick(rng, 7)};
    size_t body = 1 + pick(rng, MOST_BODY_LAYERS);
    for (size_t tries = 0; m.count < body && tries < 50; tries++) {
        char text[MAX_LAYER_TEXT];
        random_layer(rng, &m, text);
        try_layer(&m, text);
    }
    assert_true(try_layer(&m, "flatten"));
    if (pick(rng, 2)) {
        assert_true(try_layer(&m, "linear out=4"));
        assert_true(try_layer(&m, "relu"));
    }
    char head[MAX_LAYER_TEXT];
    snprintf(head, sizeof head, "linear out=%d", CLASSES);
    assert_true(try_layer(&m, head));
    return m;
}

/* The same layers with an identity after each but the last. */
static tdm_model_spec with_identities(const random_model *m)
{
    tdm_model_spec apart;
    tdm_model_spec_init(&apart);
    apart.input = m->spec.input;
    for (size_t i = 0; i < m->count; i++) {
        assert_int_equal(tdm_model_spec_add_layer(&apart, m->text[i]), TDM_OK);
        if (i + 1 < m->count)
            assert_int_equal(tdm_model_spec_add_layer(&apart, "leaky_relu slope=1"), TDM_OK);
    }
    return apart;
}

/* What one training pass computed: the output, every gradient after a
 * backward pass of a random dy, the running statistics, then the output in
 * evaluation mode. */
typedef struct pass_results {
    float *values;
    size_t count;
} pass_results;

/* PyTorch's initial parameters, each moved by up to 0.1: with its beta = 0,
 * a ReLU after a batch norm of a padded conv's zero-mean input meets values
 * that are 0 but for rounding, where two devices' rounding picks different
 * sides of the kink (a whole ring of the map masked on one, not the other). */
static void move_parameters(tdm_model *model, uint64_t seed)
{
    size_t count = tdm_model_parameter_count(model);
    float *values = malloc((count ? count : 1) * sizeof(float));
    float *moves = malloc((count ? count : 1) * sizeof(float));
    assert_true(values && moves);
    test_fill_random(moves, count, seed);
    assert_int_equal(tdm_model_get_parameters(model, values), TDM_OK);
    for (size_t i = 0; i < count; i++)
        values[i] += 0.1f * moves[i];
    assert_int_equal(tdm_model_set_parameters(model, values), TDM_OK);
    free(values);
    free(moves);
}

static void download_view(tdm_view view, float *out, size_t floats)
{
    assert_int_equal(
        tdm_buffer_download(view.buffer, view.offset * sizeof(float), out, floats * sizeof(float)),
        TDM_OK);
}

static pass_results train_pass(tdm_backend *backend, const tdm_model_spec *spec, const float *x,
                               const float *dy, uint64_t seed)
{
    tdm_model *model = NULL;
    if (tdm_model_create(backend, spec, BATCH, 7, &model) != TDM_OK)
        fail_msg("model on %s: %s", tdm_backend_description(backend), tdm_last_error());
    move_parameters(model, seed);
    size_t in = spec->input.channels * spec->input.height * spec->input.width;
    size_t outputs = BATCH * CLASSES, params = tdm_model_parameter_count(model);
    size_t stats = tdm_model_statistics_count(model);
    pass_results r = {malloc((2 * outputs + params + stats) * sizeof(float)),
                      2 * outputs + params + stats};
    tdm_buffer *input = NULL;
    assert_non_null(r.values);
    assert_int_equal(tdm_buffer_alloc(backend, BATCH * in * sizeof(float), &input), TDM_OK);
    assert_int_equal(tdm_buffer_upload(input, 0, x, BATCH * in * sizeof(float)), TDM_OK);
    assert_int_equal(tdm_model_forward(model, (tdm_view){input, 0}, BATCH, true), TDM_OK);
    download_view(tdm_model_output(model), r.values, outputs);
    tdm_view gradient = tdm_model_output_gradient(model);
    assert_int_equal(tdm_buffer_upload(gradient.buffer, gradient.offset * sizeof(float), dy,
                                       outputs * sizeof(float)),
                     TDM_OK);
    assert_int_equal(tdm_model_backward(model, gradient), TDM_OK);
    assert_int_equal(tdm_model_get_gradients(model, r.values + outputs), TDM_OK);
    assert_int_equal(tdm_model_get_statistics(model, r.values + outputs + params), TDM_OK);
    assert_int_equal(tdm_model_forward(model, (tdm_view){input, 0}, BATCH, false), TDM_OK);
    download_view(tdm_model_output(model), r.values + outputs + params + stats, outputs);
    tdm_buffer_free(input);
    tdm_model_free(model);
    return r;
}

static void print_model(const random_model *m)
{
    printf("  input %zux%zux%zu:", m->spec.input.channels, m->spec.input.height,
           m->spec.input.width);
    for (size_t i = 0; i < m->count; i++)
        printf("%s %s", i ? "," : "", m->text[i]);
    printf("\n");
}

/* Opens every OpenCL device again in the forms a GPU takes. */
static void open_gpu_forms(test_backends *gpu_forms)
{
    const char *const settings[][2] = {{"TANDEM_OPENCL_MAX_GROUP", "16"},
                                       {"TANDEM_OPENCL_REDUCTION_GROUP", "16"},
                                       {"TANDEM_OPENCL_DIRECT_CONVS", "1"}};
    test_backends_open_with(gpu_forms, settings, 3);
}

/* One model on one backend: fused and apart give the same bits; the fused
 * plan's results go back for the comparison with the cpu backend. */
static pass_results check_plans(tdm_backend *backend, const random_model *m, const float *x,
                                const float *dy, uint64_t seed)
{
    tdm_model_spec apart = with_identities(m);
    pass_results fused = train_pass(backend, &m->spec, x, dy, seed);
    pass_results alone = train_pass(backend, &apart, x, dy, seed);
    assert_int_equal(fused.count, alone.count);
    if (memcmp(fused.values, alone.values, fused.count * sizeof(float)) != 0) {
        print_model(m);
        fail_msg("on %s the model's plan differs from its layers one at a time (largest "
                 "difference %.3g)",
                 tdm_backend_description(backend),
                 test_max_relative_error(fused.values, alone.values, fused.count));
    }
    free(alone.values);
    return fused;
}

/* The fused results of another backend against the cpu backend's: outputs
 * within 5e-4, gradients and running statistics within 2e-3. Looser than
 * test_pytorch's 1e-4 and 5e-5: random stacks are often ill-conditioned
 * (batch norms over 8 values of 1x1 maps, six in a row in three Blocks; a
 * batch norm of a constant channel, whose gradients are rounding noise
 * around 0), and float32 rounding in another order grows there. Measured
 * over 30 base seeds (1200 models, PoCL and rusticl in their forms and a
 * GPU's): at most 6.2e-5 and 4.0e-4. A wrong kernel or plan is off by far
 * more (a ring of a map masked on one side: 0.7). */
static void check_against_cpu(const tdm_backend *backend, const random_model *m,
                              const pass_results *got, const pass_results *cpu)
{
    size_t outputs = BATCH * CLASSES, rest = got->count - 2 * outputs;
    assert_int_equal(got->count, cpu->count);
    double output_error = fmax(test_max_relative_error(got->values, cpu->values, outputs),
                               test_max_relative_error(got->values + outputs + rest,
                                                       cpu->values + outputs + rest, outputs));
    double rest_error = test_max_relative_error(got->values + outputs, cpu->values + outputs, rest);
    if (!(output_error <= 5e-4 && rest_error <= 2e-3)) {
        print_model(m);
        fail_msg("%s disagrees with the cpu backend: outputs %.3g (5e-4), gradients and "
                 "statistics %.3g (2e-3)",
                 tdm_backend_description(backend), output_error, rest_error);
    }
}

static void test_random_models(void **state)
{
    (void)state;
    test_backends gpu_forms;
    open_gpu_forms(&gpu_forms);
    test_rng rng = {test_base_seed() ^ 0x6d6f64656c73ull};
    for (size_t model = 0; model < MODELS; model++) {
        random_model m = make_model(&rng);
        size_t in = m.spec.input.channels * m.spec.input.height * m.spec.input.width;
        float *x = malloc(BATCH * in * sizeof(float)), dy[BATCH * CLASSES];
        assert_non_null(x);
        test_fill_random(x, BATCH * in, test_rng_next(&rng));
        test_fill_random(dy, BATCH * CLASSES, test_rng_next(&rng));
        uint64_t seed = test_rng_next(&rng);
        print_model(&m);
        pass_results cpu = check_plans(test_all_backends.all[0], &m, x, dy, seed);
        for (size_t b = 1; b < test_all_backends.count; b++) {
            tdm_backend *sides[2] = {test_all_backends.all[b], gpu_forms.all[b]};
            for (size_t s = 0; s < 2; s++) {
                pass_results got = check_plans(sides[s], &m, x, dy, seed);
                check_against_cpu(sides[s], &m, &got, &cpu);
                free(got.values);
            }
        }
        free(cpu.values);
        free(x);
    }
    test_backends_close(&gpu_forms);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_models),
    };
    return cmocka_run_group_tests(tests, test_open_all_backends, test_close_all_backends);
}

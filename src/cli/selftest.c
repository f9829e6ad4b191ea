/* tandem selftest: the chosen device against the cpu backend, on what tandem
 * runs there. SGEMM 512^3 (timed); two training steps of the configured
 * model on random samples (the forward pass in training and in evaluation,
 * the loss, every parameter's gradient, SGD, the running statistics); EM by
 * both methods on random binary rows. The tolerances are those of
 * tests/test_pytorch.c and tests/test_em.c, which justify them. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/errors.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/rng.h"

/* max |x - y| / max(|y|, rms(y)) over the entries: float32 rounding in
 * another order is ~1e-6 of this; NaN or infinity anywhere gives NaN, which
 * no tolerance passes. */
static double relative_error(const float *x, const float *y, size_t count)
{
    double squares = 0.0, worst = 0.0;
    for (size_t i = 0; i < count; i++)
        squares += (double)y[i] * y[i];
    double rms = count ? sqrt(squares / (double)count) : 0.0;
    for (size_t i = 0; i < count; i++) {
        double diff = fabs((double)x[i] - y[i]);
        if (!isfinite(diff) || !isfinite(squares))
            return NAN;
        worst = fmax(worst, diff / fmax(fmax(fabs(y[i]), rms), 1e-30));
    }
    return worst;
}

/* One compared result: prints it; false past its tolerance. */
static bool report(const char *what, double error, double tolerance)
{
    bool ok = error <= tolerance;
    if (isnan(error))
        printf("  %-26s not finite on a side (tolerance %.0e): FAILED\n", what, tolerance);
    else
        printf("  %-26s %.2e (tolerance %.0e)%s\n", what, error, tolerance, ok ? "" : ": FAILED");
    return ok;
}

/* ---------- SGEMM ---------- */

/* Large enough that a GEMM library runs its main kernel at full speed. */
enum { SGEMM_SIZE = 512 };

typedef struct sgemm_buffers {
    tdm_buffer *a, *b, *c;
} sgemm_buffers;

/* C = A B for square matrices on one backend, the second of two calls timed
 * (the first compiles kernels); C comes back to the host. */
static tdm_status run_square_gemm(tdm_backend *backend, const float *a, const float *b, float *c,
                                  double *seconds)
{
    const size_t n = SGEMM_SIZE, bytes = n * n * sizeof(float);
    sgemm_buffers m = {0};
    tdm_status status = tdm_buffer_alloc(backend, bytes, &m.a);
    if (status == TDM_OK)
        status = tdm_buffer_alloc(backend, bytes, &m.b);
    if (status == TDM_OK)
        status = tdm_buffer_alloc(backend, bytes, &m.c);
    if (status == TDM_OK)
        status = tdm_buffer_upload(m.a, 0, a, bytes);
    if (status == TDM_OK)
        status = tdm_buffer_upload(m.b, 0, b, bytes);
    tdm_sgemm_args args = tdm_gemm_args(TDM_NO_TRANS, TDM_NO_TRANS, n, n, n, (tdm_view){m.a, 0}, n,
                                        (tdm_view){m.b, 0}, n, 0.0f, (tdm_view){m.c, 0}, n);
    for (int round = 0; round < 2 && status == TDM_OK; round++) {
        double start = tdm_monotonic_seconds();
        status = tdm_sgemm(backend, &args);
        if (status == TDM_OK)
            status = tdm_backend_synchronize(backend);
        *seconds = tdm_monotonic_seconds() - start;
    }
    if (status == TDM_OK)
        status = tdm_buffer_download(m.c, 0, c, bytes);
    tdm_buffer_free(m.a);
    tdm_buffer_free(m.b);
    tdm_buffer_free(m.c);
    return status;
}

/* max |x - y| over the largest |y|: 512-term float32 dot products round to
 * ~1e-6 of it. */
static double largest_entry_difference(const float *x, const float *y, size_t count)
{
    double scale = 0.0, worst = 0.0;
    for (size_t i = 0; i < count; i++)
        scale = fmax(scale, fabs(y[i]));
    for (size_t i = 0; i < count; i++)
        worst = fmax(worst, fabs((double)x[i] - y[i]) / fmax(scale, 1e-30));
    return worst;
}

/* The same product on both backends: speed, and the largest difference. */
static tdm_status check_sgemm(tdm_backend *device, tdm_backend *cpu, bool *ok)
{
    const size_t n = SGEMM_SIZE, count = n * n;
    float *a = malloc(count * sizeof *a), *b = malloc(count * sizeof *b);
    float *c = malloc(count * sizeof *c), *reference = malloc(count * sizeof *reference);
    double seconds[2] = {0.0, 0.0};
    tdm_status status = a && b && c && reference
                            ? TDM_OK
                            : TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "selftest: out of host memory");
    tdm_rng rng = {12345};
    for (size_t i = 0; i < count && status == TDM_OK; i++) {
        a[i] = tdm_rng_uniform(&rng, -0.5f, 0.5f);
        b[i] = tdm_rng_uniform(&rng, -0.5f, 0.5f);
    }
    if (status == TDM_OK)
        status = run_square_gemm(device, a, b, c, &seconds[0]);
    if (status == TDM_OK)
        status = run_square_gemm(cpu, a, b, reference, &seconds[1]);
    if (status == TDM_OK) {
        double flops = 2.0 * (double)n * (double)n * (double)n;
        tdm_backend *sides[2] = {device, cpu};
        for (int s = 0; s < 2; s++)
            printf("sgemm %zux%zux%zu on %s: %.2f ms (%.1f GFLOP/s)\n", n, n, n,
                   tdm_backend_description(sides[s]), seconds[s] * 1e3, flops / seconds[s] * 1e-9);
        double worst = largest_entry_difference(c, reference, count);
        const double tolerance = 1e-4;
        *ok = worst <= tolerance;
        printf("max difference from the cpu backend: %.2e of the largest entry (tolerance %.0e): "
               "%s\n",
               worst, tolerance, *ok ? "ok" : "FAILED");
    }
    free(a);
    free(b);
    free(c);
    free(reference);
    return status;
}

/* ---------- two training steps ---------- */

/* At most this many random samples a step: every layer's kernels run on a
 * batch of any size, and the check stays a few seconds on any device. */
enum { TRAINING_BATCH_MAX = 128 };

/* What a backend computed, in host memory: the compared results in order. */
enum {
    TRAIN_OUTPUT,
    LOSSES,
    GRADIENTS,
    STATS_AFTER_STEP,
    PARAMS_AFTER_STEPS,
    STATS_AFTER_STEPS,
    EVAL_OUTPUT,
    RESULT_COUNT
};
static const char *const result_names[RESULT_COUNT] = {
    "train output", "losses",     "gradients", "running stats", "params after 2 SGD steps",
    "final stats",  "eval output"};

typedef struct training_results {
    float *values[RESULT_COUNT];
    size_t counts[RESULT_COUNT];
} training_results;

typedef struct training_run {
    tdm_backend *backend;
    tdm_model *model;
    tdm_buffer *input, *labels, *losses;
    size_t batch, classes;
} training_run;

static tdm_status download(tdm_view view, float *out, size_t count)
{
    return tdm_buffer_download(view.buffer, view.offset * sizeof(float), out,
                               count * sizeof(float));
}

/* Forward in training, the loss (its dlogits where backward reads them),
 * backward: the output and losses land in results once `keep`. */
static tdm_status training_pass(training_run *run, training_results *r, bool keep)
{
    tdm_view output = tdm_model_output(run->model), dlogits = tdm_model_output_gradient(run->model);
    tdm_cross_entropy_shape shape = {run->batch, run->classes};
    TDM_TRY(tdm_model_forward(run->model, (tdm_view){run->input, 0}, run->batch, true));
    TDM_TRY(tdm_softmax_cross_entropy(run->backend, &shape, output, (tdm_view){run->labels, 0},
                                      (tdm_view){run->losses, 0},
                                      (tdm_view){run->losses, run->batch}, dlogits));
    if (keep) {
        TDM_TRY(download(output, r->values[TRAIN_OUTPUT], r->counts[TRAIN_OUTPUT]));
        TDM_TRY(download((tdm_view){run->losses, 0}, r->values[LOSSES], r->counts[LOSSES]));
    }
    return tdm_model_backward(run->model, dlogits);
}

/* The steps of tests/test_pytorch.c: a pass, its gradients and running
 * statistics, SGD, a second pass and step, the parameters and statistics,
 * then the output in evaluation mode. */
static tdm_status training_steps(training_run *run, const tdm_sgd_options *sgd, training_results *r)
{
    TDM_TRY(training_pass(run, r, true));
    TDM_TRY(tdm_model_get_gradients(run->model, r->values[GRADIENTS]));
    TDM_TRY(tdm_model_get_statistics(run->model, r->values[STATS_AFTER_STEP]));
    TDM_TRY(tdm_model_sgd_step_zero_grad(run->model, sgd));
    TDM_TRY(training_pass(run, r, false));
    TDM_TRY(tdm_model_sgd_step_zero_grad(run->model, sgd));
    TDM_TRY(tdm_model_get_parameters(run->model, r->values[PARAMS_AFTER_STEPS]));
    TDM_TRY(tdm_model_get_statistics(run->model, r->values[STATS_AFTER_STEPS]));
    TDM_TRY(tdm_model_forward(run->model, (tdm_view){run->input, 0}, run->batch, false));
    return download(tdm_model_output(run->model), r->values[EVAL_OUTPUT], r->counts[EVAL_OUTPUT]);
}

static tdm_status alloc_results(const tdm_model *model, size_t batch, training_results *r)
{
    size_t params = tdm_model_parameter_count(model), stats = tdm_model_statistics_count(model);
    tdm_sample_shape out = tdm_model_output_shape(model);
    size_t outputs = batch * out.channels * out.height * out.width;
    const size_t counts[RESULT_COUNT] = {outputs, batch, params, stats, params, stats, outputs};
    for (int i = 0; i < RESULT_COUNT; i++) {
        r->counts[i] = counts[i];
        r->values[i] = malloc((counts[i] ? counts[i] : 1) * sizeof(float));
        if (!r->values[i])
            return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "selftest: out of host memory");
    }
    return TDM_OK;
}

static void free_results(training_results *r)
{
    for (int i = 0; i < RESULT_COUNT; i++)
        free(r->values[i]);
}

/* Random samples as the data would hold them (pixels in [0, max_pixel],
 * times scale) and random labels below the model's classes, uploaded: the
 * same on every backend. */
static tdm_status upload_random_batch(const cli_config *config, training_run *run, size_t volume)
{
    float *samples = malloc(run->batch * volume * sizeof *samples);
    int32_t *labels = malloc(run->batch * sizeof *labels);
    tdm_status status = samples && labels
                            ? TDM_OK
                            : TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "selftest: out of host memory");
    tdm_rng rng = {2};
    for (size_t i = 0; i < run->batch * volume && status == TDM_OK; i++)
        samples[i] = tdm_rng_uniform(&rng, 0.0f, config->data.max_pixel) * config->data.scale;
    for (size_t i = 0; i < run->batch && status == TDM_OK; i++)
        labels[i] = (int32_t)(tdm_rng_next(&rng) % run->classes);
    if (status == TDM_OK)
        status = tdm_buffer_upload(run->input, 0, samples, run->batch * volume * sizeof(float));
    if (status == TDM_OK)
        status = tdm_buffer_upload(run->labels, 0, labels, run->batch * sizeof(int32_t));
    free(samples);
    free(labels);
    return status;
}

/* PyTorch's initial parameters, each moved by up to 0.1 (the same on every
 * backend): with its batch-norm beta = 0, a ReLU after a batch norm can
 * meet values that are 0 but for rounding (a padded conv's ring of zeros,
 * normalised), where two devices' rounding takes different sides of the
 * kink (tests/test_random_models.c). */
static tdm_status move_parameters(tdm_model *model)
{
    size_t count = tdm_model_parameter_count(model);
    float *values = malloc((count ? count : 1) * sizeof(float));
    if (!values)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "selftest: out of host memory");
    tdm_status status = tdm_model_get_parameters(model, values);
    tdm_rng rng = {4};
    for (size_t i = 0; i < count; i++)
        values[i] += tdm_rng_uniform(&rng, -0.1f, 0.1f);
    if (status == TDM_OK)
        status = tdm_model_set_parameters(model, values);
    free(values);
    return status;
}

/* The model on one backend, from seed 1, ending in class scores. */
static tdm_status create_model(tdm_backend *backend, const cli_config *config, training_run *run)
{
    TDM_TRY(tdm_model_create(backend, &config->model, run->batch, 1, &run->model));
    TDM_TRY(move_parameters(run->model));
    tdm_sample_shape out = tdm_model_output_shape(run->model);
    run->classes = out.channels;
    if (out.height != 1 || out.width != 1)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "selftest: the model must end in class scores (it outputs %zux%zux%zu)",
                        out.channels, out.height, out.width);
    return tdm_model_check_training_batch(run->model, run->batch);
}

static tdm_status train_on(tdm_backend *backend, const cli_config *config, size_t batch,
                           training_results *r)
{
    training_run run = {.backend = backend, .batch = batch};
    const tdm_sample_shape *in = &config->model.input;
    size_t volume = in->channels * in->height * in->width;
    tdm_status status = create_model(backend, config, &run);
    if (status == TDM_OK)
        status = alloc_results(run.model, batch, r);
    if (status == TDM_OK)
        status = tdm_buffer_alloc(backend, batch * volume * sizeof(float), &run.input);
    if (status == TDM_OK)
        status = tdm_buffer_alloc(backend, batch * sizeof(int32_t), &run.labels);
    if (status == TDM_OK)
        status = tdm_buffer_alloc(backend, 2 * batch * sizeof(float), &run.losses);
    if (status == TDM_OK)
        status = upload_random_batch(config, &run, volume);
    if (status == TDM_OK)
        status = training_steps(&run, &config->train.sgd, r);
    tdm_buffer_free(run.input);
    tdm_buffer_free(run.labels);
    tdm_buffer_free(run.losses);
    tdm_model_free(run.model);
    return status;
}

static tdm_status check_training(tdm_backend *device, tdm_backend *cpu, const cli_config *config,
                                 bool *ok)
{
    size_t batch =
        config->train.batch < TRAINING_BATCH_MAX ? config->train.batch : TRAINING_BATCH_MAX;
    training_results results[2] = {0};
    tdm_status status = train_on(device, config, batch, &results[0]);
    if (status == TDM_OK)
        status = train_on(cpu, config, batch, &results[1]);
    if (status == TDM_OK) {
        printf("two training steps of the model ([model]: %zu layers, %zu parameters) on %zu "
               "random samples, against the cpu backend:\n",
               config->model.layer_count, results[0].counts[GRADIENTS], batch);
        *ok = true;
        for (int i = 0; i < RESULT_COUNT; i++) {
            /* gradients: 5e-5, outputs, losses, statistics, parameters: 1e-4 */
            double tolerance = i == GRADIENTS ? 5e-5 : 1e-4;
            *ok &= report(
                result_names[i],
                relative_error(results[0].values[i], results[1].values[i], results[0].counts[i]),
                tolerance);
        }
    }
    free_results(&results[0]);
    free_results(&results[1]);
    return status;
}

/* ---------- EM ---------- */

enum { EM_ROWS = 3000, EM_COLS = 100, EM_COMPONENTS = 3, EM_ITERATIONS = 10 };

/* Rows of a known mixture of three: column c of component k is 1 with
 * probability 0.1 to 0.9 by (37 c + 11 k) mod 11; a row's component at
 * random. */
static tdm_status mixture_rows(tdm_binary_data *data)
{
    TDM_TRY(tdm_binary_alloc(EM_ROWS, EM_COLS, data));
    tdm_rng rng = {3};
    for (size_t r = 0; r < EM_ROWS; r++) {
        size_t k = tdm_rng_next(&rng) % EM_COMPONENTS;
        for (size_t c = 0; c < EM_COLS; c++) {
            float p = 0.1f + 0.8f * (float)((37 * c + 11 * k) % 11) / 10.0f;
            tdm_binary_set(data, r, c, tdm_rng_uniform(&rng, 0.0f, 1.0f) < p);
        }
    }
    return TDM_OK;
}

/* The largest relative gap between two fits' mean log-likelihoods,
 * iteration by iteration (NaN when they ran different counts). */
static double history_gap(const tdm_em_result *x, const tdm_em_result *y)
{
    if (x->iterations != y->iterations)
        return NAN;
    double worst = 0.0;
    for (size_t i = 0; i < x->iterations; i++) {
        double gap = fabs(x->history[i] - y->history[i]) / fabs(y->history[i]);
        if (!isfinite(gap))
            return NAN;
        worst = fmax(worst, gap);
    }
    return worst;
}

/* EM by one method on both backends, from the same k-means++ start. */
static tdm_status em_gap(tdm_backend *device, tdm_backend *cpu, const tdm_binary_data *data,
                         tdm_em_method method, double *gap)
{
    tdm_em_options o;
    tdm_em_options_init(&o);
    o.components = EM_COMPONENTS;
    o.max_iter = EM_ITERATIONS;
    o.tol = 0.0;
    o.method = method;
    tdm_em_result fits[2];
    memset(fits, 0, sizeof fits);
    tdm_status status = tdm_em_fit(device, data, &o, &fits[0]);
    if (status == TDM_OK)
        status = tdm_em_fit(cpu, data, &o, &fits[1]);
    if (status == TDM_OK)
        *gap = history_gap(&fits[0], &fits[1]);
    tdm_em_result_free(&fits[0]);
    tdm_em_result_free(&fits[1]);
    return status;
}

/* The mean log-likelihood of every iteration: float32 sums in other
 * orders, ~1e-7 relative apart; tests/test_em.c allows 1e-5. */
static tdm_status check_em(tdm_backend *device, tdm_backend *cpu, bool *ok)
{
    tdm_binary_data data;
    memset(&data, 0, sizeof data);
    double gaps[2] = {0.0, 0.0};
    tdm_status status = mixture_rows(&data);
    if (status == TDM_OK)
        status = em_gap(device, cpu, &data, TDM_EM_METHOD_BITS, &gaps[0]);
    if (status == TDM_OK)
        status = em_gap(device, cpu, &data, TDM_EM_METHOD_GEMM, &gaps[1]);
    if (status == TDM_OK) {
        printf("em, K = %d on %d random rows of %d values, %d iterations, against the cpu "
               "backend:\n",
               EM_COMPONENTS, EM_ROWS, EM_COLS, EM_ITERATIONS);
        *ok = report("log-likelihoods, bits", gaps[0], 1e-5);
        *ok &= report("log-likelihoods, gemm", gaps[1], 1e-5);
    }
    tdm_binary_free(&data);
    return status;
}

/* ---------- the command ---------- */

int cmd_selftest(const cli_options *options)
{
    tdm_backend *device = NULL, *cpu = NULL;
    bool sgemm_ok = false, training_ok = false, em_ok = false;
    cli_config config;
    tdm_status status = cli_load_config(options, &config);
    if (status == TDM_OK)
        status = cli_open_backend(options, &config, &device);
    if (status == TDM_OK)
        status = tdm_cpu_backend_create_threads(config.device.threads, &cpu);
    if (status == TDM_OK)
        status = check_sgemm(device, cpu, &sgemm_ok);
    if (status == TDM_OK)
        status = check_training(device, cpu, &config, &training_ok);
    if (status == TDM_OK)
        status = check_em(device, cpu, &em_ok);
    tdm_backend_free(device);
    tdm_backend_free(cpu);
    if (status != TDM_OK)
        return cli_fail();
    bool ok = sgemm_ok && training_ok && em_ok;
    printf("selftest: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}

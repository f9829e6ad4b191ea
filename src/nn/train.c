/* The training loop: data on the device once, one forward, loss, backward
 * and SGD step per batch, one download per epoch (the training losses, to
 * stop on NaN) and per evaluation (per-sample losses and errors, summed on
 * the host in double). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tandem/config.h"
#include "core/error.h"
#include "core/rng.h"
#include "nn/train_internal.h"
#include "core/clock.h"

void tdm_train_options_init(tdm_train_options *o)
{
    *o = (tdm_train_options){.epochs = 4000,
                             .batch = 128,
                             .sgd = {.lr = 0.1f},
                             .eval_every = 1,
                             .eval_batch = 1024,
                             .seed = 1};
}

tdm_status tdm_train_options_set(void *target, const char *key, const char *value)
{
    tdm_train_options *o = target;
    const size_t most = (size_t)1 << 40;
    if (strcmp(key, "epochs") == 0)
        return tdm_parse_size(key, value, 0, most, &o->epochs);
    if (strcmp(key, "batch") == 0)
        return tdm_parse_size(key, value, 1, most, &o->batch);
    if (strcmp(key, "eval_every") == 0)
        return tdm_parse_size(key, value, 1, most, &o->eval_every);
    if (strcmp(key, "eval_batch") == 0)
        return tdm_parse_size(key, value, 1, most, &o->eval_batch);
    if (strcmp(key, "seed") == 0) {
        size_t seed = 0;
        TDM_TRY(tdm_parse_size(key, value, 0, SIZE_MAX, &seed));
        o->seed = seed;
        return TDM_OK;
    }
    if (strcmp(key, "shuffle") == 0)
        return tdm_parse_bool(key, value, &o->shuffle);
    if (strcmp(key, "nesterov") == 0)
        return tdm_parse_bool(key, value, &o->sgd.nesterov);
    if (strcmp(key, "lr") == 0) {
        TDM_TRY(tdm_parse_float(key, value, 0.0, 1e6, &o->sgd.lr));
        return o->sgd.lr > 0.0f ? TDM_OK
                                : TDM_FAIL(TDM_ERR_CONFIG, "lr must be > 0, got '%s'", value);
    }
    if (strcmp(key, "momentum") == 0)
        return tdm_parse_float(key, value, 0.0, 1.0, &o->sgd.momentum);
    if (strcmp(key, "dampening") == 0)
        return tdm_parse_float(key, value, 0.0, 1.0, &o->sgd.dampening);
    if (strcmp(key, "weight_decay") == 0)
        return tdm_parse_float(key, value, 0.0, 1e6, &o->sgd.weight_decay);
    return TDM_FAIL(TDM_ERR_CONFIG,
                    "unknown key '%s' (known: epochs batch lr momentum dampening weight_decay "
                    "nesterov eval_every eval_batch shuffle seed)",
                    key);
}

static size_t sample_size(tdm_sample_shape s)
{
    return s.channels * s.height * s.width;
}

/* ---------- setup ---------- */

static tdm_status check_options(const tdm_train_options *o)
{
    if (o->batch == 0 || o->eval_batch == 0 || o->eval_every == 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "train: batch, eval_batch and eval_every must be > 0");
    if (!(o->sgd.lr > 0.0f) || !isfinite(o->sgd.lr))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "train: lr must be a number > 0, got %g",
                        (double)o->sgd.lr);
    return TDM_OK;
}

static tdm_status check_set(const tdm_dataset *set, const char *name, tdm_sample_shape input,
                            size_t classes)
{
    tdm_sample_shape s = set->shape;
    if (set->count == 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "train: the %s set is empty", name);
    if (s.channels != input.channels || s.height != input.height || s.width != input.width)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "train: %s samples are %zux%zux%zu but the model takes %zux%zux%zu", name,
                        s.channels, s.height, s.width, input.channels, input.height, input.width);
    if (set->classes > classes)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "train: the %s set has %zu classes but the model outputs %zu", name,
                        set->classes, classes);
    return TDM_OK;
}

static size_t process_count(const tdm_trainer *t)
{
    return t->comm ? (size_t)t->comm->size : 1;
}

/* This process's share [*first, *first + *count) of a batch of n samples. */
static void batch_share(const tdm_trainer *t, size_t n, size_t *first, size_t *count)
{
    size_t rank = t->comm ? (size_t)t->comm->rank : 0, size = process_count(t);
    *first = n * rank / size;
    *count = n * (rank + 1) / size - *first;
}

/* The smallest share of a batch of n samples must be one the model trains on. */
static tdm_status check_batch(const tdm_trainer *t, size_t n)
{
    size_t smallest = n / process_count(t);
    if (smallest == 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "train: a batch of %zu samples among %zu processes leaves one without "
                        "any (use fewer processes, or a batch size whose last batch is larger)",
                        n, process_count(t));
    return tdm_model_check_training_batch(t->model, smallest);
}

static tdm_status upload_set(tdm_backend *backend, const tdm_dataset *set, const char *what,
                             device_set *out)
{
    size_t floats = set->count * sample_size(set->shape);
    size_t most = tdm_backend_max_buffer_bytes(backend);
    if (floats > most / sizeof(float))
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY,
                        "train: the %s set's %zu samples take %zu bytes, and one buffer of this "
                        "%s device takes at most %zu: use fewer samples or another device",
                        what, set->count, floats * sizeof(float), tdm_backend_name(backend), most);
    out->count = set->count;
    TDM_TRY(tdm_buffer_alloc(backend, floats * sizeof(float), &out->pixels));
    TDM_TRY(tdm_buffer_upload(out->pixels, 0, set->pixels, floats * sizeof(float)));
    TDM_TRY(tdm_buffer_alloc(backend, set->count * sizeof(int32_t), &out->labels));
    TDM_TRY(tdm_buffer_upload(out->labels, 0, set->labels, set->count * sizeof(int32_t)));
    /* Per-sample losses and errors of a whole pass over the set. */
    return tdm_buffer_alloc(backend, 2 * set->count * sizeof(float), &out->results);
}

static tdm_status setup(tdm_trainer *t, const tdm_model_spec *spec, const tdm_dataset *train,
                        const tdm_dataset *test)
{
    const tdm_train_options *o = &t->options;
    size_t max_batch = o->batch > o->eval_batch ? o->batch : o->eval_batch;
    TDM_TRY(tdm_model_create(t->backend, spec, max_batch, o->seed, &t->model));
    tdm_sample_shape out = tdm_model_output_shape(t->model);
    if (out.height != 1 || out.width != 1)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "train: the model must end in class scores (it outputs %zux%zux%zu)",
                        out.channels, out.height, out.width);
    t->classes = out.channels;
    TDM_TRY(check_set(train, "training", spec->input, t->classes));
    TDM_TRY(tdm_model_share_batches(t->model, t->comm));
    /* every batch an epoch trains on: the full ones and the last */
    size_t full = train->count < o->batch ? train->count : o->batch, last = train->count % o->batch;
    TDM_TRY(check_batch(t, full));
    if (last)
        TDM_TRY(check_batch(t, last));
    TDM_TRY(check_set(test, "test", spec->input, t->classes));
    TDM_TRY(upload_set(t->backend, train, "training", &t->train));
    TDM_TRY(upload_set(t->backend, test, "test", &t->test));
    if (o->shuffle) {
        TDM_TRY(tdm_dataset_slice(train, 0, train->count, &t->host_train));
        TDM_TRY(upload_set(t->backend, train, "training", &t->shuffled));
    }
    return TDM_OK;
}

tdm_status tdm_trainer_create(tdm_backend *backend, const tdm_model_spec *spec,
                              const tdm_dataset *train, const tdm_dataset *test,
                              const tdm_train_options *options, tdm_trainer **out)
{
    return tdm_trainer_create_shared(backend, NULL, spec, train, test, options, out);
}

tdm_status tdm_trainer_create_shared(tdm_backend *backend, tdm_comm *comm,
                                     const tdm_model_spec *spec, const tdm_dataset *train,
                                     const tdm_dataset *test, const tdm_train_options *options,
                                     tdm_trainer **out)
{
    *out = NULL;
    TDM_TRY(check_options(options));
    tdm_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "train: out of host memory");
    t->backend = backend;
    t->comm = comm && comm->size > 1 ? comm : NULL;
    t->options = *options;
    t->spec = *spec;
    t->rng = (tdm_rng){options->seed ^ 0x5DEECE66Dull};
    tdm_status status = setup(t, spec, train, test);
    if (status != TDM_OK) {
        tdm_trainer_free(t);
        return status;
    }
    *out = t;
    return TDM_OK;
}

static void free_set(device_set *set)
{
    tdm_buffer_free(set->pixels);
    tdm_buffer_free(set->labels);
    tdm_buffer_free(set->results);
}

void tdm_trainer_free(tdm_trainer *t)
{
    if (!t)
        return;
    free_set(&t->train);
    free_set(&t->test);
    free_set(&t->shuffled);
    tdm_dataset_free(&t->host_train);
    tdm_model_free(t->model);
    free(t);
}

tdm_model *tdm_trainer_model(tdm_trainer *t)
{
    return t->model;
}

size_t tdm_trainer_epoch(const tdm_trainer *t)
{
    return t->epoch;
}

/* ---------- one pass ---------- */

/* Forward (and in training, backward and a step) of samples [first, first + n);
 * in training, of this process's share of them. */
static tdm_status batch_pass(tdm_trainer *t, const device_set *set, size_t first, size_t n,
                             bool train)
{
    size_t size = sample_size(t->spec.input), whole = n, offset = 0;
    if (train)
        batch_share(t, whole, &offset, &n);
    first += offset;
    tdm_view x = {set->pixels, first * size};
    tdm_cross_entropy_shape s = {n, t->classes};
    /* the loss's gradient goes where the model's backward starts: no copy */
    tdm_view dlogits = tdm_model_output_gradient(t->model);
    TDM_TRY(tdm_model_forward(t->model, x, n, train));
    TDM_TRY(tdm_softmax_cross_entropy(
        t->backend, &s, tdm_model_output(t->model), (tdm_view){set->labels, first},
        (tdm_view){set->results, first}, (tdm_view){set->results, set->count + first},
        train ? dlogits : (tdm_view){0}));
    if (!train)
        return TDM_OK;
    if (n != whole) /* the gradient of the whole batch's mean loss */
        TDM_TRY(tdm_scale(t->backend, n * t->classes, (float)n / (float)whole, dlogits));
    TDM_TRY(tdm_model_zero_grad(t->model)); /* nothing to do after the last step's */
    TDM_TRY(tdm_model_backward(t->model, dlogits));
    TDM_TRY(tdm_model_sum_gradients(t->model));
    return tdm_model_sgd_step_zero_grad(t->model, &t->options.sgd);
}

/* Mean loss and error of the last pass over `set`, in double. */
/* sums[0..2) += every process's: the sums of each, added in rank order. */
static tdm_status add_processes(const tdm_trainer *t, double sums[2])
{
    if (!t->comm)
        return TDM_OK;
    int size = t->comm->size;
    double *all = malloc(2 * (size_t)size * sizeof(double));
    if (!all)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "train: out of host memory");
    tdm_status status = t->comm->ops->allgather(t->comm, sums, 2 * sizeof(double), all);
    sums[0] = sums[1] = 0.0;
    for (int r = 0; status == TDM_OK && r < size; r++) {
        sums[0] += all[2 * r];
        sums[1] += all[2 * r + 1];
    }
    free(all);
    return status;
}

/* Mean loss and error over the set of the last pass, whose samples
 * [first, first + count) this process holds, in double. */
static tdm_status pass_results(const tdm_trainer *t, const device_set *set, size_t first,
                               size_t count, double *loss, double *error)
{
    float *values = malloc(2 * set->count * sizeof(float));
    if (!values)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "train: out of host memory");
    tdm_status status =
        tdm_buffer_download(set->results, 0, values, 2 * set->count * sizeof(float));
    double sums[2] = {0.0, 0.0}; /* loss, wrong */
    for (size_t i = first; status == TDM_OK && i < first + count; i++) {
        sums[0] += values[i];
        sums[1] += values[set->count + i];
    }
    free(values);
    if (status == TDM_OK)
        status = add_processes(t, sums);
    *loss = sums[0] / (double)set->count;
    *error = sums[1] / (double)set->count;
    return status;
}

/* Each process evaluates its share of the set. */
static tdm_status evaluate_set(tdm_trainer *t, const device_set *set, double *loss, double *error)
{
    size_t start = 0, count = 0;
    batch_share(t, set->count, &start, &count);
    for (size_t first = start; first < start + count; first += t->options.eval_batch) {
        size_t left = start + count - first;
        TDM_TRY(batch_pass(t, set, first,
                           left < t->options.eval_batch ? left : t->options.eval_batch, false));
    }
    return pass_results(t, set, start, count, loss, error);
}

tdm_status tdm_trainer_evaluate(tdm_trainer *t, tdm_metrics *m)
{
    double start = tdm_monotonic_seconds();
    m->epoch = t->epoch;
    TDM_TRY(evaluate_set(t, &t->train, &m->train_loss, &m->train_error));
    TDM_TRY(evaluate_set(t, &t->test, &m->test_loss, &m->test_error));
    t->seconds += tdm_monotonic_seconds() - start;
    m->seconds = t->seconds;
    return TDM_OK;
}

/* The training set in a fresh random order (Fisher-Yates), uploaded. */
static tdm_status shuffle_training_set(tdm_trainer *t)
{
    const tdm_dataset *set = &t->host_train;
    size_t n = set->count, size = sample_size(set->shape);
    float *pixels = malloc(n * size * sizeof(float));
    int32_t *labels = malloc(n * sizeof(int32_t));
    size_t *order = malloc(n * sizeof(size_t));
    tdm_status status = TDM_OK;
    if (!pixels || !labels || !order)
        status = TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "train: out of host memory");
    for (size_t i = 0; status == TDM_OK && i < n; i++)
        order[i] = i;
    for (size_t i = n; status == TDM_OK && i > 1; i--) {
        size_t j = (size_t)(tdm_rng_next(&t->rng) % i), swap = order[i - 1];
        order[i - 1] = order[j];
        order[j] = swap;
    }
    for (size_t i = 0; status == TDM_OK && i < n; i++) {
        memcpy(pixels + i * size, set->pixels + order[i] * size, size * sizeof(float));
        labels[i] = set->labels[order[i]];
    }
    if (status == TDM_OK)
        status = tdm_buffer_upload(t->shuffled.pixels, 0, pixels, n * size * sizeof(float));
    if (status == TDM_OK)
        status = tdm_buffer_upload(t->shuffled.labels, 0, labels, n * sizeof(int32_t));
    free(pixels);
    free(labels);
    free(order);
    return status;
}

tdm_status tdm_trainer_train_epoch(tdm_trainer *t)
{
    double start = tdm_monotonic_seconds();
    const device_set *set = &t->train;
    if (t->options.shuffle) {
        TDM_TRY(shuffle_training_set(t));
        set = &t->shuffled;
    }
    if (t->comm) /* the other processes' samples count 0 here */
        TDM_TRY(tdm_fill(t->backend, (tdm_view){set->results, 0}, 2 * set->count, 0.0f));
    for (size_t first = 0; first < set->count; first += t->options.batch) {
        size_t n = set->count - first < t->options.batch ? set->count - first : t->options.batch;
        TDM_TRY(batch_pass(t, set, first, n, true));
    }
    double loss = 0.0, error = 0.0; /* every process's: all stop on the same loss */
    TDM_TRY(pass_results(t, set, 0, set->count, &loss, &error));
    t->epoch++;
    t->seconds += tdm_monotonic_seconds() - start;
    if (!isfinite(loss))
        return TDM_FAIL(TDM_ERR_NUMERIC,
                        "training diverged in epoch %zu: the mean training loss is %g (try a "
                        "smaller lr)",
                        t->epoch, loss);
    return TDM_OK;
}

tdm_status tdm_trainer_run(tdm_trainer *t, tdm_train_callback callback, void *user)
{
    tdm_metrics m;
    if (t->epoch == 0) {
        TDM_TRY(tdm_trainer_evaluate(t, &m));
        TDM_TRY(callback(user, t, &m));
    }
    while (t->epoch < t->options.epochs) {
        TDM_TRY(tdm_trainer_train_epoch(t));
        if (t->epoch % t->options.eval_every == 0 || t->epoch == t->options.epochs) {
            TDM_TRY(tdm_trainer_evaluate(t, &m));
            TDM_TRY(callback(user, t, &m));
        }
    }
    return TDM_OK;
}

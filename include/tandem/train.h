/* Training a model by mini-batch SGD with softmax cross-entropy, with the
 * source's protocol: evaluation (in eval mode) of the training and test sets
 * before training and every `eval_every` epochs; checkpoints to resume. */
#ifndef TANDEM_TRAIN_H
#define TANDEM_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tandem/data.h"
#include "tandem/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tdm_train_options {
    size_t epochs;       /* 4000 */
    size_t batch;        /* 128 */
    tdm_sgd_options sgd; /* lr 0.1, no momentum, no weight decay */
    size_t eval_every;   /* 1: evaluate after every epoch */
    size_t eval_batch;   /* 1024: samples per forward pass when evaluating */
    bool shuffle;        /* false: batches in data order, as the source */
    uint64_t seed;       /* initial weights and the shuffle order */
} tdm_train_options;

void tdm_train_options_init(tdm_train_options *options);
/* A setter for the [train] section of a config file (see configs/resnet.ini). */
tdm_status tdm_train_options_set(void *options, const char *key, const char *value);

/* One evaluation: mean cross-entropy and misclassified fraction of each set,
 * and the seconds spent since training started (resumed runs included). */
typedef struct tdm_metrics {
    size_t epoch;
    double train_loss, train_error, test_loss, test_error, seconds;
} tdm_metrics;

typedef struct tdm_trainer tdm_trainer;

/* Uploads both sets to the backend and builds the model from options->seed.
 * The sets must match the model's input shape and output classes. */
tdm_status tdm_trainer_create(tdm_backend *backend, const tdm_model_spec *spec,
                              const tdm_dataset *train, const tdm_dataset *test,
                              const tdm_train_options *options, tdm_trainer **out);
/* The same for one of the processes of comm training one model together
 * (data parallel): every process holds both sets whole and the same
 * options; process r of N takes samples [n r / N, n (r + 1) / N) of each
 * batch of n, batch norm uses the whole batch's statistics, and the
 * gradients are added across processes before each step, so every process
 * keeps the same parameters, those of one process up to rounding. Each
 * process evaluates its share of each set (the same split), and the sums of
 * losses and errors are added in rank order. Every share of every batch must hold at
 * least one sample (and a batch norm layer two values per channel). */
tdm_status tdm_trainer_create_shared(tdm_backend *backend, tdm_comm *comm,
                                     const tdm_model_spec *spec, const tdm_dataset *train,
                                     const tdm_dataset *test, const tdm_train_options *options,
                                     tdm_trainer **out);
void tdm_trainer_free(tdm_trainer *trainer); /* NULL is allowed */

tdm_model *tdm_trainer_model(tdm_trainer *trainer);
size_t tdm_trainer_epoch(const tdm_trainer *trainer); /* epochs done */

/* Loss and error of both sets in evaluation mode, now. */
tdm_status tdm_trainer_evaluate(tdm_trainer *trainer, tdm_metrics *out);

/* One epoch of SGD steps. A NaN or infinite loss fails with TDM_ERR_NUMERIC
 * and a message naming the epoch. */
tdm_status tdm_trainer_train_epoch(tdm_trainer *trainer);

/* Called after each evaluation; a status other than TDM_OK stops the run. */
typedef tdm_status (*tdm_train_callback)(void *user, tdm_trainer *trainer,
                                         const tdm_metrics *metrics);

/* Trains from the current epoch to options->epochs: evaluates first when at
 * epoch 0, then after every eval_every epochs and after the last. */
tdm_status tdm_trainer_run(tdm_trainer *trainer, tdm_train_callback callback, void *user);

/* Checkpoints (format: docs/checkpoints.md): the model's parameters,
 * running statistics and momentum, the epoch, the elapsed seconds, the RNG
 * state and the options that must match to resume. Saving writes a
 * temporary file and renames it over path, so a crash leaves the old one. */
tdm_status tdm_trainer_save(const tdm_trainer *trainer, const char *path);
/* Restores a checkpoint of the same model and options (epochs may differ). */
tdm_status tdm_trainer_load(tdm_trainer *trainer, const char *path);

#ifdef __cplusplus
}
#endif

#endif

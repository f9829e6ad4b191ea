/* Models: a sequence of layers (as torch.nn.Sequential) built once above the
 * backends, with parameters, gradients, train/eval mode and SGD.
 *
 * A model is described by a tdm_model_spec: the input shape and the layers,
 * either built in code (tdm_model_spec_resnet) or read from the [model]
 * section of a config file (see configs/lenet.ini). */
#ifndef TANDEM_MODEL_H
#define TANDEM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tandem/backend.h"
#include "tandem/comm.h"
#include "tandem/layer_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tdm_layer_kind {
    TDM_LAYER_CONV2D,      /* out_channels, kernel, stride, padding, bias */
    TDM_LAYER_BATCHNORM2D, /* over the input's channels */
    TDM_LAYER_RELU,
    TDM_LAYER_SIGMOID,
    TDM_LAYER_MAXPOOL2D,      /* kernel, stride (0: = kernel) */
    TDM_LAYER_GLOBAL_AVGPOOL, /* AdaptiveAvgPool2d(1) */
    TDM_LAYER_FLATTEN,        /* C x H x W -> (C*H*W) x 1 x 1; no copy */
    TDM_LAYER_LINEAR,         /* out_channels = out_features, bias */
    TDM_LAYER_BLOCK,          /* the residual Block(C) of docs/experiments.md: relu(x + f(x)) */
    TDM_LAYER_LEAKY_RELU,     /* slope (0.01, as torch.nn.LeakyReLU) */
    TDM_LAYER_KIND_COUNT
} tdm_layer_kind;

const char *tdm_layer_kind_name(tdm_layer_kind kind);

typedef struct tdm_layer_spec {
    tdm_layer_kind kind;
    size_t out_channels;
    size_t kernel, stride, padding;
    bool bias;
    float slope; /* leaky_relu: the slope where x <= 0 */
} tdm_layer_spec;

enum { TDM_MAX_LAYERS = 64 };

/* The shape of one sample. */
typedef struct tdm_sample_shape {
    size_t channels, height, width;
} tdm_sample_shape;

typedef struct tdm_model_spec {
    tdm_sample_shape input;
    size_t layer_count;
    tdm_layer_spec layers[TDM_MAX_LAYERS];
} tdm_model_spec;

/* ResNet(C) of docs/experiments.md for inputs of the given shape: Conv(in->C, 3x3,
 * stride 2, pad 1, no bias) -> BatchNorm -> ReLU -> MaxPool(2) -> Block(C)
 * -> AdaptiveAvgPool(1) -> Flatten -> Linear(C -> classes). */
tdm_status tdm_model_spec_resnet(size_t channels, tdm_sample_shape input, size_t classes,
                                 tdm_model_spec *out);

/* Appends one layer from its text form, as in a config file's
 * `layer = conv2d out=20 kernel=5 stride=1 padding=0 bias=true`. */
tdm_status tdm_model_spec_add_layer(tdm_model_spec *spec, const char *text);

/* A setter for the [model] section of a config file (see tandem/config.h):
 * keys `input = CxHxW`, `layer = ...` (repeated, in order) and
 * `resnet = C` (with `classes`, default 10). Start from tdm_model_spec_init. */
void tdm_model_spec_init(tdm_model_spec *spec);
tdm_status tdm_model_spec_set(void *spec, const char *key, const char *value);

/* What `tandem summary` prints for each layer. FLOPs count a multiply-add
 * as two, forward pass only, per sample. */
typedef struct tdm_layer_info {
    char name[128]; /* e.g. "conv2d 3x3/2 pad 1" */
    int depth;      /* 1 inside a Block */
    tdm_sample_shape output;
    size_t parameters;
    uint64_t flops;
} tdm_layer_info;

/* Shape inference without a backend: the layers' infos (for the Block, its
 * own line first, then its inner layers at depth 1), or an error naming the
 * first layer whose input does not fit. *count is set to the lines written. */
tdm_status tdm_model_spec_describe(const tdm_model_spec *spec, tdm_layer_info *infos,
                                   size_t capacity, size_t *count);

/* --- a model on a backend --- */

typedef struct tdm_model tdm_model;

/* Allocates everything for batches of up to max_batch samples and
 * initialises the parameters as PyTorch does by default (conv and linear
 * weights and biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)); batch-norm
 * gamma 1, beta 0, running mean 0, running variance 1), from a host RNG
 * seeded with `seed`: the same seed gives the same bits on every backend. */
tdm_status tdm_model_create(tdm_backend *backend, const tdm_model_spec *spec, size_t max_batch,
                            uint64_t seed, tdm_model **out);
void tdm_model_free(tdm_model *model); /* NULL is allowed */

tdm_sample_shape tdm_model_output_shape(const tdm_model *model);
size_t tdm_model_max_batch(const tdm_model *model);

/* Forward pass of `batch` samples from x ([batch][C][H][W] on the model's
 * backend). train selects batch statistics (and updates the running ones)
 * over running statistics, as module.train() / module.eval(). */
tdm_status tdm_model_forward(tdm_model *model, tdm_view x, size_t batch, bool train);
/* The output of the last forward pass: [batch][output size]. */
tdm_view tdm_model_output(const tdm_model *model);
/* Backward pass from the gradient of the loss with respect to the output of
 * the last (training) forward pass; parameter gradients accumulate. */
tdm_status tdm_model_backward(tdm_model *model, tdm_view doutput);
/* Where the backward pass keeps that gradient ([max batch][output size]):
 * a caller that writes it there (a loss's dlogits) and passes this view to
 * tdm_model_backward saves a copy. */
tdm_view tdm_model_output_gradient(const tdm_model *model);
tdm_status tdm_model_zero_grad(tdm_model *model);
/* One torch.optim.SGD step over every parameter (momentum buffers are kept
 * in the model). */
tdm_status tdm_model_sgd_step(tdm_model *model, const tdm_sgd_options *options);
/* The step, then the gradients set to zero in the same launch: a training
 * loop's step and its next zero_grad, which then has nothing to do (the
 * model knows its gradients are zero until the next backward pass). */
tdm_status tdm_model_sgd_step_zero_grad(tdm_model *model, const tdm_sgd_options *options);

/* The parameters in PyTorch's model.parameters() order (per layer: weight,
 * then bias; batch norm: gamma, beta), and the batch-norm running statistics
 * (per layer: mean, then variance), as flat float arrays. */
size_t tdm_model_parameter_count(const tdm_model *model);
size_t tdm_model_statistics_count(const tdm_model *model);
tdm_status tdm_model_get_parameters(const tdm_model *model, float *out);
tdm_status tdm_model_set_parameters(tdm_model *model, const float *values);
tdm_status tdm_model_get_gradients(const tdm_model *model, float *out);
tdm_status tdm_model_get_statistics(const tdm_model *model, float *out);
tdm_status tdm_model_set_statistics(tdm_model *model, const float *values);
/* Training on a share of every batch, with the other processes of comm
 * holding the rest (data parallel; NULL or one process: the batch alone).
 * Batch norm in training then normalises with the whole batch's mean and
 * variance and backpropagates with its sums (exchanged with the other
 * processes at each such layer), and tdm_model_sum_gradients adds the
 * processes' gradients; every process must call forward, backward and it in
 * step. The loss gradient each passes to backward must be that of the
 * whole batch's loss (a mean over the whole batch). */
tdm_status tdm_model_share_batches(tdm_model *model, tdm_comm *comm);
/* With a shared batch: every process's parameter gradients, added in rank
 * order, on every process (the same bits on all). */
tdm_status tdm_model_sum_gradients(tdm_model *model);
/* Fails when a batch norm layer would see one value per channel in training
 * on a batch of this many samples (batch x H x W < 2), as PyTorch does. */
tdm_status tdm_model_check_training_batch(const tdm_model *model, size_t batch);
/* The SGD momentum buffers (parameter-count floats), once a step with
 * momentum has run; setting them marks that step as done. */
bool tdm_model_has_momentum(const tdm_model *model);
tdm_status tdm_model_get_momentum(const tdm_model *model, float *out);
tdm_status tdm_model_set_momentum(tdm_model *model, const float *values);

#ifdef __cplusplus
}
#endif

#endif

/* The ops of the network layers, forward and backward, on any backend.
 *
 * Tensors are float32, NCHW, contiguous, addressed by tdm_view. Semantics
 * follow PyTorch (docs/ops.md says where and how exactly). Gradients of
 * parameters are accumulated (+=), as autograd does, so a zero-grad between
 * steps is the caller's; gradients of inputs are written (=). Every
 * reduction runs in a fixed order: the same inputs on the same device give
 * the same bits. */
#ifndef TANDEM_LAYER_OPS_H
#define TANDEM_LAYER_OPS_H

#include <stdbool.h>
#include <stddef.h>

#include "tandem/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --- conv2d (cross-correlation, as torch.nn.Conv2d; no dilation, no groups) --- */

typedef struct tdm_conv2d_shape {
    size_t batch, in_channels, in_height, in_width;
    size_t out_channels, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
} tdm_conv2d_shape;

/* Windows of `kernel` with `stride` along an axis of `in` values padded by
 * `pad` on both sides: floor((in + 2 pad - kernel) / stride) + 1, or 0 when
 * the kernel does not fit or the stride is 0. */
size_t tdm_window_count(size_t in, size_t pad, size_t kernel, size_t stride);
size_t tdm_conv2d_out_height(const tdm_conv2d_shape *shape);
size_t tdm_conv2d_out_width(const tdm_conv2d_shape *shape);

/* y[N][Cout][OH][OW] = conv(x[N][Cin][H][W], w[Cout][Cin][KH][KW]) + bias[Cout];
 * bias may be an empty view ({NULL, 0}) for none. */
tdm_status tdm_conv2d_forward(tdm_backend *backend, const tdm_conv2d_shape *shape, tdm_view x,
                              tdm_view weight, tdm_view bias, tdm_view y);
/* dx = gradient of the loss with respect to x, from dy. */
tdm_status tdm_conv2d_backward_input(tdm_backend *backend, const tdm_conv2d_shape *shape,
                                     tdm_view weight, tdm_view dy, tdm_view dx);
/* dweight += ..., dbias += ... (dbias may be empty). */
tdm_status tdm_conv2d_backward_weight(tdm_backend *backend, const tdm_conv2d_shape *shape,
                                      tdm_view x, tdm_view dy, tdm_view dweight, tdm_view dbias);
/* Both at once (dx and dbias may be empty): the results of the two above,
 * and where small convolutions run as direct kernels (a GPU backend) one
 * launch instead of two. */
tdm_status tdm_conv2d_backward(tdm_backend *backend, const tdm_conv2d_shape *shape, tdm_view x,
                               tdm_view weight, tdm_view dy, tdm_view dx, tdm_view dweight,
                               tdm_view dbias);

/* A convolution over images no larger than its kernel (ResNet's 2x2 block)
 * runs as one GEMM with its dense matrix T [Cout*OH*OW][Cin*H*W], built
 * from the weights by one more op. tdm_conv2d_dense_floats gives T's size, or
 * 0 where the convolution does not run this way. A caller that runs several
 * passes with the same weights (a training step's forward and backward, the
 * batches of an evaluation) builds T once and passes it to the _dense forms:
 * they give the bits of tdm_conv2d_forward and _backward_input. */
tdm_status tdm_conv2d_dense_floats(const tdm_backend *backend, const tdm_conv2d_shape *shape,
                                   size_t *floats);
tdm_status tdm_conv2d_dense_weight(tdm_backend *backend, const tdm_conv2d_shape *shape,
                                   tdm_view weight, tdm_view dense);
tdm_status tdm_conv2d_forward_dense(tdm_backend *backend, const tdm_conv2d_shape *shape, tdm_view x,
                                    tdm_view dense, tdm_view bias, tdm_view y);
tdm_status tdm_conv2d_backward_input_dense(tdm_backend *backend, const tdm_conv2d_shape *shape,
                                           tdm_view dense, tdm_view dy, tdm_view dx);
/* dx += the same gradient, in the GEMM (beta = 1): a gradient with several
 * contributions (a residual block's input) takes this one without an add of
 * its own. The GEMM computes dy T and then adds dx once: on OpenCL (CLBlast)
 * the bits of the plain form followed by tdm_add; a cpu GEMM may add dx into
 * partial sums instead (within the GEMM's rounding). */
tdm_status tdm_conv2d_backward_input_dense_accumulate(tdm_backend *backend,
                                                      const tdm_conv2d_shape *shape, tdm_view dense,
                                                      tdm_view dy, tdm_view dx);
/* Where small convolutions run as direct kernels (a GPU backend: no T,
 * tdm_conv2d_dense_floats gives 0), the same in place without T:
 * tdm_conv2d_accumulates says whether a convolution runs this way;
 * tdm_conv2d_backward_accumulate is tdm_conv2d_backward with dx += its
 * gradient (the bits of the plain dx and then tdm_add), in the same one
 * launch, and refuses other convolutions. */
tdm_status tdm_conv2d_accumulates(const tdm_backend *backend, const tdm_conv2d_shape *shape,
                                  bool *accumulates);
tdm_status tdm_conv2d_backward_accumulate(tdm_backend *backend, const tdm_conv2d_shape *shape,
                                          tdm_view x, tdm_view weight, tdm_view dy, tdm_view dx,
                                          tdm_view dweight, tdm_view dbias);

/* A convolution with few taps a sample (Cin*KH*KW <= 16, ResNet's stem)
 * computes from x's col [Cin*KH*KW][N*OH*OW] in both passes. A caller that
 * keeps col between a training forward and its backward (a model) builds it
 * once: tdm_conv2d_col_floats gives its size (0 where a convolution does not
 * run this way), tdm_conv2d_forward_col writes it beside y, and
 * tdm_conv2d_backward_weight_col reads it; the bits of the plain forms. */
tdm_status tdm_conv2d_col_floats(const tdm_backend *backend, const tdm_conv2d_shape *shape,
                                 size_t *floats);
tdm_status tdm_conv2d_forward_col(tdm_backend *backend, const tdm_conv2d_shape *shape, tdm_view x,
                                  tdm_view weight, tdm_view bias, tdm_view y, tdm_view col);
tdm_status tdm_conv2d_backward_weight_col(tdm_backend *backend, const tdm_conv2d_shape *shape,
                                          tdm_view col, tdm_view dy, tdm_view dweight,
                                          tdm_view dbias);

/* --- per-channel bias over [N][C][spatial] (linear: spatial = 1) --- */

/* y[n][c][s] += bias[c] */
tdm_status tdm_bias_add(tdm_backend *backend, size_t batch, size_t channels, size_t spatial,
                        tdm_view bias, tdm_view y);
/* dbias[c] += sum over n, s of dy[n][c][s] */
tdm_status tdm_bias_backward(tdm_backend *backend, size_t batch, size_t channels, size_t spatial,
                             tdm_view dy, tdm_view dbias);

/* --- linear: y[N][out] = x[N][in] weight[out][in]^T + bias[out] --- */

typedef struct tdm_linear_shape {
    size_t batch, in_features, out_features;
    /* 0 or 1: none. Else x (and dx) is [N][in][pool] and each feature the
     * mean of its pool values first: AdaptiveAvgPool2d(1) and flatten before
     * the layer, in the same launch, with global_avgpool's bits. */
    size_t pool;
    /* x is a ReLU's output, and the backward's dx the gradient of that
     * ReLU's input: 0 where x is not > 0 (tdm_relu_backward's bits), in the
     * same launch. Read by tdm_linear_backward only. */
    bool relu;
} tdm_linear_shape;

tdm_status tdm_linear_forward(tdm_backend *backend, const tdm_linear_shape *shape, tdm_view x,
                              tdm_view weight, tdm_view bias, tdm_view y);
/* dx = dy weight (a shape with relu is refused: the mask needs x) */
tdm_status tdm_linear_backward_input(tdm_backend *backend, const tdm_linear_shape *shape,
                                     tdm_view weight, tdm_view dy, tdm_view dx);
/* dweight += dy^T x; dbias += column sums of dy (dbias may be empty) */
tdm_status tdm_linear_backward_weight(tdm_backend *backend, const tdm_linear_shape *shape,
                                      tdm_view x, tdm_view dy, tdm_view dweight, tdm_view dbias);
/* Both at once (dx and dbias may be empty): the same results as the two
 * above, and for a layer with few weights one launch instead of two; with
 * shape->relu, dx is then masked where x is not > 0. */
tdm_status tdm_linear_backward(tdm_backend *backend, const tdm_linear_shape *shape, tdm_view x,
                               tdm_view weight, tdm_view dy, tdm_view dx, tdm_view dweight,
                               tdm_view dbias);

/* --- batchnorm2d over (N, spatial) per channel --- */

typedef struct tdm_batchnorm_shape {
    size_t batch, channels, spatial; /* spatial = H * W */
    float eps;                       /* 1e-5 in PyTorch */
    float momentum;                  /* 0.1 in PyTorch: running = (1 - m) running + m batch */
    /* The ReLU after it, in the same launch: forward y = max(y, 0); backward
     * dy is the gradient of that ReLU's output, taken as 0 where y <= 0. */
    bool relu;
} tdm_batchnorm_shape;

/* Training mode: normalises with the batch mean and biased variance, writes
 * save_mean and save_invstd = 1 / sqrt(var + eps) for the backward pass and
 * updates running_mean and running_var (with the unbiased variance). Needs
 * batch * spatial > 1, as PyTorch does. */
tdm_status tdm_batchnorm_forward_train(tdm_backend *backend, const tdm_batchnorm_shape *shape,
                                       tdm_view x, tdm_view gamma, tdm_view beta,
                                       tdm_view running_mean, tdm_view running_var,
                                       tdm_view save_mean, tdm_view save_invstd, tdm_view y);
/* Evaluation mode: normalises with the running statistics. */
tdm_status tdm_batchnorm_forward_eval(tdm_backend *backend, const tdm_batchnorm_shape *shape,
                                      tdm_view x, tdm_view gamma, tdm_view beta,
                                      tdm_view running_mean, tdm_view running_var, tdm_view y);
/* Backward of the training-mode forward: dx =, dgamma +=, dbeta +=. y is
 * the forward's output, read only with shape->relu (else it may be empty). */
tdm_status tdm_batchnorm_backward(tdm_backend *backend, const tdm_batchnorm_shape *shape,
                                  tdm_view x, tdm_view dy, tdm_view y, tdm_view gamma,
                                  tdm_view save_mean, tdm_view save_invstd, tdm_view dx,
                                  tdm_view dgamma, tdm_view dbeta);

/* --- pooling --- */

/* Max-pool without padding, floor mode: out = (in - kernel) / stride + 1. */
typedef struct tdm_pool2d_shape {
    size_t batch, channels, in_height, in_width;
    size_t kernel_h, kernel_w, stride_h, stride_w;
} tdm_pool2d_shape;

size_t tdm_pool2d_out_height(const tdm_pool2d_shape *shape);
size_t tdm_pool2d_out_width(const tdm_pool2d_shape *shape);

/* y = the maximum of each window; argmax (int32, one per output, counted in
 * 4-byte elements like floats) = h * W + w of the first maximum in row-major
 * window order; NaN counts as the maximum (as in PyTorch). */
tdm_status tdm_maxpool2d_forward(tdm_backend *backend, const tdm_pool2d_shape *shape, tdm_view x,
                                 tdm_view y, tdm_view argmax);
/* dx = dy routed to each window's argmax (summed where windows overlap). */
tdm_status tdm_maxpool2d_backward(tdm_backend *backend, const tdm_pool2d_shape *shape,
                                  tdm_view argmax, tdm_view dy, tdm_view dx);

/* AdaptiveAvgPool2d(1): y[planes] = mean of each plane of `spatial` values. */
tdm_status tdm_global_avgpool_forward(tdm_backend *backend, size_t planes, size_t spatial,
                                      tdm_view x, tdm_view y);
tdm_status tdm_global_avgpool_backward(tdm_backend *backend, size_t planes, size_t spatial,
                                       tdm_view dy, tdm_view dx);

/* --- a batch norm (and its ReLU) whose output only a max-pool reads --- */

/* The results of tdm_batchnorm_forward_train then tdm_maxpool2d_forward of
 * y (written too: the backward reads it), and of tdm_maxpool2d_backward
 * into dy (written) then tdm_batchnorm_backward, the pool in the batch
 * norm's launches where its windows are 2x2 at stride 2 (ResNet's stem; on
 * OpenCL where a work-group takes a channel's values). The pool's batch and
 * channels are the batch norm's, its images the spatial values. */
tdm_status tdm_batchnorm_pool_forward_train(tdm_backend *backend, const tdm_batchnorm_shape *shape,
                                            const tdm_pool2d_shape *pool, tdm_view x,
                                            tdm_view gamma, tdm_view beta, tdm_view running_mean,
                                            tdm_view running_var, tdm_view save_mean,
                                            tdm_view save_invstd, tdm_view y, tdm_view pooled,
                                            tdm_view argmax);
tdm_status tdm_batchnorm_pool_backward(tdm_backend *backend, const tdm_batchnorm_shape *shape,
                                       const tdm_pool2d_shape *pool, tdm_view x, tdm_view pooled_dy,
                                       tdm_view argmax, tdm_view y, tdm_view gamma,
                                       tdm_view save_mean, tdm_view save_invstd, tdm_view dy,
                                       tdm_view dx, tdm_view dgamma, tdm_view dbeta);

/* --- a batch norm whose output only a residual add reads --- */

/* The results of tdm_batchnorm_forward_train (or _eval) then tdm_add (with
 * shape->relu, tdm_add_relu) of `residual`: y = bn(x) + residual, then the
 * ReLU, the add in the batch norm's launch (ResNet's Block: one OpenCL
 * launch a pass instead of two, the same bits). bn(x) itself is not kept,
 * and its gradient is the sum's: the backward is tdm_batchnorm_backward
 * without relu, the ReLU's mask applied before it. An empty residual adds
 * nothing (the plain forward, as an empty bias does). */
tdm_status tdm_batchnorm_add_forward_train(tdm_backend *backend, const tdm_batchnorm_shape *shape,
                                           tdm_view x, tdm_view residual, tdm_view gamma,
                                           tdm_view beta, tdm_view running_mean,
                                           tdm_view running_var, tdm_view save_mean,
                                           tdm_view save_invstd, tdm_view y);
tdm_status tdm_batchnorm_add_forward_eval(tdm_backend *backend, const tdm_batchnorm_shape *shape,
                                          tdm_view x, tdm_view residual, tdm_view gamma,
                                          tdm_view beta, tdm_view running_mean,
                                          tdm_view running_var, tdm_view y);

/* --- loss --- */

/* Softmax cross-entropy of logits[N][classes] against labels (int32, counted
 * like floats). Per sample: losses[n] = logsumexp(z_n) - z_n[label] and
 * wrong[n] = 1 if the first argmax of z_n is not the label, else 0. dlogits
 * (may be empty) = (softmax(z) - onehot(label)) / N: the gradient of the
 * batch mean, as torch.nn.CrossEntropyLoss. A label outside [0, classes)
 * gives NaN loss and gradient for that sample. */
typedef struct tdm_cross_entropy_shape {
    size_t batch, classes;
} tdm_cross_entropy_shape;

tdm_status tdm_softmax_cross_entropy(tdm_backend *backend, const tdm_cross_entropy_shape *shape,
                                     tdm_view logits, tdm_view labels, tdm_view losses,
                                     tdm_view wrong, tdm_view dlogits);

/* --- optimizer --- */

/* One step of torch.optim.SGD on `count` parameters:
 *   d = grad + weight_decay * w
 *   momentum != 0: v = first_step ? d : momentum * v + (1 - dampening) * d;
 *                  d = nesterov ? d + momentum * v : v
 *   w -= lr * d
 * velocity may be empty when momentum == 0. */
typedef struct tdm_sgd_options {
    float lr, momentum, dampening, weight_decay;
    bool nesterov;
} tdm_sgd_options;

tdm_status tdm_sgd_step(tdm_backend *backend, const tdm_sgd_options *options, bool first_step,
                        size_t count, tdm_view weight, tdm_view grad, tdm_view velocity);
/* The same step, then grad set to 0 in the same pass (one launch where a
 * training loop's step and its next zero_grad would take two). */
tdm_status tdm_sgd_step_zero_grad(tdm_backend *backend, const tdm_sgd_options *options,
                                  bool first_step, size_t count, tdm_view weight, tdm_view grad,
                                  tdm_view velocity);

#ifdef __cplusplus
}
#endif

#endif

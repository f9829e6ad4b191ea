/* The cpu backend's layer ops (cpu_layers.c), entries of its iface table. */
#ifndef TANDEM_CPU_LAYERS_H
#define TANDEM_CPU_LAYERS_H

#include <stdint.h>
#include <string.h>

#include "backend/backend_impl.h"

/* Loops over fewer elements than this run on one thread: waking the team
 * would cost more than it saves. */
enum { TDM_CPU_MIN_PARALLEL_WORK = 16384 };

/* The team size of an OpenMP loop over `work` elements. Every loop splits
 * its outputs, never a sum, between threads, so its bits do not depend on
 * the team size. */
static inline int tdm_cpu_team(const tdm_backend *backend, size_t work)
{
    return work < TDM_CPU_MIN_PARALLEL_WORK ? 1 : (int)backend->threads;
}

tdm_status tdm_cpu_im2col(tdm_backend *backend, const tdm_conv2d_shape *s, tdm_view x,
                          tdm_view col);
tdm_status tdm_cpu_col2im(tdm_backend *backend, const tdm_conv2d_shape *s, tdm_view col,
                          tdm_view x);
tdm_status tdm_cpu_conv_dense_weight(tdm_backend *backend, const tdm_conv2d_shape *s,
                                     tdm_view weight, tdm_view dense);
tdm_status tdm_cpu_conv_dense_weight_backward(tdm_backend *backend, const tdm_conv2d_shape *s,
                                              tdm_view dense_grad, tdm_view dweight);
tdm_status tdm_cpu_conv_direct_forward(tdm_backend *backend, const tdm_conv2d_shape *s, tdm_view x,
                                       tdm_view weight, tdm_view y);
tdm_status tdm_cpu_conv_direct_backward(tdm_backend *backend, const tdm_conv2d_shape *s, tdm_view x,
                                        tdm_view weight, tdm_view dy, tdm_view dx, tdm_view dweight,
                                        bool accumulate);
tdm_status tdm_cpu_conv_col_product(tdm_backend *backend, const tdm_conv2d_shape *s,
                                    tdm_view weight, tdm_view col, tdm_view y);
tdm_status tdm_cpu_conv_col_weight_gradient(tdm_backend *backend, const tdm_conv2d_shape *s,
                                            tdm_view dy, tdm_view col, tdm_view dweight);
tdm_status tdm_cpu_small_linear(tdm_backend *backend, const tdm_linear_shape *s, tdm_view x,
                                tdm_view weight, tdm_view bias, tdm_view y);
tdm_status tdm_cpu_small_linear_backward(tdm_backend *backend, const tdm_linear_shape *s,
                                         tdm_view x, tdm_view weight, tdm_view dy, tdm_view dx,
                                         tdm_view dweight, tdm_view dbias);
tdm_status tdm_cpu_swap_axes(tdm_backend *backend, size_t outer, size_t inner, size_t spatial,
                             tdm_view src, tdm_view dst);
tdm_status tdm_cpu_transpose(tdm_backend *backend, size_t batch, size_t rows, size_t cols,
                             tdm_view src, tdm_view dst);
tdm_status tdm_cpu_bias_add(tdm_backend *backend, size_t batch, size_t channels, size_t spatial,
                            tdm_view bias, tdm_view y);
tdm_status tdm_cpu_bias_backward(tdm_backend *backend, size_t batch, size_t channels,
                                 size_t spatial, tdm_view dy, tdm_view dbias);
tdm_status tdm_cpu_batchnorm_forward(tdm_backend *backend, const tdm_batchnorm_shape *s,
                                     const tdm_batchnorm_views *v, bool train);
tdm_status tdm_cpu_batchnorm_backward(tdm_backend *backend, const tdm_batchnorm_shape *s,
                                      const tdm_batchnorm_views *v);
tdm_status tdm_cpu_maxpool2d(tdm_backend *backend, const tdm_pool2d_shape *s, tdm_view x,
                             tdm_view y, tdm_view argmax);
tdm_status tdm_cpu_maxpool2d_backward(tdm_backend *backend, const tdm_pool2d_shape *s,
                                      tdm_view argmax, tdm_view dy, tdm_view dx);
/* The loops of global_avgpool and its backward on host pointers, for the
 * ops that pool too (small_linear): out[p] = the sum of in's plane p in
 * order, divided by spatial; out[p][i] = grad[p] / spatial. */
void tdm_cpu_plane_means(const tdm_backend *backend, const float *in, size_t planes, size_t spatial,
                         float *out);
void tdm_cpu_plane_shares(const tdm_backend *backend, const float *grad, size_t planes,
                          size_t spatial, float *out);
tdm_status tdm_cpu_global_avgpool(tdm_backend *backend, size_t planes, size_t spatial, tdm_view x,
                                  tdm_view y);
tdm_status tdm_cpu_global_avgpool_backward(tdm_backend *backend, size_t planes, size_t spatial,
                                           tdm_view dy, tdm_view dx);
tdm_status tdm_cpu_softmax_cross_entropy(tdm_backend *backend, const tdm_cross_entropy_shape *s,
                                         tdm_view logits, tdm_view labels, tdm_view losses,
                                         tdm_view wrong, tdm_view dlogits);
tdm_status tdm_cpu_sgd(tdm_backend *backend, const tdm_sgd_options *o, bool first_step,
                       bool zero_grad, size_t count, tdm_view weight, tdm_view grad,
                       tdm_view velocity);

tdm_status tdm_cpu_bits_scores(tdm_backend *backend, const tdm_bits_shape *s, tdm_view bits,
                               tdm_view table, tdm_view bias, tdm_view scores);
tdm_status tdm_cpu_bits_sums(tdm_backend *backend, const tdm_bits_shape *s, tdm_view bits,
                             tdm_view weights, tdm_view sums);

tdm_status tdm_cpu_softmax_rows(tdm_backend *backend, size_t rows, size_t cols, tdm_view x,
                                tdm_view lse);

#endif

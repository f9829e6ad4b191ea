/* What a backend implements: one table of function pointers plus a context,
 * in the spirit of ggml-backend. The generic layer (backend.c) validates every
 * argument before it calls these, so implementations may assume sizes, offsets
 * and leading dimensions are in range and that m, n, k and counts are > 0. */
#ifndef TANDEM_BACKEND_IMPL_H
#define TANDEM_BACKEND_IMPL_H

#include "tandem/backend.h"
#include "tandem/layer_ops.h"

/* Bumped whenever the table below changes, so a mismatched backend is refused. */
#define TDM_BACKEND_IFACE_VERSION 20

/* The elementwise ops of tandem/ops.def, numbered among themselves: what the
 * table's `elementwise` entry dispatches on (a switch over it needs no
 * default, and the compiler names any op it forgets). */
typedef enum tdm_elementwise_op {
#define TDM_OP(id, name, entry)
#define TDM_ELEMENTWISE(id, name, operands) TDM_ELEMENTWISE_##id,
#include "tandem/ops.def"
#undef TDM_OP
#undef TDM_ELEMENTWISE
} tdm_elementwise_op;

enum {
    TDM_ELEMENTWISE_COUNT = 0
#define TDM_OP(id, name, entry)
#define TDM_ELEMENTWISE(id, name, operands) +1
#include "tandem/ops.def"
#undef TDM_OP
#undef TDM_ELEMENTWISE
};

/* The operands of the batch-norm entries; each uses the ones it names. */
typedef struct tdm_batchnorm_views {
    tdm_view x, gamma, beta, running_mean, running_var, save_mean, save_invstd, y;
    tdm_view dy, dx, dgamma, dbeta;
    tdm_view scratch; /* 2 * channels floats for the backward means, lent by the layer */
    /* Where given, added to the normalised values before the ReLU (the
     * forward entry; never with a pool). */
    tdm_view residual;
    /* With pool_width > 0, a 2x2 max-pool at stride 2 that reads y alone
     * (tdm_batchnorm_pool_shape): the training forward then writes pooled
     * and argmax as maxpool2d would from y; backward first writes dy from
     * the pool's gradient pooled_dy as maxpool2d_backward would. */
    size_t pool_width;
    tdm_view pooled, argmax, pooled_dy;
} tdm_batchnorm_views;

/* That pool's shape: y's images are [spatial / width][width]. */
static inline tdm_pool2d_shape tdm_batchnorm_pool_shape(const tdm_batchnorm_shape *s, size_t width)
{
    return (tdm_pool2d_shape){s->batch, s->channels, s->spatial / width, width, 2, 2, 2, 2};
}

/* That pool by the backend's own max-pool ops, for a batch norm entry that
 * does not run it in its kernels: forward after the values, backward (into
 * v->dy) before the batch norm's; nothing without v->pool_width. */
tdm_status tdm_batchnorm_pool_apart(tdm_backend *backend, const tdm_batchnorm_shape *s,
                                    const tdm_batchnorm_views *v, bool forward);

struct tdm_backend_iface {
    int version;
    void (*free)(tdm_backend *backend);
    tdm_status (*synchronize)(tdm_backend *backend);

    /* buffer->size is set by the caller; the backend fills buffer->handle. */
    tdm_status (*buffer_alloc)(tdm_backend *backend, tdm_buffer *buffer);
    void (*buffer_free)(tdm_backend *backend, tdm_buffer *buffer);
    tdm_status (*upload)(tdm_backend *backend, tdm_buffer *dst, size_t offset, const void *src,
                         size_t bytes);
    tdm_status (*download)(tdm_backend *backend, const tdm_buffer *src, size_t offset, void *dst,
                           size_t bytes);

    /* Ops, one entry per TDM_OP row of tandem/ops.def (NULL: not supported,
     * which tdm_backend_supports_op reads from here). */
    tdm_status (*fill)(tdm_backend *backend, tdm_view x, size_t count, float value);
    tdm_status (*copy)(tdm_backend *backend, tdm_view src, tdm_view dst, size_t count);
    tdm_status (*axpy)(tdm_backend *backend, size_t count, float alpha, tdm_view x, tdm_view y);
    tdm_status (*scale)(tdm_backend *backend, size_t count, float alpha, tdm_view x);
    tdm_status (*sgemm)(tdm_backend *backend, const tdm_sgemm_args *args);
    /* The TDM_ELEMENTWISE rows: out = f(a, b) with the op's scalar parameter
     * (leaky_relu's slope; 0 for ops without one); b is an empty view for
     * the unary ones. */
    tdm_status (*elementwise)(tdm_backend *backend, tdm_elementwise_op op, size_t count,
                              float scalar, tdm_view a, tdm_view b, tdm_view out);

    /* Conv2d is im2col + GEMM + swap_axes over the whole batch (backend.c).
     * col is [Cin*KH*KW][N*OH*OW]: row (c*KH + i)*KW + j, column
     * n*OH*OW + oh*OW + ow; padding reads as 0. col2im is its adjoint, a
     * gather (each x sums its col entries in a fixed order) that writes x. */
    tdm_status (*im2col)(tdm_backend *backend, const tdm_conv2d_shape *shape, tdm_view x,
                         tdm_view col);
    tdm_status (*col2im)(tdm_backend *backend, const tdm_conv2d_shape *shape, tdm_view col,
                         tdm_view x);
    /* For small images conv2d is one GEMM with the dense matrix T of the
     * convolution: T[(co*OH + oh)*OW + ow][(ci*H + h)*W + w] = the weight tap
     * linking them, or 0. conv_dense_weight writes T from the weights;
     * conv_dense_weight_backward adds to each weight its tap's entries of a
     * gradient of T one by one, in (oh, ow) order. */
    tdm_status (*conv_dense_weight)(tdm_backend *backend, const tdm_conv2d_shape *shape,
                                    tdm_view weight, tdm_view dense);
    tdm_status (*conv_dense_weight_backward)(tdm_backend *backend, const tdm_conv2d_shape *shape,
                                             tdm_view dense_grad, tdm_view dweight);
    /* For few taps a sample (Cin*KH*KW <= TDM_CONV_COL_MAX_TAPS, a first
     * layer's), the products with col without a GEMM: conv_col_product
     * writes y in NCHW, y[n][co][p] = the sum over taps k in order of
     * weight[co][k] * col[k][n*P + p] (P = OH*OW); conv_col_weight_gradient
     * adds to dweight[co][k] the sum over n and p of dy[n][co][p] *
     * col[k][n*P + p], each sample's positions in 16 lanes (p mod 16) and
     * the last P mod 16 in a tail, samples in order, then the lanes halved
     * in a tree (lo + hi) and the tail added: the order of both backends. */
    tdm_status (*conv_col_product)(tdm_backend *backend, const tdm_conv2d_shape *shape,
                                   tdm_view weight, tdm_view col, tdm_view y);
    tdm_status (*conv_col_weight_gradient)(tdm_backend *backend, const tdm_conv2d_shape *shape,
                                           tdm_view dy, tdm_view col, tdm_view dweight);
    /* conv_col_product's y with col's entries read from x as im2col writes
     * them (0 in the padding): y[n][co][p] = the sum over taps k in order of
     * weight[co][k] * that entry, the bits of im2col then conv_col_product,
     * in one launch. What the layer runs for few taps where
     * direct_small_convs is set. */
    tdm_status (*conv_direct_forward)(tdm_backend *backend, const tdm_conv2d_shape *shape,
                                      tdm_view x, tdm_view weight, tdm_view y);
    /* A convolution's gradients without col or T, in one launch; an empty
     * dx or dweight is not computed (x is read for dweight only, weight for
     * dx only). dweight[co][ci][i][j] += the sum over samples n and output
     * positions (oh, ow) of dy[n][co][oh][ow] * x[n][ci][h][w] for the input
     * (h, w) tap (i, j) links them to (none in the padding): each sample's
     * positions in order, the samples in order on the cpu backend, on
     * OpenCL a work-group's work-items each taking every group-size-th
     * sample, then their sums added in order. dx[n][ci][h][w] = the sum over
     * taps (i, j) in order, then co in order, of dy[n][co][oh][ow] *
     * weight[co][ci][i][j] for the output (oh, ow) the tap links (h, w) to;
     * with accumulate, dx's own value + that sum (one rounding: the bits of
     * the sum and then an add). What the layer runs for small images, and
     * for a few-tap conv's weight gradient, where direct_small_convs is set. */
    tdm_status (*conv_direct_backward)(tdm_backend *backend, const tdm_conv2d_shape *shape,
                                       tdm_view x, tdm_view weight, tdm_view dy, tdm_view dx,
                                       tdm_view dweight, bool accumulate);
    /* A linear layer with few weights (out * in <= TDM_SMALL_LINEAR_MAX_WEIGHTS,
     * a classifier head) in one launch a pass, without a GEMM. small_linear:
     * y[n][o] = the sum over i in order of x[n][i] * weight[o][i], then +
     * bias[o] (bias may be empty). small_linear_backward writes what it is
     * given of dx[n][i] = the sum over o in order of dy[n][o] * weight[o][i];
     * adds to dweight[o][i] the sum over n in order of dy[n][o] * x[n][i],
     * and to dbias[o] that of dy[n][o]: each output one sum, in the order of
     * both backends. With shape->relu, dx is 0 where x is not > 0 (x is
     * then given with dx too). Empty views (dx, dweight, dbias) are not
     * computed. */
    tdm_status (*small_linear)(tdm_backend *backend, const tdm_linear_shape *shape, tdm_view x,
                               tdm_view weight, tdm_view bias, tdm_view y);
    tdm_status (*small_linear_backward)(tdm_backend *backend, const tdm_linear_shape *shape,
                                        tdm_view x, tdm_view weight, tdm_view dy, tdm_view dx,
                                        tdm_view dweight, tdm_view dbias);
    /* dst[b][a][s] = src[a][b][s] for src [outer][inner][spatial]. */
    tdm_status (*swap_axes)(tdm_backend *backend, size_t outer, size_t inner, size_t spatial,
                            tdm_view src, tdm_view dst);
    /* dst[b][c][r] = src[b][r][c] for src [batch][rows][cols]. */
    tdm_status (*transpose)(tdm_backend *backend, size_t batch, size_t rows, size_t cols,
                            tdm_view src, tdm_view dst);
    tdm_status (*bias_add)(tdm_backend *backend, size_t batch, size_t channels, size_t spatial,
                           tdm_view bias, tdm_view y);
    tdm_status (*bias_backward)(tdm_backend *backend, size_t batch, size_t channels, size_t spatial,
                                tdm_view dy, tdm_view dbias);
    /* Training: per channel of x, save_mean and save_invstd = 1 / sqrt(biased
     * var + eps), the running statistics updated (unbiased variance), then
     * y = (x - mean) * invstd * gamma + beta. Evaluation: y with
     * running_mean and 1 / sqrt(running_var + eps) in float. Then max(y, 0)
     * if shape->relu; then the max-pool of v->pool_width, if any. */
    tdm_status (*batchnorm_forward)(tdm_backend *backend, const tdm_batchnorm_shape *shape,
                                    const tdm_batchnorm_views *v, bool train);
    /* dgamma += sum(dy * xhat), dbeta += sum(dy) per channel; dx = gamma *
     * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)), the means over the
     * channel's values (scratch: 2 * channels floats the layer lends); with
     * shape->relu, dy is taken as 0 where v->y (the forward's output) is not
     * > 0. With v->pool_width, dy is first written from the pool's gradient. */
    tdm_status (*batchnorm_backward)(tdm_backend *backend, const tdm_batchnorm_shape *shape,
                                     const tdm_batchnorm_views *v);
    tdm_status (*maxpool2d)(tdm_backend *backend, const tdm_pool2d_shape *shape, tdm_view x,
                            tdm_view y, tdm_view argmax);
    tdm_status (*maxpool2d_backward)(tdm_backend *backend, const tdm_pool2d_shape *shape,
                                     tdm_view argmax, tdm_view dy, tdm_view dx);
    tdm_status (*global_avgpool)(tdm_backend *backend, size_t planes, size_t spatial, tdm_view x,
                                 tdm_view y);
    tdm_status (*global_avgpool_backward)(tdm_backend *backend, size_t planes, size_t spatial,
                                          tdm_view dy, tdm_view dx);
    /* wrong and dlogits may be empty views. */
    tdm_status (*softmax_cross_entropy)(tdm_backend *backend, const tdm_cross_entropy_shape *shape,
                                        tdm_view logits, tdm_view labels, tdm_view losses,
                                        tdm_view wrong, tdm_view dlogits);
    /* The step; then grad = 0 if zero_grad. */
    tdm_status (*sgd)(tdm_backend *backend, const tdm_sgd_options *options, bool first_step,
                      bool zero_grad, size_t count, tdm_view weight, tdm_view grad,
                      tdm_view velocity);
    tdm_status (*softmax_rows)(tdm_backend *backend, size_t rows, size_t cols, tdm_view x,
                               tdm_view lse);
    tdm_status (*bits_scores)(tdm_backend *backend, const tdm_bits_shape *shape, tdm_view bits,
                              tdm_view table, tdm_view bias, tdm_view scores);
    tdm_status (*bits_sums)(tdm_backend *backend, const tdm_bits_shape *shape, tdm_view bits,
                            tdm_view weights, tdm_view sums);
};

/* The most taps a sample of conv_col_product and conv_col_weight_gradient
 * (cl/conv.cl's kernels keep that many lanes). */
enum { TDM_CONV_COL_MAX_TAPS = 16 };

/* The most weights (out * in) of small_linear and small_linear_backward (the
 * cpu backend keeps the weights transposed on its stack). */
enum { TDM_SMALL_LINEAR_MAX_WEIGHTS = 4096 };
/* Both backends refuse more, should a layer ever pass them. */
tdm_status tdm_check_small_linear(const char *op, const tdm_linear_shape *shape);

/* Scratch buffers the generic layer lends to composite ops (conv2d's col,
 * its swapped GEMM output, col transposed). Ops run in issue order on every
 * backend, so consecutive ops may reuse them. */
enum { TDM_SCRATCH_SLOTS = 3 };

struct tdm_backend {
    const struct tdm_backend_iface *iface;
    void *context;
    const char *name;
    char description[640];
    bool host_memory;        /* set by the backend: see tdm_backend_uses_host_memory */
    size_t threads;          /* set by the backend: see tdm_backend_host_threads */
    size_t max_buffer_bytes; /* set by the backend (0: none): see tdm_backend_max_buffer_bytes */
    size_t parallel_rows;    /* set by the backend (0: none): see tdm_backend_parallel_rows */
    /* Set by the backend when its sgemm reads op(A) = A^T and op(B) = B, both
     * stored k-major, in place but copies other orientations first (CLBlast's
     * indirect GEMM): layers then transpose an operand themselves where that
     * replaces a transposition they make anyway. */
    bool gemm_prefers_tn;
    /* Set by the backend when small convolutions are better as direct
     * kernels (a GPU, where a launch costs more than their work and
     * CLBlast's GEMM of so few products several launches' time): a conv
     * over small images without T, conv_direct_forward forward and
     * conv_direct_backward for both gradients in one launch; a few-tap conv
     * (a stem) as conv_direct_forward instead of im2col and
     * conv_col_product, and its weight gradient from x (no col kept). */
    bool direct_small_convs;
    tdm_backend_counts counts; /* kept by the backend: see tdm_backend_get_counts */
    tdm_buffer *scratch[TDM_SCRATCH_SLOTS];
};

struct tdm_buffer {
    tdm_backend *backend;
    size_t size;  /* bytes */
    void *handle; /* host pointer (cpu) or cl_mem (opencl) */
};

/* Fills in a backend's common fields, refusing a table built against
 * another version of this header. */
tdm_status tdm_backend_init(tdm_backend *backend, const struct tdm_backend_iface *iface,
                            const char *name);

/* Argument checks shared by the generic layer (backend.c, layer_ops.c). */
tdm_status tdm_check_supported(const tdm_backend *backend, tdm_op op);
/* Floats [view.offset, view.offset + count) lie in the view's buffer, which
 * belongs to backend; `op` and `operand` name them in the message. */
tdm_status tdm_check_view(const tdm_backend *backend, tdm_view view, size_t count, const char *op,
                          const char *operand);
/* [a, a + a_count) and [b, b + b_count) share a float of one buffer. */
bool tdm_views_overlap(tdm_view a, size_t a_count, tdm_view b, size_t b_count);
/* An output view of out_count floats that must not overlap any input (ops
 * that do not work in place): tdm_check_view, then the overlap checks. */
tdm_status tdm_check_output(const tdm_backend *backend, const char *op, tdm_view out,
                            size_t out_count, const char *name, const tdm_view *inputs,
                            const size_t *input_counts, size_t input_count);

/* An sgemm operand ('A', 'B' or 'C') as stored: a row-major matrix of rows
 * x cols floats with leading dimension ld, and the floats it spans. */
typedef struct tdm_matrix {
    size_t rows, cols, ld;
} tdm_matrix;
tdm_matrix tdm_sgemm_operand(const tdm_sgemm_args *args, char operand);
static inline size_t tdm_matrix_floats(tdm_matrix m)
{
    return m.rows == 0 ? 0 : (m.rows - 1) * m.ld + m.cols;
}

/* Pointer to the first float of a view on a host-memory backend. */
static inline float *tdm_view_host_floats(tdm_view view)
{
    return (float *)view.buffer->handle + view.offset;
}

#endif

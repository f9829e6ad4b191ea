/* The layer ops of tandem/layer_ops.h: argument checks, then dispatch; conv2d
 * and linear are composed here, once, from backend primitives and SGEMM. */
#include <math.h>
#include <stdint.h>

#include "backend/backend_impl.h"
#include "core/error.h"

static bool given(tdm_view view)
{
    return view.buffer != NULL;
}

/* *out = a * b * c * d, failing on size_t overflow. */
static tdm_status product(const char *op, size_t a, size_t b, size_t c, size_t d, size_t *out)
{
    size_t factors[] = {a, b, c, d}, result = 1;
    for (int i = 0; i < 4; i++) {
        if (factors[i] != 0 && result > SIZE_MAX / factors[i])
            return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "%s: tensor size overflows", op);
        result *= factors[i];
    }
    *out = result;
    return TDM_OK;
}

static tdm_status require_positive(const char *op, const char *name, size_t value)
{
    if (value == 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "%s: %s must be > 0", op, name);
    return TDM_OK;
}

/* A scratch view of `floats` floats from the backend's slot, grown on demand. */
static tdm_status borrow_scratch(tdm_backend *backend, int slot, size_t floats, tdm_view *out)
{
    tdm_buffer **buffer = &backend->scratch[slot];
    if (floats > SIZE_MAX / sizeof(float))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "scratch of %zu floats is too large", floats);
    if (!*buffer || tdm_buffer_size(*buffer) < floats * sizeof(float)) {
        tdm_buffer_free(*buffer);
        *buffer = NULL;
        TDM_TRY(tdm_buffer_alloc(backend, floats * sizeof(float), buffer));
    }
    *out = (tdm_view){*buffer, 0};
    return TDM_OK;
}

/* ---------- conv2d ---------- */

size_t tdm_window_count(size_t in, size_t pad, size_t kernel, size_t stride)
{
    if (stride == 0 || in + 2 * pad < kernel)
        return 0;
    return (in + 2 * pad - kernel) / stride + 1;
}

size_t tdm_conv2d_out_height(const tdm_conv2d_shape *s)
{
    return tdm_window_count(s->in_height, s->pad_h, s->kernel_h, s->stride_h);
}

size_t tdm_conv2d_out_width(const tdm_conv2d_shape *s)
{
    return tdm_window_count(s->in_width, s->pad_w, s->kernel_w, s->stride_w);
}

/* Element counts of a conv's tensors, validated. */
typedef struct conv_sizes {
    size_t x, weight, y, col_rows, columns; /* col is col_rows x columns */
    size_t dense_rows, dense_columns;       /* T (below): Cout*OH*OW x Cin*H*W */
} conv_sizes;

static tdm_status conv_sizes_of(const char *op, const tdm_conv2d_shape *s, conv_sizes *out)
{
    TDM_TRY(require_positive(op, "in_channels", s->in_channels));
    TDM_TRY(require_positive(op, "out_channels", s->out_channels));
    TDM_TRY(require_positive(op, "input height", s->in_height));
    TDM_TRY(require_positive(op, "input width", s->in_width));
    TDM_TRY(require_positive(op, "kernel height", s->kernel_h));
    TDM_TRY(require_positive(op, "kernel width", s->kernel_w));
    TDM_TRY(require_positive(op, "stride height", s->stride_h));
    TDM_TRY(require_positive(op, "stride width", s->stride_w));
    if (s->pad_h > SIZE_MAX / 4 || s->pad_w > SIZE_MAX / 4)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "%s: padding is too large", op);
    size_t oh = tdm_conv2d_out_height(s), ow = tdm_conv2d_out_width(s);
    if (oh == 0 || ow == 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "%s: the %zux%zu kernel is larger than the padded %zux%zu input", op,
                        s->kernel_h, s->kernel_w, s->in_height + 2 * s->pad_h,
                        s->in_width + 2 * s->pad_w);
    TDM_TRY(product(op, s->batch, s->in_channels, s->in_height, s->in_width, &out->x));
    TDM_TRY(product(op, s->out_channels, s->in_channels, s->kernel_h, s->kernel_w, &out->weight));
    TDM_TRY(product(op, s->batch, s->out_channels, oh, ow, &out->y));
    TDM_TRY(product(op, s->in_channels, s->kernel_h, s->kernel_w, 1, &out->col_rows));
    TDM_TRY(product(op, s->batch, oh, ow, 1, &out->columns));
    TDM_TRY(product(op, s->out_channels, oh, ow, 1, &out->dense_rows));
    TDM_TRY(product(op, s->in_channels, s->in_height, s->in_width, 1, &out->dense_columns));
    size_t col_floats;
    return product(op, out->col_rows, out->columns, 1, 1, &col_floats);
}

/* Every op a composite layer op may run is supported. */
static tdm_status check_all_supported(const tdm_backend *backend, const tdm_op *ops, size_t count)
{
    for (size_t i = 0; i < count; i++)
        TDM_TRY(tdm_check_supported(backend, ops[i]));
    return TDM_OK;
}

static tdm_status check_conv_support(const tdm_backend *backend)
{
    static const tdm_op needed[] = {TDM_OP_IM2COL,
                                    TDM_OP_COL2IM,
                                    TDM_OP_SWAP_AXES,
                                    TDM_OP_TRANSPOSE,
                                    TDM_OP_BIAS_ADD,
                                    TDM_OP_BIAS_BACKWARD,
                                    TDM_OP_CONV_COL_PRODUCT,
                                    TDM_OP_CONV_COL_WEIGHT_GRADIENT,
                                    TDM_OP_SGEMM};
    return check_all_supported(backend, needed, sizeof needed / sizeof needed[0]);
}

/* Small images (H*W <= KH*KW, the ResNet's 2x2 block): the convolution as
 * one dense matrix T [Cout*OH*OW][Cin*H*W] needs no im2col, no axis swap,
 * works on NCHW as it is, and drops the multiply-adds with padding. */
enum { MAX_DENSE_FLOATS = 1 << 22 };

static bool small_images(const tdm_conv2d_shape *s)
{
    return s->in_height * s->in_width <= s->kernel_h * s->kernel_w;
}

/* A backend that runs small convolutions as direct kernels
 * (direct_small_convs: a GPU) and has them. */
static bool direct_convs(const tdm_backend *backend)
{
    return backend->direct_small_convs &&
           tdm_backend_supports_op(backend, TDM_OP_CONV_DIRECT_FORWARD) &&
           tdm_backend_supports_op(backend, TDM_OP_CONV_DIRECT_BACKWARD);
}

/* Small images there: without T, one launch a pass (both gradients one). */
static bool use_direct_small_images(const tdm_backend *backend, const tdm_conv2d_shape *s)
{
    return direct_convs(backend) && small_images(s);
}

static bool use_dense(const tdm_backend *backend, const tdm_conv2d_shape *s, const conv_sizes *n)
{
    return small_images(s) && n->dense_rows <= MAX_DENSE_FLOATS / n->dense_columns &&
           !use_direct_small_images(backend, s) &&
           tdm_backend_supports_op(backend, TDM_OP_CONV_DENSE_WEIGHT) &&
           tdm_backend_supports_op(backend, TDM_OP_CONV_DENSE_WEIGHT_BACKWARD);
}

/* Few taps a sample (a first layer's 1 x 3 x 3): the products with col run
 * without a GEMM, whose padding of so short a k and copies cost more than the
 * products themselves, and write y in NCHW, so no axis swap either. */
static bool use_col_products(const conv_sizes *n)
{
    return n->col_rows <= TDM_CONV_COL_MAX_TAPS;
}

/* The weight gradient without a GEMM runs a channel's (or a weight's) sum
 * over all N*OH*OW positions in one task: past this many positions (an MNIST
 * stem at batch 128 has 100352) a GEMM spreads the work over more threads. */
enum { MAX_COL_GRADIENT_POSITIONS = 1 << 16 };

static bool use_col_weight_gradient(const conv_sizes *n)
{
    return use_col_products(n) && n->columns <= MAX_COL_GRADIENT_POSITIONS;
}

/* Few taps there: the forward without col in one launch, the weight
 * gradient (up to MAX_COL_GRADIENT_POSITIONS) from x, so no col. */
static bool use_direct_products(const tdm_backend *backend, const conv_sizes *n)
{
    return direct_convs(backend) && use_col_products(n);
}

/* The weight gradient from x by conv_direct_backward. */
static bool use_direct_weight_gradient(const tdm_backend *backend, const tdm_conv2d_shape *s,
                                       const conv_sizes *n)
{
    return use_direct_small_images(backend, s) ||
           (use_direct_products(backend, n) && use_col_weight_gradient(n));
}

tdm_status tdm_conv2d_dense_floats(const tdm_backend *backend, const tdm_conv2d_shape *shape,
                                   size_t *floats)
{
    conv_sizes n = {0};
    *floats = 0;
    TDM_TRY(conv_sizes_of("conv2d_dense_floats", shape, &n));
    *floats = use_dense(backend, shape, &n) ? n.dense_rows * n.dense_columns : 0;
    return TDM_OK;
}

static tdm_status require_dense(const tdm_backend *backend, const char *op,
                                const tdm_conv2d_shape *s, const conv_sizes *n)
{
    if (!use_dense(backend, s, n))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "%s: this convolution does not run with a dense matrix on this backend "
                        "(tdm_conv2d_dense_floats gives 0)",
                        op);
    return TDM_OK;
}

/* T of the convolution into scratch slot 0. */
static tdm_status scratch_dense(tdm_backend *backend, const tdm_conv2d_shape *s,
                                const conv_sizes *n, tdm_view weight, tdm_view *dense)
{
    TDM_TRY(borrow_scratch(backend, 0, n->dense_rows * n->dense_columns, dense));
    return backend->iface->conv_dense_weight(backend, s, weight, *dense);
}

/* y += the bias (none: nothing), after any of the forward plans. */
static tdm_status add_conv_bias(tdm_backend *backend, const tdm_conv2d_shape *s,
                                const conv_sizes *n, tdm_view bias, tdm_view y)
{
    return given(bias) ? backend->iface->bias_add(backend, s->batch, s->out_channels,
                                                  n->columns / s->batch, bias, y)
                       : TDM_OK;
}

/* y [N][Cout*OH*OW] = x [N][Cin*H*W] * T^T, then the bias */
static tdm_status dense_forward(tdm_backend *backend, const tdm_conv2d_shape *s,
                                const conv_sizes *n, tdm_view x, tdm_view dense, tdm_view bias,
                                tdm_view y)
{
    size_t rows = n->dense_rows, columns = n->dense_columns;
    tdm_sgemm_args forward = tdm_gemm_args(TDM_NO_TRANS, TDM_TRANS, s->batch, rows, columns, x,
                                           columns, dense, columns, 0.0f, y, rows);
    TDM_TRY(tdm_sgemm(backend, &forward));
    return add_conv_bias(backend, s, n, bias, y);
}

/* dx [N][Cin*H*W] = dy [N][Cout*OH*OW] * T, + dx itself with beta = 1 */
static tdm_status dense_backward_input(tdm_backend *backend, const tdm_conv2d_shape *s,
                                       const conv_sizes *n, tdm_view dense, tdm_view dy, float beta,
                                       tdm_view dx)
{
    size_t rows = n->dense_rows, columns = n->dense_columns;
    tdm_sgemm_args backward = tdm_gemm_args(TDM_NO_TRANS, TDM_NO_TRANS, s->batch, columns, rows, dy,
                                            rows, dense, columns, beta, dx, columns);
    return tdm_sgemm(backend, &backward);
}

static tdm_status dense_backward_weight(tdm_backend *backend, const tdm_conv2d_shape *s,
                                        const conv_sizes *n, tdm_view x, tdm_view dy,
                                        tdm_view dweight)
{
    size_t rows = n->dense_rows, columns = n->dense_columns;
    tdm_view dense_grad;
    TDM_TRY(borrow_scratch(backend, 1, rows * columns, &dense_grad));
    /* dT [Cout*OH*OW][Cin*H*W] = dy^T * x, then each weight adds its tap's entries */
    tdm_sgemm_args backward = tdm_gemm_args(TDM_TRANS, TDM_NO_TRANS, rows, columns, s->batch, dy,
                                            rows, x, columns, 0.0f, dense_grad, columns);
    TDM_TRY(tdm_sgemm(backend, &backward));
    return backend->iface->conv_dense_weight_backward(backend, s, dense_grad, dweight);
}

/* The checks a convolution's forward and backward_input start with: the
 * shape, and with dense that it runs with T; n gets the sizes, *w_count
 * those of the weights as the op takes them (as they are, or as T). */
static tdm_status check_conv_shape(tdm_backend *backend, const char *op, const tdm_conv2d_shape *s,
                                   bool dense, conv_sizes *n, size_t *w_count)
{
    TDM_TRY(check_conv_support(backend));
    TDM_TRY(conv_sizes_of(op, s, n));
    TDM_TRY(dense ? require_dense(backend, op, s, n) : TDM_OK);
    *w_count = dense ? n->dense_rows * n->dense_columns : n->weight;
    return TDM_OK;
}

/* The checks of a convolution's forward; n gets the sizes. */
static tdm_status check_conv_forward(tdm_backend *backend, const char *op,
                                     const tdm_conv2d_shape *s, tdm_view x, tdm_view w, bool dense,
                                     tdm_view bias, tdm_view y, conv_sizes *n)
{
    size_t w_count = 0;
    TDM_TRY(check_conv_shape(backend, op, s, dense, n, &w_count));
    TDM_TRY(tdm_check_view(backend, x, n->x, op, "x"));
    TDM_TRY(tdm_check_view(backend, w, w_count, op, dense ? "dense" : "weight"));
    if (given(bias))
        TDM_TRY(tdm_check_view(backend, bias, s->out_channels, op, "bias"));
    tdm_view inputs[] = {x, w, bias};
    size_t counts[] = {n->x, w_count, given(bias) ? s->out_channels : 0};
    return tdm_check_output(backend, op, y, n->y, "y", inputs, counts, 3);
}

/* x's col [Cin*KH*KW][N*OH*OW] (im2col) in scratch slot 0. */
static tdm_status scratch_col(tdm_backend *backend, const tdm_conv2d_shape *s, const conv_sizes *n,
                              tdm_view x, tdm_view *col)
{
    TDM_TRY(borrow_scratch(backend, 0, n->col_rows * n->columns, col));
    return backend->iface->im2col(backend, s, x, *col);
}

/* y = weight * col as one GEMM into [Cout][N*OH*OW], then swapped to NCHW. */
static tdm_status gemm_forward(tdm_backend *backend, const tdm_conv2d_shape *s, const conv_sizes *n,
                               tdm_view weight, tdm_view col, tdm_view y)
{
    tdm_view y_by_channel;
    TDM_TRY(borrow_scratch(backend, 1, n->y, &y_by_channel));
    tdm_sgemm_args forward =
        tdm_gemm_args(TDM_NO_TRANS, TDM_NO_TRANS, s->out_channels, n->columns, n->col_rows, weight,
                      n->col_rows, col, n->columns, 0.0f, y_by_channel, n->columns);
    TDM_TRY(tdm_sgemm(backend, &forward));
    return backend->iface->swap_axes(backend, s->out_channels, s->batch, n->columns / s->batch,
                                     y_by_channel, y);
}

/* y from x's col (in any buffer), then the bias. */
static tdm_status col_forward(tdm_backend *backend, const tdm_conv2d_shape *s, const conv_sizes *n,
                              tdm_view col, tdm_view weight, tdm_view bias, tdm_view y)
{
    if (use_col_products(n))
        TDM_TRY(backend->iface->conv_col_product(backend, s, weight, col, y));
    else
        TDM_TRY(gemm_forward(backend, s, n, weight, col, y));
    return add_conv_bias(backend, s, n, bias, y);
}

tdm_status tdm_conv2d_forward(tdm_backend *backend, const tdm_conv2d_shape *shape, tdm_view x,
                              tdm_view weight, tdm_view bias, tdm_view y)
{
    conv_sizes n = {0};
    TDM_TRY(check_conv_forward(backend, "conv2d_forward", shape, x, weight, false, bias, y, &n));
    if (shape->batch == 0)
        return TDM_OK;
    if (use_dense(backend, shape, &n)) {
        tdm_view dense;
        TDM_TRY(scratch_dense(backend, shape, &n, weight, &dense));
        return dense_forward(backend, shape, &n, x, dense, bias, y);
    }
    if (use_direct_small_images(backend, shape) || use_direct_products(backend, &n)) {
        TDM_TRY(backend->iface->conv_direct_forward(backend, shape, x, weight, y));
        return add_conv_bias(backend, shape, &n, bias, y);
    }
    tdm_view col;
    TDM_TRY(scratch_col(backend, shape, &n, x, &col));
    return col_forward(backend, shape, &n, col, weight, bias, y);
}

/* A kept col runs where the products with it need no GEMM (few taps: the
 * col is then no larger than a 16-channel output) and are not direct. */
static bool keeps_col(const tdm_backend *backend, const tdm_conv2d_shape *s, const conv_sizes *n)
{
    return !use_dense(backend, s, n) && use_col_products(n) && !use_direct_products(backend, n);
}

tdm_status tdm_conv2d_col_floats(const tdm_backend *backend, const tdm_conv2d_shape *shape,
                                 size_t *floats)
{
    conv_sizes n = {0};
    *floats = 0;
    TDM_TRY(conv_sizes_of("conv2d_col_floats", shape, &n));
    *floats = keeps_col(backend, shape, &n) ? n.col_rows * n.columns : 0;
    return TDM_OK;
}

static tdm_status require_kept_col(tdm_backend *backend, const char *op, const tdm_conv2d_shape *s,
                                   const conv_sizes *n, tdm_view col, bool written,
                                   const tdm_view *inputs, const size_t *counts, size_t count)
{
    if (!keeps_col(backend, s, n))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "%s: this convolution keeps no col on this backend "
                        "(tdm_conv2d_col_floats gives 0)",
                        op);
    size_t floats = n->col_rows * n->columns;
    return written ? tdm_check_output(backend, op, col, floats, "col", inputs, counts, count)
                   : tdm_check_view(backend, col, floats, op, "col");
}

tdm_status tdm_conv2d_forward_col(tdm_backend *backend, const tdm_conv2d_shape *shape, tdm_view x,
                                  tdm_view weight, tdm_view bias, tdm_view y, tdm_view col)
{
    const char *op = "conv2d_forward_col";
    conv_sizes n = {0};
    TDM_TRY(check_conv_forward(backend, op, shape, x, weight, false, bias, y, &n));
    tdm_view others[] = {x, weight, bias, y};
    size_t counts[] = {n.x, n.weight, given(bias) ? shape->out_channels : 0, n.y};
    TDM_TRY(require_kept_col(backend, op, shape, &n, col, true, others, counts, 4));
    if (shape->batch == 0)
        return TDM_OK;
    TDM_TRY(backend->iface->im2col(backend, shape, x, col));
    return col_forward(backend, shape, &n, col, weight, bias, y);
}

tdm_status tdm_conv2d_dense_weight(tdm_backend *backend, const tdm_conv2d_shape *shape,
                                   tdm_view weight, tdm_view dense)
{
    const char *op = "conv2d_dense_weight";
    conv_sizes n = {0};
    TDM_TRY(check_conv_support(backend));
    TDM_TRY(conv_sizes_of(op, shape, &n));
    TDM_TRY(require_dense(backend, op, shape, &n));
    TDM_TRY(tdm_check_view(backend, weight, n.weight, op, "weight"));
    TDM_TRY(tdm_check_output(backend, op, dense, n.dense_rows * n.dense_columns, "dense", &weight,
                             &n.weight, 1));
    return backend->iface->conv_dense_weight(backend, shape, weight, dense);
}

tdm_status tdm_conv2d_forward_dense(tdm_backend *backend, const tdm_conv2d_shape *shape, tdm_view x,
                                    tdm_view dense, tdm_view bias, tdm_view y)
{
    conv_sizes n = {0};
    TDM_TRY(
        check_conv_forward(backend, "conv2d_forward_dense", shape, x, dense, true, bias, y, &n));
    return shape->batch ? dense_forward(backend, shape, &n, x, dense, bias, y) : TDM_OK;
}

/* dy [N][Cout][P] into scratch slot 1 as [Cout][N*P], the GEMM's layout. */
static tdm_status dy_by_channel(tdm_backend *backend, const tdm_conv2d_shape *shape,
                                const conv_sizes *n, tdm_view dy, tdm_view *out)
{
    TDM_TRY(borrow_scratch(backend, 1, n->y, out));
    return backend->iface->swap_axes(backend, shape->batch, shape->out_channels,
                                     n->columns / shape->batch, dy, *out);
}

/* The checks of a convolution's backward_input; n gets the sizes. */
static tdm_status check_conv_backward_input(tdm_backend *backend, const char *op,
                                            const tdm_conv2d_shape *s, tdm_view w, bool dense,
                                            tdm_view dy, tdm_view dx, conv_sizes *n)
{
    size_t w_count = 0;
    TDM_TRY(check_conv_shape(backend, op, s, dense, n, &w_count));
    TDM_TRY(tdm_check_view(backend, w, w_count, op, dense ? "dense" : "weight"));
    TDM_TRY(tdm_check_view(backend, dy, n->y, op, "dy"));
    tdm_view inputs[] = {w, dy};
    size_t counts[] = {w_count, n->y};
    return tdm_check_output(backend, op, dx, n->x, "dx", inputs, counts, 2);
}

tdm_status tdm_conv2d_backward_input(tdm_backend *backend, const tdm_conv2d_shape *shape,
                                     tdm_view weight, tdm_view dy, tdm_view dx)
{
    conv_sizes n = {0};
    TDM_TRY(check_conv_backward_input(backend, "conv2d_backward_input", shape, weight, false, dy,
                                      dx, &n));
    if (shape->batch == 0)
        return TDM_OK;
    if (use_direct_small_images(backend, shape))
        return backend->iface->conv_direct_backward(backend, shape, (tdm_view){0}, weight, dy, dx,
                                                    (tdm_view){0}, false);
    if (use_dense(backend, shape, &n)) {
        tdm_view dense;
        TDM_TRY(scratch_dense(backend, shape, &n, weight, &dense));
        return dense_backward_input(backend, shape, &n, dense, dy, 0.0f, dx);
    }
    tdm_view dy_t, dcol;
    TDM_TRY(dy_by_channel(backend, shape, &n, dy, &dy_t));
    TDM_TRY(borrow_scratch(backend, 0, n.col_rows * n.columns, &dcol));
    /* dcol [Cin*KH*KW][N*OH*OW] = weight^T * dy_t */
    tdm_sgemm_args backward =
        tdm_gemm_args(TDM_TRANS, TDM_NO_TRANS, n.col_rows, n.columns, shape->out_channels, weight,
                      n.col_rows, dy_t, n.columns, 0.0f, dcol, n.columns);
    TDM_TRY(tdm_sgemm(backend, &backward));
    return backend->iface->col2im(backend, shape, dcol, dx);
}

static tdm_status backward_input_dense(tdm_backend *backend, const char *op,
                                       const tdm_conv2d_shape *shape, tdm_view dense, tdm_view dy,
                                       float beta, tdm_view dx)
{
    conv_sizes n = {0};
    TDM_TRY(check_conv_backward_input(backend, op, shape, dense, true, dy, dx, &n));
    return shape->batch ? dense_backward_input(backend, shape, &n, dense, dy, beta, dx) : TDM_OK;
}

tdm_status tdm_conv2d_backward_input_dense(tdm_backend *backend, const tdm_conv2d_shape *shape,
                                           tdm_view dense, tdm_view dy, tdm_view dx)
{
    return backward_input_dense(backend, "conv2d_backward_input_dense", shape, dense, dy, 0.0f, dx);
}

tdm_status tdm_conv2d_accumulates(const tdm_backend *backend, const tdm_conv2d_shape *shape,
                                  bool *accumulates)
{
    conv_sizes n = {0};
    *accumulates = false;
    TDM_TRY(conv_sizes_of("conv2d_accumulates", shape, &n));
    *accumulates = use_direct_small_images(backend, shape);
    return TDM_OK;
}

tdm_status tdm_conv2d_backward_input_dense_accumulate(tdm_backend *backend,
                                                      const tdm_conv2d_shape *shape, tdm_view dense,
                                                      tdm_view dy, tdm_view dx)
{
    return backward_input_dense(backend, "conv2d_backward_input_dense_accumulate", shape, dense, dy,
                                1.0f, dx);
}

/* dweight [Cout][Cin*KH*KW] += dy_rows^T * col_rows, both operands stored
 * k-major for a backend whose GEMM reads them so in place
 * (gemm_prefers_tn): dy [N][Cout][P] as dy_rows [N*P][Cout], each sample
 * transposed (where the other form swaps whole planes, and the GEMM then
 * transposes again), and col transposed to col_rows [N*P][Cin*KH*KW]. */
static tdm_status backward_weight_tn(tdm_backend *backend, const tdm_conv2d_shape *s,
                                     const conv_sizes *n, tdm_view col, tdm_view dy,
                                     tdm_view dweight)
{
    tdm_view dy_rows, col_rows;
    TDM_TRY(borrow_scratch(backend, 1, n->y, &dy_rows));
    TDM_TRY(backend->iface->transpose(backend, s->batch, s->out_channels, n->columns / s->batch, dy,
                                      dy_rows));
    TDM_TRY(borrow_scratch(backend, 2, n->col_rows * n->columns, &col_rows));
    TDM_TRY(backend->iface->transpose(backend, 1, n->col_rows, n->columns, col, col_rows));
    tdm_sgemm_args backward =
        tdm_gemm_args(TDM_TRANS, TDM_NO_TRANS, s->out_channels, n->col_rows, n->columns, dy_rows,
                      s->out_channels, col_rows, n->col_rows, 1.0f, dweight, n->col_rows);
    return tdm_sgemm(backend, &backward);
}

/* dweight += the products of dy with x's col (in any buffer but scratch
 * slots 1 and 2): without a GEMM for few taps and positions
 * (use_col_weight_gradient), else by GEMM. */
static tdm_status col_backward_weight(tdm_backend *backend, const tdm_conv2d_shape *s,
                                      const conv_sizes *n, tdm_view col, tdm_view dy,
                                      tdm_view dweight)
{
    if (use_col_weight_gradient(n))
        return backend->iface->conv_col_weight_gradient(backend, s, dy, col, dweight);
    if (backend->gemm_prefers_tn)
        return backward_weight_tn(backend, s, n, col, dy, dweight);
    tdm_view dy_t;
    TDM_TRY(dy_by_channel(backend, s, n, dy, &dy_t));
    /* dweight [Cout][Cin*KH*KW] += dy_t * col^T */
    tdm_sgemm_args backward =
        tdm_gemm_args(TDM_NO_TRANS, TDM_TRANS, s->out_channels, n->col_rows, n->columns, dy_t,
                      n->columns, col, n->columns, 1.0f, dweight, n->col_rows);
    return tdm_sgemm(backend, &backward);
}

/* The checks of a convolution's backward_weight; n gets the sizes. `input`
 * is x, or col (col_floats of them). */
static tdm_status check_conv_backward_weight(tdm_backend *backend, const char *op,
                                             const tdm_conv2d_shape *s, tdm_view input,
                                             bool input_is_col, tdm_view dy, tdm_view dweight,
                                             tdm_view dbias, conv_sizes *n)
{
    TDM_TRY(check_conv_support(backend));
    TDM_TRY(conv_sizes_of(op, s, n));
    size_t input_count = input_is_col ? n->col_rows * n->columns : n->x;
    if (input_is_col)
        TDM_TRY(require_kept_col(backend, op, s, n, input, false, NULL, NULL, 0));
    else
        TDM_TRY(tdm_check_view(backend, input, input_count, op, "x"));
    TDM_TRY(tdm_check_view(backend, dy, n->y, op, "dy"));
    tdm_view inputs[] = {input, dy};
    size_t counts[] = {input_count, n->y};
    TDM_TRY(tdm_check_output(backend, op, dweight, n->weight, "dweight", inputs, counts, 2));
    return given(dbias)
               ? tdm_check_output(backend, op, dbias, s->out_channels, "dbias", inputs, counts, 2)
               : TDM_OK;
}

static tdm_status conv_backward_bias(tdm_backend *backend, const tdm_conv2d_shape *s,
                                     const conv_sizes *n, tdm_view dy, tdm_view dbias)
{
    if (s->batch == 0 || !given(dbias))
        return TDM_OK;
    return backend->iface->bias_backward(backend, s->batch, s->out_channels, n->columns / s->batch,
                                         dy, dbias);
}

/* Those checks, then the bias's gradient. */
static tdm_status backward_weight_start(tdm_backend *backend, const char *op,
                                        const tdm_conv2d_shape *s, tdm_view input,
                                        bool input_is_col, tdm_view dy, tdm_view dweight,
                                        tdm_view dbias, conv_sizes *n)
{
    TDM_TRY(check_conv_backward_weight(backend, op, s, input, input_is_col, dy, dweight, dbias, n));
    return conv_backward_bias(backend, s, n, dy, dbias);
}

tdm_status tdm_conv2d_backward_weight(tdm_backend *backend, const tdm_conv2d_shape *shape,
                                      tdm_view x, tdm_view dy, tdm_view dweight, tdm_view dbias)
{
    conv_sizes n = {0};
    TDM_TRY(backward_weight_start(backend, "conv2d_backward_weight", shape, x, false, dy, dweight,
                                  dbias, &n));
    if (shape->batch == 0)
        return TDM_OK;
    if (use_direct_weight_gradient(backend, shape, &n))
        return backend->iface->conv_direct_backward(backend, shape, x, (tdm_view){0}, dy,
                                                    (tdm_view){0}, dweight, false);
    if (use_dense(backend, shape, &n))
        return dense_backward_weight(backend, shape, &n, x, dy, dweight);
    tdm_view col;
    TDM_TRY(scratch_col(backend, shape, &n, x, &col));
    return col_backward_weight(backend, shape, &n, col, dy, dweight);
}

/* Both gradients (dx may be empty; with accumulate it takes dx's own value
 * plus its gradient): one conv_direct_backward where the convolution runs
 * as direct kernels, else the weight gradient and then the input one. */
static tdm_status conv_backward(tdm_backend *backend, const char *op, const tdm_conv2d_shape *s,
                                tdm_view x, tdm_view weight, tdm_view dy, tdm_view dx,
                                tdm_view dweight, tdm_view dbias, bool accumulate)
{
    conv_sizes n = {0};
    TDM_TRY(check_conv_backward_weight(backend, op, s, x, false, dy, dweight, dbias, &n));
    if (given(dx)) {
        TDM_TRY(check_conv_backward_input(backend, op, s, weight, false, dy, dx, &n));
        tdm_view others[] = {x, dweight, dbias};
        size_t counts[] = {n.x, n.weight, given(dbias) ? s->out_channels : 0};
        TDM_TRY(tdm_check_output(backend, op, dx, n.x, "dx", others, counts, 3));
    }
    if (accumulate && !use_direct_small_images(backend, s))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "%s: this convolution adds its input gradient in place only as a direct "
                        "kernel over small images (tdm_conv2d_accumulates gives false)",
                        op);
    if (s->batch == 0)
        return TDM_OK;
    TDM_TRY(conv_backward_bias(backend, s, &n, dy, dbias));
    if (use_direct_small_images(backend, s) ||
        (!given(dx) && use_direct_weight_gradient(backend, s, &n)))
        return backend->iface->conv_direct_backward(backend, s, x, weight, dy, dx, dweight,
                                                    accumulate);
    TDM_TRY(tdm_conv2d_backward_weight(backend, s, x, dy, dweight, (tdm_view){0}));
    return given(dx) ? tdm_conv2d_backward_input(backend, s, weight, dy, dx) : TDM_OK;
}

tdm_status tdm_conv2d_backward(tdm_backend *backend, const tdm_conv2d_shape *shape, tdm_view x,
                               tdm_view weight, tdm_view dy, tdm_view dx, tdm_view dweight,
                               tdm_view dbias)
{
    return conv_backward(backend, "conv2d_backward", shape, x, weight, dy, dx, dweight, dbias,
                         false);
}

tdm_status tdm_conv2d_backward_accumulate(tdm_backend *backend, const tdm_conv2d_shape *shape,
                                          tdm_view x, tdm_view weight, tdm_view dy, tdm_view dx,
                                          tdm_view dweight, tdm_view dbias)
{
    if (!given(dx))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "conv2d_backward_accumulate: dx is empty");
    return conv_backward(backend, "conv2d_backward_accumulate", shape, x, weight, dy, dx, dweight,
                         dbias, true);
}

tdm_status tdm_conv2d_backward_weight_col(tdm_backend *backend, const tdm_conv2d_shape *shape,
                                          tdm_view col, tdm_view dy, tdm_view dweight,
                                          tdm_view dbias)
{
    conv_sizes n = {0};
    TDM_TRY(backward_weight_start(backend, "conv2d_backward_weight_col", shape, col, true, dy,
                                  dweight, dbias, &n));
    return shape->batch ? col_backward_weight(backend, shape, &n, col, dy, dweight) : TDM_OK;
}

/* ---------- bias ---------- */

static tdm_status check_bias(tdm_backend *backend, const char *op, tdm_op id, size_t batch,
                             size_t channels, size_t spatial, size_t *count)
{
    TDM_TRY(tdm_check_supported(backend, id));
    TDM_TRY(require_positive(op, "channels", channels));
    TDM_TRY(require_positive(op, "spatial", spatial));
    return product(op, batch, channels, spatial, 1, count);
}

tdm_status tdm_bias_add(tdm_backend *backend, size_t batch, size_t channels, size_t spatial,
                        tdm_view bias, tdm_view y)
{
    size_t count = 0;
    TDM_TRY(check_bias(backend, "bias_add", TDM_OP_BIAS_ADD, batch, channels, spatial, &count));
    TDM_TRY(tdm_check_view(backend, bias, channels, "bias_add", "bias"));
    TDM_TRY(tdm_check_output(backend, "bias_add", y, count, "y", &bias, &channels, 1));
    return count ? backend->iface->bias_add(backend, batch, channels, spatial, bias, y) : TDM_OK;
}

tdm_status tdm_bias_backward(tdm_backend *backend, size_t batch, size_t channels, size_t spatial,
                             tdm_view dy, tdm_view dbias)
{
    size_t count = 0;
    TDM_TRY(check_bias(backend, "bias_backward", TDM_OP_BIAS_BACKWARD, batch, channels, spatial,
                       &count));
    TDM_TRY(tdm_check_view(backend, dy, count, "bias_backward", "dy"));
    TDM_TRY(tdm_check_output(backend, "bias_backward", dbias, channels, "dbias", &dy, &count, 1));
    if (batch == 0)
        return TDM_OK;
    return backend->iface->bias_backward(backend, batch, channels, spatial, dy, dbias);
}

/* ---------- linear ---------- */

static size_t pool_of(const tdm_linear_shape *s)
{
    return s->pool > 1 ? s->pool : 1;
}

/* A pooled layer's features [N][in] in scratch slot 2 (global_avgpool's
 * mean of each pool), or x itself without pooling. */
static tdm_status pooled_features(tdm_backend *backend, const tdm_linear_shape *s, tdm_view x,
                                  tdm_view *features)
{
    if (pool_of(s) == 1) {
        *features = x;
        return TDM_OK;
    }
    TDM_TRY(borrow_scratch(backend, 2, s->batch * s->in_features, features));
    return backend->iface->global_avgpool(backend, s->batch * s->in_features, s->pool, x,
                                          *features);
}

static tdm_status check_linear(tdm_backend *backend, const char *op, const tdm_linear_shape *s,
                               size_t *x_count, size_t *weight_count, size_t *y_count)
{
    static const tdm_op needed[] = {TDM_OP_SGEMM,
                                    TDM_OP_BIAS_ADD,
                                    TDM_OP_BIAS_BACKWARD,
                                    TDM_OP_SMALL_LINEAR,
                                    TDM_OP_SMALL_LINEAR_BACKWARD,
                                    TDM_OP_GLOBAL_AVGPOOL,
                                    TDM_OP_GLOBAL_AVGPOOL_BACKWARD};
    TDM_TRY(check_all_supported(backend, needed, sizeof needed / sizeof needed[0]));
    TDM_TRY(require_positive(op, "in_features", s->in_features));
    TDM_TRY(require_positive(op, "out_features", s->out_features));
    TDM_TRY(product(op, s->batch, s->in_features, pool_of(s), 1, x_count));
    TDM_TRY(product(op, s->out_features, s->in_features, 1, 1, weight_count));
    return product(op, s->batch, s->out_features, 1, 1, y_count);
}

/* The weight gradient without a GEMM sums each weight's products over the
 * batch in one work-item: past this batch a GEMM spreads the work wider. */
enum { MAX_SMALL_LINEAR_BATCH = 1 << 16 };

/* Few weights (ResNet's head: 64 x 10): one launch a pass without a GEMM,
 * where CLBlast's GEMM (and its bias launch) costs several launches' time
 * for so few products. */
static bool use_small_linear(const tdm_linear_shape *s, size_t weight_count)
{
    return weight_count <= TDM_SMALL_LINEAR_MAX_WEIGHTS && s->batch <= MAX_SMALL_LINEAR_BATCH;
}

tdm_status tdm_linear_forward(tdm_backend *backend, const tdm_linear_shape *s, tdm_view x,
                              tdm_view weight, tdm_view bias, tdm_view y)
{
    const char *op = "linear_forward";
    size_t nx = 0, nw = 0, ny = 0;
    TDM_TRY(check_linear(backend, op, s, &nx, &nw, &ny));
    TDM_TRY(tdm_check_view(backend, x, nx, op, "x"));
    TDM_TRY(tdm_check_view(backend, weight, nw, op, "weight"));
    if (given(bias))
        TDM_TRY(tdm_check_view(backend, bias, s->out_features, op, "bias"));
    tdm_view inputs[] = {x, weight, bias};
    size_t counts[] = {nx, nw, given(bias) ? s->out_features : 0};
    TDM_TRY(tdm_check_output(backend, op, y, ny, "y", inputs, counts, 3));
    if (s->batch == 0)
        return TDM_OK;
    if (use_small_linear(s, nw))
        return backend->iface->small_linear(backend, s, x, weight, bias, y);
    tdm_view features;
    TDM_TRY(pooled_features(backend, s, x, &features));
    /* y [N][out] = features [N][in] * weight^T */
    tdm_sgemm_args forward =
        tdm_gemm_args(TDM_NO_TRANS, TDM_TRANS, s->batch, s->out_features, s->in_features, features,
                      s->in_features, weight, s->in_features, 0.0f, y, s->out_features);
    TDM_TRY(tdm_sgemm(backend, &forward));
    if (given(bias))
        TDM_TRY(backend->iface->bias_add(backend, s->batch, s->out_features, 1, bias, y));
    return TDM_OK;
}

/* dx [N][in] = dy [N][out] * weight [out][in], by GEMM; pooled, into
 * scratch slot 2 and then spread over each pool (global_avgpool_backward). */
static tdm_status gemm_linear_backward_input(tdm_backend *backend, const tdm_linear_shape *s,
                                             tdm_view weight, tdm_view dy, tdm_view dx)
{
    tdm_view features_grad = dx;
    if (pool_of(s) > 1)
        TDM_TRY(borrow_scratch(backend, 2, s->batch * s->in_features, &features_grad));
    tdm_sgemm_args backward =
        tdm_gemm_args(TDM_NO_TRANS, TDM_NO_TRANS, s->batch, s->in_features, s->out_features, dy,
                      s->out_features, weight, s->in_features, 0.0f, features_grad, s->in_features);
    TDM_TRY(tdm_sgemm(backend, &backward));
    return pool_of(s) > 1 ? backend->iface->global_avgpool_backward(
                                backend, s->batch * s->in_features, s->pool, features_grad, dx)
                          : TDM_OK;
}

/* dweight [out][in] += dy^T [out][N] * features [N][in] by GEMM; dbias +=
 * column sums of dy. */
static tdm_status gemm_linear_backward_weight(tdm_backend *backend, const tdm_linear_shape *s,
                                              tdm_view x, tdm_view dy, tdm_view dweight,
                                              tdm_view dbias)
{
    tdm_view features;
    TDM_TRY(pooled_features(backend, s, x, &features));
    tdm_sgemm_args backward =
        tdm_gemm_args(TDM_TRANS, TDM_NO_TRANS, s->out_features, s->in_features, s->batch, dy,
                      s->out_features, features, s->in_features, 1.0f, dweight, s->in_features);
    TDM_TRY(tdm_sgemm(backend, &backward));
    if (given(dbias))
        TDM_TRY(backend->iface->bias_backward(backend, s->batch, s->out_features, 1, dy, dbias));
    return TDM_OK;
}

/* The gradients a linear layer's backward is asked for: dx, or dweight and
 * dbias, or all three; empty views are not computed. */
typedef struct linear_gradients {
    tdm_view dx, dweight, dbias;
} linear_gradients;

static tdm_status check_linear_backward(tdm_backend *backend, const char *op,
                                        const tdm_linear_shape *s, tdm_view x, tdm_view weight,
                                        tdm_view dy, const linear_gradients *g,
                                        size_t *weight_count)
{
    size_t nx = 0, ny = 0;
    TDM_TRY(check_linear(backend, op, s, &nx, weight_count, &ny));
    if (given(g->dweight)) /* always with dx and relu: the mask reads x too */
        TDM_TRY(tdm_check_view(backend, x, nx, op, "x"));
    if (given(g->dx))
        TDM_TRY(tdm_check_view(backend, weight, *weight_count, op, "weight"));
    TDM_TRY(tdm_check_view(backend, dy, ny, op, "dy"));
    /* Each output is checked against the inputs and the outputs before it. */
    tdm_view operands[] = {x, weight, dy, g->dx, g->dweight};
    size_t counts[] = {given(g->dweight) ? nx : 0, given(g->dx) ? *weight_count : 0, ny,
                       given(g->dx) ? nx : 0, given(g->dweight) ? *weight_count : 0};
    if (given(g->dx))
        TDM_TRY(tdm_check_output(backend, op, g->dx, nx, "dx", operands, counts, 3));
    if (given(g->dweight))
        TDM_TRY(tdm_check_output(backend, op, g->dweight, *weight_count, "dweight", operands,
                                 counts, 4));
    if (given(g->dbias))
        TDM_TRY(
            tdm_check_output(backend, op, g->dbias, s->out_features, "dbias", operands, counts, 5));
    return TDM_OK;
}

static tdm_status linear_backward(tdm_backend *backend, const char *op, const tdm_linear_shape *s,
                                  tdm_view x, tdm_view weight, tdm_view dy,
                                  const linear_gradients *g)
{
    size_t nw = 0;
    TDM_TRY(check_linear_backward(backend, op, s, x, weight, dy, g, &nw));
    if (s->batch == 0)
        return TDM_OK;
    if (use_small_linear(s, nw))
        return backend->iface->small_linear_backward(backend, s, x, weight, dy, g->dx, g->dweight,
                                                     g->dbias);
    if (given(g->dweight))
        TDM_TRY(gemm_linear_backward_weight(backend, s, x, dy, g->dweight, g->dbias));
    if (!given(g->dx))
        return TDM_OK;
    TDM_TRY(gemm_linear_backward_input(backend, s, weight, dy, g->dx));
    return s->relu
               ? tdm_relu_backward(backend, s->batch * s->in_features * pool_of(s), x, g->dx, g->dx)
               : TDM_OK;
}

tdm_status tdm_linear_backward_input(tdm_backend *backend, const tdm_linear_shape *s,
                                     tdm_view weight, tdm_view dy, tdm_view dx)
{
    if (!given(dx))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "linear_backward_input: dx is empty");
    if (s->relu)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "linear_backward_input: shape.relu masks dx with x, which this call has "
                        "not (tdm_linear_backward takes it)");
    linear_gradients g = {.dx = dx};
    return linear_backward(backend, "linear_backward_input", s, (tdm_view){0}, weight, dy, &g);
}

tdm_status tdm_linear_backward_weight(tdm_backend *backend, const tdm_linear_shape *s, tdm_view x,
                                      tdm_view dy, tdm_view dweight, tdm_view dbias)
{
    if (!given(dweight))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "linear_backward_weight: dweight is empty");
    linear_gradients g = {.dweight = dweight, .dbias = dbias};
    return linear_backward(backend, "linear_backward_weight", s, x, (tdm_view){0}, dy, &g);
}

tdm_status tdm_linear_backward(tdm_backend *backend, const tdm_linear_shape *s, tdm_view x,
                               tdm_view weight, tdm_view dy, tdm_view dx, tdm_view dweight,
                               tdm_view dbias)
{
    if (!given(dweight))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "linear_backward: dweight is empty");
    linear_gradients g = {.dx = dx, .dweight = dweight, .dbias = dbias};
    return linear_backward(backend, "linear_backward", s, x, weight, dy, &g);
}

/* ---------- batchnorm2d ---------- */

/* batchnorm2d's arguments are checked here; the backend's two batchnorm
 * ops, forward (training or evaluation) and backward, do the work. */
static tdm_status check_batchnorm(tdm_backend *backend, const char *op, tdm_op id,
                                  const tdm_batchnorm_shape *s, size_t *count)
{
    TDM_TRY(tdm_check_supported(backend, id));
    TDM_TRY(require_positive(op, "channels", s->channels));
    TDM_TRY(require_positive(op, "spatial", s->spatial));
    if (!(s->eps > 0.0f) || !(s->eps < 1.0f))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "%s: eps must lie in (0, 1), got %g", op,
                        (double)s->eps);
    if (!(s->momentum >= 0.0f && s->momentum <= 1.0f))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "%s: momentum must lie in [0, 1], got %g", op,
                        (double)s->momentum);
    return product(op, s->batch, s->channels, s->spatial, 1, count);
}

/* Checks each named per-channel view (those with a NULL name are skipped). */
static tdm_status check_channel_views(tdm_backend *backend, const char *op, size_t channels,
                                      const tdm_view *views, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (names[i])
            TDM_TRY(tdm_check_view(backend, views[i], channels, op, names[i]));
    return TDM_OK;
}

/* The checks of a forward (training: save_mean and save_invstd written
 * too), then the op; v holds its operands. */
static tdm_status norm_forward(tdm_backend *backend, const char *op, const tdm_batchnorm_shape *s,
                               const tdm_batchnorm_views *v, bool train)
{
    size_t count = 0;
    TDM_TRY(check_batchnorm(backend, op, TDM_OP_BATCHNORM_FORWARD, s, &count));
    if (train && s->batch * s->spatial < 2)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "%s: training needs more than one value per channel (batch %zu x "
                        "spatial %zu)",
                        op, s->batch, s->spatial);
    tdm_view params[] = {v->gamma,       v->beta,      v->running_mean,
                         v->running_var, v->save_mean, v->save_invstd};
    static const char *const names[] = {"gamma",       "beta",      "running_mean",
                                        "running_var", "save_mean", "save_invstd"};
    TDM_TRY(check_channel_views(backend, op, s->channels, params, names, train ? 6 : 4));
    TDM_TRY(tdm_check_view(backend, v->x, count, op, "x"));
    if (given(v->residual))
        TDM_TRY(tdm_check_view(backend, v->residual, count, op, "residual"));
    tdm_view inputs[] = {v->x, v->gamma, v->beta, v->running_mean, v->running_var, v->residual};
    size_t counts[] = {count,       s->channels, s->channels,
                       s->channels, s->channels, given(v->residual) ? count : 0};
    TDM_TRY(tdm_check_output(backend, op, v->y, count, "y", inputs, counts, 6));
    if (train) {
        TDM_TRY(tdm_check_output(backend, op, v->save_mean, s->channels, "save_mean", inputs,
                                 counts, 6));
        TDM_TRY(tdm_check_output(backend, op, v->save_invstd, s->channels, "save_invstd", inputs,
                                 counts, 6));
    }
    return count ? backend->iface->batchnorm_forward(backend, s, v, train) : TDM_OK;
}

/* The training forward's operands, checked under the name `op`. */
static tdm_status train_named(tdm_backend *backend, const char *op, const tdm_batchnorm_shape *s,
                              tdm_view x, tdm_view residual, tdm_view gamma, tdm_view beta,
                              tdm_view running_mean, tdm_view running_var, tdm_view save_mean,
                              tdm_view save_invstd, tdm_view y)
{
    tdm_batchnorm_views v = {.x = x,
                             .residual = residual,
                             .gamma = gamma,
                             .beta = beta,
                             .running_mean = running_mean,
                             .running_var = running_var,
                             .save_mean = save_mean,
                             .save_invstd = save_invstd,
                             .y = y};
    return norm_forward(backend, op, s, &v, true);
}

/* The evaluation forward's operands, checked under the name `op`. */
static tdm_status eval_named(tdm_backend *backend, const char *op, const tdm_batchnorm_shape *s,
                             tdm_view x, tdm_view residual, tdm_view gamma, tdm_view beta,
                             tdm_view running_mean, tdm_view running_var, tdm_view y)
{
    tdm_batchnorm_views v = {.x = x,
                             .residual = residual,
                             .gamma = gamma,
                             .beta = beta,
                             .running_mean = running_mean,
                             .running_var = running_var,
                             .y = y};
    return norm_forward(backend, op, s, &v, false);
}

tdm_status tdm_batchnorm_forward_train(tdm_backend *backend, const tdm_batchnorm_shape *s,
                                       tdm_view x, tdm_view gamma, tdm_view beta,
                                       tdm_view running_mean, tdm_view running_var,
                                       tdm_view save_mean, tdm_view save_invstd, tdm_view y)
{
    return train_named(backend, "batchnorm_forward_train", s, x, (tdm_view){0}, gamma, beta,
                       running_mean, running_var, save_mean, save_invstd, y);
}

tdm_status tdm_batchnorm_forward_eval(tdm_backend *backend, const tdm_batchnorm_shape *s,
                                      tdm_view x, tdm_view gamma, tdm_view beta,
                                      tdm_view running_mean, tdm_view running_var, tdm_view y)
{
    return eval_named(backend, "batchnorm_forward_eval", s, x, (tdm_view){0}, gamma, beta,
                      running_mean, running_var, y);
}

tdm_status tdm_batchnorm_add_forward_train(tdm_backend *backend, const tdm_batchnorm_shape *s,
                                           tdm_view x, tdm_view residual, tdm_view gamma,
                                           tdm_view beta, tdm_view running_mean,
                                           tdm_view running_var, tdm_view save_mean,
                                           tdm_view save_invstd, tdm_view y)
{
    return train_named(backend, "batchnorm_add_forward_train", s, x, residual, gamma, beta,
                       running_mean, running_var, save_mean, save_invstd, y);
}

tdm_status tdm_batchnorm_add_forward_eval(tdm_backend *backend, const tdm_batchnorm_shape *s,
                                          tdm_view x, tdm_view residual, tdm_view gamma,
                                          tdm_view beta, tdm_view running_mean,
                                          tdm_view running_var, tdm_view y)
{
    return eval_named(backend, "batchnorm_add_forward_eval", s, x, residual, gamma, beta,
                      running_mean, running_var, y);
}

/* The checks of a backward pass; v holds its operands. */
static tdm_status check_backward(tdm_backend *backend, const char *op, const tdm_batchnorm_shape *s,
                                 const tdm_batchnorm_views *v)
{
    size_t count = 0;
    TDM_TRY(check_batchnorm(backend, op, TDM_OP_BATCHNORM_BACKWARD, s, &count));
    tdm_view params[] = {v->gamma, v->save_mean, v->save_invstd};
    static const char *const names[] = {"gamma", "save_mean", "save_invstd"};
    TDM_TRY(check_channel_views(backend, op, s->channels, params, names, 3));
    TDM_TRY(tdm_check_view(backend, v->x, count, op, "x"));
    TDM_TRY(tdm_check_view(backend, v->dy, count, op, "dy"));
    if (s->relu)
        TDM_TRY(tdm_check_view(backend, v->y, count, op, "y (read with relu)"));
    tdm_view inputs[] = {v->x, v->dy, v->gamma, v->save_mean, v->save_invstd, v->y};
    size_t counts[] = {count, count, s->channels, s->channels, s->channels, s->relu ? count : 0};
    TDM_TRY(tdm_check_output(backend, op, v->dx, count, "dx", inputs, counts, 6));
    TDM_TRY(tdm_check_output(backend, op, v->dgamma, s->channels, "dgamma", inputs, counts, 6));
    return tdm_check_output(backend, op, v->dbeta, s->channels, "dbeta", inputs, counts, 6);
}

/* The op, checked; the means' room lent to it. */
static tdm_status run_backward(tdm_backend *backend, const tdm_batchnorm_shape *s,
                               tdm_batchnorm_views *v)
{
    if (s->batch == 0)
        return TDM_OK;
    TDM_TRY(borrow_scratch(backend, 0, 2 * s->channels, &v->scratch));
    return backend->iface->batchnorm_backward(backend, s, v);
}

tdm_status tdm_batchnorm_backward(tdm_backend *backend, const tdm_batchnorm_shape *s, tdm_view x,
                                  tdm_view dy, tdm_view y, tdm_view gamma, tdm_view save_mean,
                                  tdm_view save_invstd, tdm_view dx, tdm_view dgamma,
                                  tdm_view dbeta)
{
    tdm_batchnorm_views v = {.x = x,
                             .dy = dy,
                             .y = y,
                             .gamma = gamma,
                             .save_mean = save_mean,
                             .save_invstd = save_invstd,
                             .dx = dx,
                             .dgamma = dgamma,
                             .dbeta = dbeta};
    TDM_TRY(check_backward(backend, "batchnorm_backward", s, &v));
    return run_backward(backend, s, &v);
}

/* ---------- pooling ---------- */

size_t tdm_pool2d_out_height(const tdm_pool2d_shape *s)
{
    return tdm_window_count(s->in_height, 0, s->kernel_h, s->stride_h);
}

size_t tdm_pool2d_out_width(const tdm_pool2d_shape *s)
{
    return tdm_window_count(s->in_width, 0, s->kernel_w, s->stride_w);
}

static tdm_status check_pool(tdm_backend *backend, const char *op, tdm_op id,
                             const tdm_pool2d_shape *s, size_t *x_count, size_t *y_count)
{
    TDM_TRY(tdm_check_supported(backend, id));
    TDM_TRY(require_positive(op, "channels", s->channels));
    TDM_TRY(require_positive(op, "kernel height", s->kernel_h));
    TDM_TRY(require_positive(op, "kernel width", s->kernel_w));
    TDM_TRY(require_positive(op, "stride height", s->stride_h));
    TDM_TRY(require_positive(op, "stride width", s->stride_w));
    size_t oh = tdm_pool2d_out_height(s), ow = tdm_pool2d_out_width(s);
    if (oh == 0 || ow == 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "%s: the %zux%zu window is larger than the %zux%zu input", op, s->kernel_h,
                        s->kernel_w, s->in_height, s->in_width);
    if (s->in_height > INT32_MAX / s->in_width)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "%s: planes over 2^31 values", op);
    TDM_TRY(product(op, s->batch, s->channels, s->in_height, s->in_width, x_count));
    return product(op, s->batch, s->channels, oh, ow, y_count);
}

tdm_status tdm_maxpool2d_forward(tdm_backend *backend, const tdm_pool2d_shape *s, tdm_view x,
                                 tdm_view y, tdm_view argmax)
{
    const char *op = "maxpool2d_forward";
    size_t nx = 0, ny = 0;
    TDM_TRY(check_pool(backend, op, TDM_OP_MAXPOOL2D, s, &nx, &ny));
    TDM_TRY(tdm_check_view(backend, x, nx, op, "x"));
    TDM_TRY(tdm_check_output(backend, op, y, ny, "y", &x, &nx, 1));
    tdm_view inputs[] = {x, y};
    size_t counts[] = {nx, ny};
    TDM_TRY(tdm_check_output(backend, op, argmax, ny, "argmax", inputs, counts, 2));
    return ny ? backend->iface->maxpool2d(backend, s, x, y, argmax) : TDM_OK;
}

tdm_status tdm_maxpool2d_backward(tdm_backend *backend, const tdm_pool2d_shape *s, tdm_view argmax,
                                  tdm_view dy, tdm_view dx)
{
    const char *op = "maxpool2d_backward";
    size_t nx = 0, ny = 0;
    TDM_TRY(check_pool(backend, op, TDM_OP_MAXPOOL2D_BACKWARD, s, &nx, &ny));
    TDM_TRY(tdm_check_view(backend, argmax, ny, op, "argmax"));
    TDM_TRY(tdm_check_view(backend, dy, ny, op, "dy"));
    tdm_view inputs[] = {argmax, dy};
    size_t counts[] = {ny, ny};
    TDM_TRY(tdm_check_output(backend, op, dx, nx, "dx", inputs, counts, 2));
    return nx ? backend->iface->maxpool2d_backward(backend, s, argmax, dy, dx) : TDM_OK;
}

static tdm_status check_avgpool(tdm_backend *backend, const char *op, tdm_op id, size_t planes,
                                size_t spatial, size_t *count)
{
    TDM_TRY(tdm_check_supported(backend, id));
    TDM_TRY(require_positive(op, "spatial", spatial));
    return product(op, planes, spatial, 1, 1, count);
}

tdm_status tdm_global_avgpool_forward(tdm_backend *backend, size_t planes, size_t spatial,
                                      tdm_view x, tdm_view y)
{
    const char *op = "global_avgpool_forward";
    size_t count = 0;
    TDM_TRY(check_avgpool(backend, op, TDM_OP_GLOBAL_AVGPOOL, planes, spatial, &count));
    TDM_TRY(tdm_check_view(backend, x, count, op, "x"));
    TDM_TRY(tdm_check_output(backend, op, y, planes, "y", &x, &count, 1));
    return planes ? backend->iface->global_avgpool(backend, planes, spatial, x, y) : TDM_OK;
}

tdm_status tdm_global_avgpool_backward(tdm_backend *backend, size_t planes, size_t spatial,
                                       tdm_view dy, tdm_view dx)
{
    const char *op = "global_avgpool_backward";
    size_t count = 0;
    TDM_TRY(check_avgpool(backend, op, TDM_OP_GLOBAL_AVGPOOL_BACKWARD, planes, spatial, &count));
    TDM_TRY(tdm_check_view(backend, dy, planes, op, "dy"));
    TDM_TRY(tdm_check_output(backend, op, dx, count, "dx", &dy, &planes, 1));
    return planes ? backend->iface->global_avgpool_backward(backend, planes, spatial, dy, dx)
                  : TDM_OK;
}

/* ---------- a batch norm and the max-pool that reads it ---------- */

/* The pool's shape is the batch norm's: the same batch and channels,
 * images of its spatial values; *x_count and *y_count get its sizes. */
static tdm_status check_norm_pool(tdm_backend *backend, const char *op, tdm_op id,
                                  const tdm_batchnorm_shape *s, const tdm_pool2d_shape *pool,
                                  size_t *x_count, size_t *y_count)
{
    TDM_TRY(check_pool(backend, op, id, pool, x_count, y_count));
    if (pool->batch == s->batch && pool->channels == s->channels &&
        pool->in_height * pool->in_width == s->spatial)
        return TDM_OK;
    return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                    "%s: the pool's %zu x %zu images of %zux%zu are not the batch norm's %zu x %zu "
                    "of %zu values",
                    op, pool->batch, pool->channels, pool->in_height, pool->in_width, s->batch,
                    s->channels, s->spatial);
}

/* The forward's pooled and argmax overlap nothing else it touches. */
static tdm_status check_pool_outputs(tdm_backend *backend, const char *op,
                                     const tdm_batchnorm_shape *s, const tdm_pool2d_shape *pool,
                                     const tdm_batchnorm_views *v)
{
    size_t nx = 0, ny = 0, c = s->channels;
    TDM_TRY(check_norm_pool(backend, op, TDM_OP_MAXPOOL2D, s, pool, &nx, &ny));
    tdm_view others[] = {v->x,           v->y,         v->gamma,       v->beta,  v->running_mean,
                         v->running_var, v->save_mean, v->save_invstd, v->pooled};
    size_t counts[] = {nx, nx, c, c, c, c, c, c, ny};
    TDM_TRY(tdm_check_output(backend, op, v->pooled, ny, "pooled", others, counts, 8));
    return tdm_check_output(backend, op, v->argmax, ny, "argmax", others, counts, 9);
}

/* The backward's pooled_dy and argmax are there, and its outputs (dy
 * among them) overlap neither them nor what it reads. */
static tdm_status check_pool_gradient(tdm_backend *backend, const char *op,
                                      const tdm_batchnorm_shape *s, const tdm_pool2d_shape *pool,
                                      const tdm_batchnorm_views *v)
{
    size_t nx = 0, ny = 0, c = s->channels;
    TDM_TRY(check_norm_pool(backend, op, TDM_OP_MAXPOOL2D_BACKWARD, s, pool, &nx, &ny));
    TDM_TRY(tdm_check_view(backend, v->pooled_dy, ny, op, "pooled_dy"));
    TDM_TRY(tdm_check_view(backend, v->argmax, ny, op, "argmax"));
    tdm_view inputs[] = {v->pooled_dy, v->argmax,    v->x,          v->y,
                         v->gamma,     v->save_mean, v->save_invstd};
    size_t counts[] = {ny, ny, nx, s->relu ? nx : 0, c, c, c};
    TDM_TRY(tdm_check_output(backend, op, v->dy, nx, "dy", inputs, counts, 7));
    tdm_view outputs[] = {v->dx, v->dgamma, v->dbeta};
    size_t output_counts[] = {nx, c, c};
    static const char *const names[] = {"dx", "dgamma", "dbeta"};
    for (int i = 0; i < 3; i++) /* against the rest: check_backward */
        TDM_TRY(tdm_check_output(backend, op, outputs[i], output_counts[i], names[i], inputs,
                                 counts, 2));
    return TDM_OK;
}

tdm_status tdm_batchnorm_pool_apart(tdm_backend *backend, const tdm_batchnorm_shape *s,
                                    const tdm_batchnorm_views *v, bool forward)
{
    if (!v->pool_width)
        return TDM_OK;
    tdm_pool2d_shape p = tdm_batchnorm_pool_shape(s, v->pool_width);
    return forward
               ? backend->iface->maxpool2d(backend, &p, v->y, v->pooled, v->argmax)
               : backend->iface->maxpool2d_backward(backend, &p, v->argmax, v->pooled_dy, v->dy);
}

/* A pool the batch norm's op runs: ResNet's 2x2 windows at stride 2. */
static bool pools_with_norm(const tdm_pool2d_shape *pool)
{
    return pool->kernel_h == 2 && pool->kernel_w == 2 && pool->stride_h == 2 && pool->stride_w == 2;
}

tdm_status tdm_batchnorm_pool_forward_train(tdm_backend *backend, const tdm_batchnorm_shape *s,
                                            const tdm_pool2d_shape *pool, tdm_view x,
                                            tdm_view gamma, tdm_view beta, tdm_view running_mean,
                                            tdm_view running_var, tdm_view save_mean,
                                            tdm_view save_invstd, tdm_view y, tdm_view pooled,
                                            tdm_view argmax)
{
    const char *op = "batchnorm_pool_forward_train";
    tdm_batchnorm_views v = {.x = x,
                             .gamma = gamma,
                             .beta = beta,
                             .running_mean = running_mean,
                             .running_var = running_var,
                             .save_mean = save_mean,
                             .save_invstd = save_invstd,
                             .y = y,
                             .pooled = pooled,
                             .argmax = argmax};
    TDM_TRY(check_pool_outputs(backend, op, s, pool, &v));
    if (pools_with_norm(pool))
        v.pool_width = pool->in_width;
    TDM_TRY(norm_forward(backend, op, s, &v, true));
    return v.pool_width ? TDM_OK : tdm_maxpool2d_forward(backend, pool, y, pooled, argmax);
}

tdm_status tdm_batchnorm_pool_backward(tdm_backend *backend, const tdm_batchnorm_shape *s,
                                       const tdm_pool2d_shape *pool, tdm_view x, tdm_view pooled_dy,
                                       tdm_view argmax, tdm_view y, tdm_view gamma,
                                       tdm_view save_mean, tdm_view save_invstd, tdm_view dy,
                                       tdm_view dx, tdm_view dgamma, tdm_view dbeta)
{
    const char *op = "batchnorm_pool_backward";
    tdm_batchnorm_views v = {.x = x,
                             .dy = dy,
                             .y = y,
                             .gamma = gamma,
                             .save_mean = save_mean,
                             .save_invstd = save_invstd,
                             .dx = dx,
                             .dgamma = dgamma,
                             .dbeta = dbeta,
                             .pooled_dy = pooled_dy,
                             .argmax = argmax};
    TDM_TRY(check_pool_gradient(backend, op, s, pool, &v));
    TDM_TRY(check_backward(backend, op, s, &v));
    if (pools_with_norm(pool))
        v.pool_width = pool->in_width;
    else if (s->batch)
        TDM_TRY(tdm_maxpool2d_backward(backend, pool, argmax, pooled_dy, dy));
    return run_backward(backend, s, &v);
}

/* ---------- loss ---------- */

tdm_status tdm_softmax_cross_entropy(tdm_backend *backend, const tdm_cross_entropy_shape *s,
                                     tdm_view logits, tdm_view labels, tdm_view losses,
                                     tdm_view wrong, tdm_view dlogits)
{
    const char *op = "softmax_cross_entropy";
    size_t count = 0;
    TDM_TRY(tdm_check_supported(backend, TDM_OP_SOFTMAX_CROSS_ENTROPY));
    TDM_TRY(require_positive(op, "classes", s->classes));
    if (s->classes > INT32_MAX)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "%s: more than 2^31 classes", op);
    TDM_TRY(product(op, s->batch, s->classes, 1, 1, &count));
    TDM_TRY(tdm_check_view(backend, logits, count, op, "logits"));
    TDM_TRY(tdm_check_view(backend, labels, s->batch, op, "labels"));
    tdm_view inputs[] = {logits, labels, losses, wrong};
    size_t counts[] = {count, s->batch, s->batch, s->batch};
    TDM_TRY(tdm_check_output(backend, op, losses, s->batch, "losses", inputs, counts, 2));
    if (given(wrong))
        TDM_TRY(tdm_check_output(backend, op, wrong, s->batch, "wrong", inputs, counts, 3));
    if (given(dlogits))
        TDM_TRY(tdm_check_output(backend, op, dlogits, count, "dlogits", inputs, counts,
                                 given(wrong) ? 4 : 3));
    if (s->batch == 0)
        return TDM_OK;
    return backend->iface->softmax_cross_entropy(backend, s, logits, labels, losses, wrong,
                                                 dlogits);
}

/* ---------- optimizer ---------- */

static tdm_status sgd_step(tdm_backend *backend, const char *op, const tdm_sgd_options *o,
                           bool first_step, bool zero_grad, size_t count, tdm_view weight,
                           tdm_view grad, tdm_view velocity)
{
    TDM_TRY(tdm_check_supported(backend, TDM_OP_SGD));
    if (!(o->lr > 0.0f) || !isfinite(o->lr))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "%s: lr must be a finite number > 0, got %g", op,
                        (double)o->lr);
    if (!(o->momentum >= 0.0f) || !(o->weight_decay >= 0.0f) || !(o->dampening >= 0.0f) ||
        !(o->dampening <= 1.0f))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "%s: momentum and weight_decay must be >= 0 and dampening in [0, 1]", op);
    if (o->nesterov && (o->momentum == 0.0f || o->dampening != 0.0f))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "%s: nesterov needs momentum > 0 and zero dampening (as in PyTorch)", op);
    TDM_TRY(tdm_check_view(backend, grad, count, op, "grad"));
    TDM_TRY(tdm_check_output(backend, op, weight, count, "weight", &grad, &count, 1));
    if (o->momentum != 0.0f) {
        tdm_view inputs[] = {grad, weight};
        size_t counts[] = {count, count};
        TDM_TRY(tdm_check_output(backend, op, velocity, count, "velocity", inputs, counts, 2));
    }
    return count ? backend->iface->sgd(backend, o, first_step, zero_grad, count, weight, grad,
                                       velocity)
                 : TDM_OK;
}

tdm_status tdm_sgd_step(tdm_backend *backend, const tdm_sgd_options *o, bool first_step,
                        size_t count, tdm_view weight, tdm_view grad, tdm_view velocity)
{
    return sgd_step(backend, "sgd_step", o, first_step, false, count, weight, grad, velocity);
}

tdm_status tdm_sgd_step_zero_grad(tdm_backend *backend, const tdm_sgd_options *o, bool first_step,
                                  size_t count, tdm_view weight, tdm_view grad, tdm_view velocity)
{
    return sgd_step(backend, "sgd_step_zero_grad", o, first_step, true, count, weight, grad,
                    velocity);
}

/* The OpenCL backend's layer ops: argument marshalling for the kernels in
 * cl/. Every kernel takes each tensor as (buffer, offset in elements). */
#include "backend/opencl/opencl_layers.h"

#include "backend/opencl/cl_divisor.h"
#include "backend/opencl/opencl_impl.h"

/* A view as the kernels take it. */
typedef struct cl_view {
    cl_mem mem;
    cl_index offset;
} cl_view;

static cl_view cl_view_of(tdm_view view)
{
    return (cl_view){view.buffer ? mem_of(view.buffer) : NULL, view.offset};
}

#define VIEW_ARGS(v) ARG((v).mem), ARG((v).offset)
#define COUNT(args) (sizeof(args) / sizeof((args)[0]))

/* A work-item a value of `values` in each of `planes` planes, (value,
 * plane): work-groups a power of two wide along a plane, up to the group
 * size, and as many planes as fill it (a CPU device runs the values of a
 * plane as one vector loop; no index is divided to find its plane, and no
 * work-item loops, which would stop PoCL's vectorising). Planes beyond
 * the context's plane_groups groups along the second axis go along the
 * third: tdm_plane in cl/common.cl. */
static tdm_status launch_planes(opencl_context *ctx, kernel_id id, size_t values, size_t planes,
                                const kernel_arg *args, size_t arg_count)
{
    size_t local[3] = {1, 1, 1};
    while (local[0] < values && local[0] < ctx->group_size)
        local[0] *= 2;
    local[1] = ctx->group_size / local[0];
    size_t side = ctx->plane_groups * local[1];
    size_t size[3] = {values, planes < side ? planes : side, (planes + side - 1) / side};
    return tdm_cl_launch_nd(ctx, id, 3, size, local, args, arg_count);
}

/* Where the reductions take one work-item (a CPU device: set_reduction_group),
 * some ops run a work-item over a whole channel or block, in order, where a
 * GPU spreads them a value a work-item: PoCL runs the work-item's loops as
 * vector loops over contiguous values, and gathers and divides in the spread
 * form (evaluation's batch norm 420 -> 263 us a launch, the dense conv
 * matrix's gradient 88-94 -> 40-50). The tests take the spread forms on
 * PoCL too, through TANDEM_OPENCL_REDUCTION_GROUP. */
static bool loops_in_items(const opencl_context *ctx)
{
    return ctx->reduction_group == 1;
}

/* ---------- conv2d primitives ---------- */

/* The shape every conv primitive takes after its two tensors, in kernel
 * order (TDM_CONV_SHAPE in cl/conv.cl). */
typedef struct conv_args {
    cl_divisor batch;
    cl_divisor channels, height, width, kernel_h, kernel_w, stride_h, stride_w;
    cl_index pad_h, pad_w, out_h;
    cl_divisor out_w;
    cl_index out_channels;
    cl_divisor out_spatial, columns, in_columns;
} conv_args;

static conv_args conv_args_of(const tdm_conv2d_shape *s)
{
    size_t oh = tdm_conv2d_out_height(s), ow = tdm_conv2d_out_width(s);
    return (conv_args){tdm_cl_divisor(s->batch),
                       tdm_cl_divisor(s->in_channels),
                       tdm_cl_divisor(s->in_height),
                       tdm_cl_divisor(s->in_width),
                       tdm_cl_divisor(s->kernel_h),
                       tdm_cl_divisor(s->kernel_w),
                       tdm_cl_divisor(s->stride_h),
                       tdm_cl_divisor(s->stride_w),
                       s->pad_h,
                       s->pad_w,
                       oh,
                       tdm_cl_divisor(ow),
                       s->out_channels,
                       tdm_cl_divisor(oh * ow),
                       tdm_cl_divisor(s->batch * oh * ow),
                       tdm_cl_divisor(s->in_channels * s->in_height * s->in_width)};
}

/* The shape's kernel arguments, in TDM_CONV_SHAPE's order. */
#define CONV_SHAPE_ARGS(a)                                                                         \
    ARG((a).batch), ARG((a).channels), ARG((a).height), ARG((a).width), ARG((a).kernel_h),         \
        ARG((a).kernel_w), ARG((a).stride_h), ARG((a).stride_w), ARG((a).pad_h), ARG((a).pad_w),   \
        ARG((a).out_h), ARG((a).out_w), ARG((a).out_channels), ARG((a).out_spatial),               \
        ARG((a).columns), ARG((a).in_columns)

/* A conv primitive's two tensors, then the shape: `values` work-items over
 * all of them, or with by_plane `values` in each of `planes` planes over
 * (value, plane). */
static tdm_status launch_conv_primitive(tdm_backend *backend, kernel_id id,
                                        const tdm_conv2d_shape *s, tdm_view from, tdm_view to,
                                        size_t values, size_t planes, bool by_plane)
{
    cl_view in = cl_view_of(from), out = cl_view_of(to);
    conv_args a = conv_args_of(s);
    kernel_arg args[] = {VIEW_ARGS(in), VIEW_ARGS(out), CONV_SHAPE_ARGS(a)};
    if (by_plane)
        return launch_planes(ctx_of(backend), id, values, planes, args, COUNT(args));
    return tdm_cl_launch(ctx_of(backend), id, values * planes, args, COUNT(args));
}

tdm_status tdm_opencl_im2col(tdm_backend *backend, const tdm_conv2d_shape *s, tdm_view x,
                             tdm_view col)
{
    size_t rows = s->in_channels * s->kernel_h * s->kernel_w;
    if (loops_in_items(ctx_of(backend)))
        return launch_conv_primitive(backend, K_IM2COL_RUNS, s, x, col, rows * s->batch, 1, false);
    size_t items = rows * s->batch * tdm_conv2d_out_height(s) * tdm_conv2d_out_width(s);
    return launch_conv_primitive(backend, K_IM2COL, s, x, col, items, 1, false);
}

tdm_status tdm_opencl_col2im(tdm_backend *backend, const tdm_conv2d_shape *s, tdm_view col,
                             tdm_view x)
{
    size_t items = s->batch * s->in_channels * s->in_height * s->in_width;
    return launch_conv_primitive(backend, K_COL2IM, s, col, x, items, 1, false);
}

tdm_status tdm_opencl_conv_dense_weight(tdm_backend *backend, const tdm_conv2d_shape *s,
                                        tdm_view weight, tdm_view dense)
{
    size_t rows = s->out_channels * tdm_conv2d_out_height(s) * tdm_conv2d_out_width(s);
    return launch_conv_primitive(backend, K_CONV_DENSE_WEIGHT, s, weight, dense,
                                 s->in_channels * s->in_height * s->in_width, rows, true);
}

tdm_status tdm_opencl_conv_dense_weight_backward(tdm_backend *backend, const tdm_conv2d_shape *s,
                                                 tdm_view dense_grad, tdm_view dweight)
{
    if (loops_in_items(ctx_of(backend)))
        return launch_conv_primitive(backend, K_CONV_DENSE_WEIGHT_BACKWARD_BLOCKS, s, dense_grad,
                                     dweight, s->out_channels * s->in_channels, 1, false);
    size_t items = s->out_channels * s->in_channels * s->kernel_h * s->kernel_w;
    return launch_conv_primitive(backend, K_CONV_DENSE_WEIGHT_BACKWARD, s, dense_grad, dweight,
                                 items, 1, false);
}

/* A value a work-item over (p, plane = co * N + n), on every device (the
 * layer runs it where the backend sets direct_small_convs: a GPU). */
tdm_status tdm_opencl_conv_direct_forward(tdm_backend *backend, const tdm_conv2d_shape *s,
                                          tdm_view x, tdm_view weight, tdm_view y)
{
    cl_view in = cl_view_of(x), w = cl_view_of(weight), out = cl_view_of(y);
    conv_args a = conv_args_of(s);
    kernel_arg args[] = {VIEW_ARGS(in), VIEW_ARGS(w), VIEW_ARGS(out), CONV_SHAPE_ARGS(a)};
    return launch_planes(ctx_of(backend), K_CONV_DIRECT_FORWARD,
                         tdm_conv2d_out_height(s) * tdm_conv2d_out_width(s),
                         s->out_channels * s->batch, args, COUNT(args));
}

/* Work-groups of the group size: the first a (co, ci) pair's weight
 * gradient each, the rest a value of dx a work-item, on every device (the
 * layer runs it where the backend sets direct_small_convs: a GPU). */
tdm_status tdm_opencl_conv_direct_backward(tdm_backend *backend, const tdm_conv2d_shape *s,
                                           tdm_view x, tdm_view weight, tdm_view dy, tdm_view dx,
                                           tdm_view dweight, bool accumulate)
{
    opencl_context *ctx = ctx_of(backend);
    /* Operands not asked for are not read or written: point them at dy. */
    cl_view in = cl_view_of(dweight.buffer ? x : dy), w = cl_view_of(dx.buffer ? weight : dy),
            g = cl_view_of(dy), gx = cl_view_of(dx.buffer ? dx : dy),
            gw = cl_view_of(dweight.buffer ? dweight : dy);
    cl_index weight_groups = dweight.buffer ? s->out_channels * s->in_channels : 0,
             dx_count = dx.buffer ? s->batch * s->in_channels * s->in_height * s->in_width : 0;
    cl_int adds = accumulate;
    conv_args a = conv_args_of(s);
    kernel_arg args[] = {VIEW_ARGS(in), VIEW_ARGS(w),  VIEW_ARGS(g),
                         VIEW_ARGS(gx), VIEW_ARGS(gw), ARG(weight_groups),
                         ARG(dx_count), ARG(adds),     CONV_SHAPE_ARGS(a)};
    size_t groups = weight_groups + (dx_count + ctx->reduction_group - 1) / ctx->reduction_group;
    if (groups == 0)
        return TDM_OK;
    return tdm_cl_launch_groups(ctx, K_CONV_DIRECT_BACKWARD, groups, args, COUNT(args));
}

tdm_status tdm_opencl_conv_col_product(tdm_backend *backend, const tdm_conv2d_shape *s,
                                       tdm_view weight, tdm_view col, tdm_view y)
{
    opencl_context *ctx = ctx_of(backend);
    cl_view w = cl_view_of(weight), c = cl_view_of(col), out = cl_view_of(y);
    size_t spatial = tdm_conv2d_out_height(s) * tdm_conv2d_out_width(s);
    cl_index taps = s->in_channels * s->kernel_h * s->kernel_w, sp = spatial,
             planes = s->batch * s->out_channels, columns = s->batch * spatial;
    cl_divisor out_channels = tdm_cl_divisor(s->out_channels);
    kernel_arg args[] = {VIEW_ARGS(w),      VIEW_ARGS(c), VIEW_ARGS(out), ARG(taps),
                         ARG(out_channels), ARG(sp),      ARG(planes),    ARG(columns)};
    if (loops_in_items(ctx))
        return tdm_cl_launch(ctx, K_CONV_COL_PRODUCT_PLANES, planes, args, COUNT(args));
    return launch_planes(ctx, K_CONV_COL_PRODUCT, spatial, planes, args, COUNT(args));
}

tdm_status tdm_opencl_conv_col_weight_gradient(tdm_backend *backend, const tdm_conv2d_shape *s,
                                               tdm_view dy, tdm_view col, tdm_view dweight)
{
    opencl_context *ctx = ctx_of(backend);
    cl_view g = cl_view_of(dy), c = cl_view_of(col), dw = cl_view_of(dweight);
    size_t taps = s->in_channels * s->kernel_h * s->kernel_w;
    if (taps > TDM_CONV_COL_MAX_TAPS)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "conv_col_weight_gradient: %zu taps a sample, at most %d", taps,
                        (int)TDM_CONV_COL_MAX_TAPS);
    size_t spatial = tdm_conv2d_out_height(s) * tdm_conv2d_out_width(s);
    cl_divisor taps_divisor = tdm_cl_divisor(taps);
    cl_index out_channels = s->out_channels, batch = s->batch, sp = spatial,
             columns = s->batch * spatial;
    kernel_arg args[] = {VIEW_ARGS(g),      VIEW_ARGS(c), VIEW_ARGS(dw), ARG(taps_divisor),
                         ARG(out_channels), ARG(batch),   ARG(sp),       ARG(columns)};
    if (loops_in_items(ctx))
        return tdm_cl_launch(ctx, K_CONV_COL_WEIGHT_GRADIENT_CHANNELS, s->out_channels, args,
                             COUNT(args));
    return tdm_cl_launch(ctx, K_CONV_COL_WEIGHT_GRADIENT, s->out_channels * taps, args,
                         COUNT(args));
}

/* ---------- linear with few weights ---------- */

tdm_status tdm_opencl_small_linear(tdm_backend *backend, const tdm_linear_shape *s, tdm_view x,
                                   tdm_view weight, tdm_view bias, tdm_view y)
{
    TDM_TRY(tdm_check_small_linear("small_linear", s));
    /* An unused operand still needs a valid cl_mem: point it at x. */
    cl_view in = cl_view_of(x), w = cl_view_of(weight), b = cl_view_of(bias.buffer ? bias : x),
            out = cl_view_of(y);
    cl_index outputs = s->batch * s->out_features, in_features = s->in_features,
             pool = s->pool > 1 ? s->pool : 1;
    cl_divisor out_features = tdm_cl_divisor(s->out_features);
    cl_int with_bias = bias.buffer != NULL;
    kernel_arg args[] = {ARG(outputs),   ARG(out_features), ARG(in_features),
                         ARG(pool),      VIEW_ARGS(in),     VIEW_ARGS(w),
                         ARG(with_bias), VIEW_ARGS(b),      VIEW_ARGS(out)};
    if (loops_in_items(ctx_of(backend)))
        return tdm_cl_launch_groups(ctx_of(backend), K_SMALL_LINEAR_ROWS, s->batch, args,
                                    COUNT(args));
    return tdm_cl_launch(ctx_of(backend), K_SMALL_LINEAR, outputs, args, COUNT(args));
}

tdm_status tdm_opencl_small_linear_backward(tdm_backend *backend, const tdm_linear_shape *s,
                                            tdm_view x, tdm_view weight, tdm_view dy, tdm_view dx,
                                            tdm_view dweight, tdm_view dbias)
{
    TDM_TRY(tdm_check_small_linear("small_linear_backward", s));
    /* Operands not asked for are not read or written: point them at dy. */
    cl_view in = cl_view_of(x.buffer ? x : dy), w = cl_view_of(weight.buffer ? weight : dy),
            g = cl_view_of(dy), gx = cl_view_of(dx.buffer ? dx : dy),
            gw = cl_view_of(dweight.buffer ? dweight : dy),
            gb = cl_view_of(dbias.buffer ? dbias : dy);
    /* A CPU device's work-items take a sample's dx or a feature's weights,
     * a GPU's a value each. */
    cl_int rows = loops_in_items(ctx_of(backend));
    size_t dx_per_item = rows ? s->in_features : 1, dw_per_item = rows ? s->out_features : 1;
    cl_index batch = s->batch, out_features = s->out_features, pool = s->pool > 1 ? s->pool : 1,
             dx_items = dx.buffer ? s->batch * s->in_features / dx_per_item : 0,
             dw_items = dweight.buffer ? s->out_features * s->in_features / dw_per_item : 0,
             db_count = dbias.buffer ? s->out_features : 0;
    cl_divisor in_features = tdm_cl_divisor(s->in_features);
    cl_int relu = s->relu && dx.buffer;
    kernel_arg args[] = {ARG(batch),    ARG(out_features), ARG(in_features), ARG(pool),
                         ARG(relu),     ARG(rows),         ARG(dx_items),    ARG(dw_items),
                         ARG(db_count), VIEW_ARGS(in),     VIEW_ARGS(w),     VIEW_ARGS(g),
                         VIEW_ARGS(gx), VIEW_ARGS(gw),     VIEW_ARGS(gb)};
    size_t items = (size_t)dx_items + dw_items + db_count;
    if (items == 0)
        return TDM_OK;
    return tdm_cl_launch(ctx_of(backend), K_SMALL_LINEAR_BACKWARD, items, args, COUNT(args));
}

tdm_status tdm_opencl_swap_axes(tdm_backend *backend, size_t outer, size_t inner, size_t spatial,
                                tdm_view src, tdm_view dst)
{
    cl_view in = cl_view_of(src), out = cl_view_of(dst);
    cl_divisor a = tdm_cl_divisor(outer);
    cl_index b = inner, s = spatial;
    kernel_arg args[] = {ARG(a), ARG(b), ARG(s), VIEW_ARGS(in), VIEW_ARGS(out)};
    if (loops_in_items(ctx_of(backend)))
        return tdm_cl_launch(ctx_of(backend), K_SWAP_AXES_PLANES, outer * inner, args, COUNT(args));
    return launch_planes(ctx_of(backend), K_SWAP_AXES, spatial, outer * inner, args, COUNT(args));
}

/* A 4 x 4 block a work-item over (block column, b * row blocks + block row). */
tdm_status tdm_opencl_transpose(tdm_backend *backend, size_t batch, size_t rows, size_t cols,
                                tdm_view src, tdm_view dst)
{
    cl_view in = cl_view_of(src), out = cl_view_of(dst);
    size_t row_blocks = (rows + 3) / 4;
    cl_index r = rows, c = cols, planes = batch * row_blocks;
    cl_divisor blocks = tdm_cl_divisor(row_blocks);
    kernel_arg args[] = {ARG(r), ARG(c), ARG(blocks), ARG(planes), VIEW_ARGS(in), VIEW_ARGS(out)};
    return launch_planes(ctx_of(backend), K_TRANSPOSE, (cols + 3) / 4, planes, args, COUNT(args));
}

tdm_status tdm_opencl_bias_add(tdm_backend *backend, size_t batch, size_t channels, size_t spatial,
                               tdm_view bias, tdm_view y)
{
    cl_view b = cl_view_of(bias), out = cl_view_of(y);
    cl_index n = batch;
    cl_divisor c = tdm_cl_divisor(channels), s = tdm_cl_divisor(spatial);
    kernel_arg args[] = {ARG(n), ARG(c), ARG(s), VIEW_ARGS(b), VIEW_ARGS(out)};
    return tdm_cl_launch(ctx_of(backend), K_BIAS_ADD, batch * channels * spatial, args,
                         COUNT(args));
}

tdm_status tdm_opencl_bias_backward(tdm_backend *backend, size_t batch, size_t channels,
                                    size_t spatial, tdm_view dy, tdm_view dbias)
{
    cl_view g = cl_view_of(dy), out = cl_view_of(dbias);
    cl_index n = batch;
    cl_divisor c = tdm_cl_divisor(channels), s = tdm_cl_divisor(spatial);
    kernel_arg args[] = {ARG(n), ARG(c), ARG(s), VIEW_ARGS(g), VIEW_ARGS(out)};
    return tdm_cl_launch_groups(ctx_of(backend), K_BIAS_BACKWARD, channels, args, COUNT(args));
}

/* ---------- batchnorm2d ---------- */

/* A channel's values all in one work-group, the statistics and the values
 * in one launch, when there are at most this many a work-item of the group
 * size (2048 values a channel with groups of 64, however many work-items
 * the reductions take: ResNet(C) on the digits has 128 x 16 and 128 x 4);
 * more, and two launches spread the second pass over the whole device. The
 * two ways give the same bits. */
enum { FUSED_VALUES_PER_ITEM = 32 };

static bool fuse_channel_passes(const opencl_context *ctx, const tdm_batchnorm_shape *s)
{
    return loops_in_items(ctx) || s->batch * s->spatial <= FUSED_VALUES_PER_ITEM * ctx->group_size;
}

/* The arguments of a pool the one-kernel forms run (TDM_BN_POOL in
 * cl/batchnorm.cl), with `pooled` its values or their gradient; pool 0
 * without one. */
typedef struct bn_pool_args {
    cl_index pool;
    cl_divisor width, out_w, out_spatial;
    cl_view pooled, argmax;
} bn_pool_args;

#define BN_POOL_ARGS(p)                                                                            \
    ARG((p).pool), ARG((p).width), ARG((p).out_w), ARG((p).out_spatial), VIEW_ARGS((p).pooled),    \
        VIEW_ARGS((p).argmax)

static bn_pool_args bn_pool_args_of(const tdm_batchnorm_shape *s, const tdm_batchnorm_views *v,
                                    tdm_view pooled)
{
    if (!v->pool_width)
        return (bn_pool_args){0,
                              tdm_cl_divisor(1),
                              tdm_cl_divisor(1),
                              tdm_cl_divisor(1),
                              cl_view_of(v->x),
                              cl_view_of(v->x)}; /* unread */
    tdm_pool2d_shape p = tdm_batchnorm_pool_shape(s, v->pool_width);
    size_t out_w = tdm_pool2d_out_width(&p);
    return (bn_pool_args){1,
                          tdm_cl_divisor(v->pool_width),
                          tdm_cl_divisor(out_w),
                          tdm_cl_divisor(tdm_pool2d_out_height(&p) * out_w),
                          cl_view_of(pooled),
                          cl_view_of(v->argmax)};
}

/* The residual the kernels add, or x (unread) without one. */
static cl_view residual_of(const tdm_batchnorm_views *v)
{
    return cl_view_of(v->residual.buffer ? v->residual : v->x);
}

/* The statistics alone (then tdm_batchnorm_normalize), or with the values
 * (and the pool's). tdm_batchnorm_stats takes the first STATISTICS_ARGS
 * arguments of tdm_batchnorm_train. */
enum { STATISTICS_ARGS = 15 };

static tdm_status launch_statistics(opencl_context *ctx, const tdm_batchnorm_shape *s,
                                    const tdm_batchnorm_views *v, bool with_values)
{
    cl_view x = cl_view_of(v->x), rm = cl_view_of(v->running_mean), rv = cl_view_of(v->running_var),
            sm = cl_view_of(v->save_mean), si = cl_view_of(v->save_invstd),
            gamma = cl_view_of(v->gamma), beta = cl_view_of(v->beta), y = cl_view_of(v->y),
            residual = residual_of(v);
    cl_index n = s->batch;
    cl_divisor c = tdm_cl_divisor(s->channels), sp = tdm_cl_divisor(s->spatial);
    cl_float eps = s->eps, momentum = s->momentum;
    cl_int add = v->residual.buffer != NULL, relu = s->relu;
    bn_pool_args pool = bn_pool_args_of(s, v, v->pooled);
    kernel_arg args[] = {ARG(n),
                         ARG(c),
                         ARG(sp),
                         ARG(eps),
                         ARG(momentum),
                         VIEW_ARGS(x),
                         VIEW_ARGS(rm),
                         VIEW_ARGS(rv),
                         VIEW_ARGS(sm),
                         VIEW_ARGS(si),
                         VIEW_ARGS(gamma),
                         VIEW_ARGS(beta),
                         VIEW_ARGS(residual),
                         ARG(add),
                         ARG(relu),
                         VIEW_ARGS(y),
                         BN_POOL_ARGS(pool)};
    return tdm_cl_launch_groups(ctx, with_values ? K_BATCHNORM_TRAIN : K_BATCHNORM_STATS,
                                s->channels, args, with_values ? COUNT(args) : STATISTICS_ARGS);
}

static tdm_status launch_normalize(opencl_context *ctx, const tdm_batchnorm_shape *s,
                                   const tdm_batchnorm_views *v, bool eval)
{
    cl_view x = cl_view_of(v->x), mean = cl_view_of(eval ? v->running_mean : v->save_mean),
            scale = cl_view_of(eval ? v->running_var : v->save_invstd),
            gamma = cl_view_of(v->gamma), beta = cl_view_of(v->beta), y = cl_view_of(v->y),
            residual = residual_of(v);
    cl_index n = s->batch;
    cl_divisor c = tdm_cl_divisor(s->channels), sp = tdm_cl_divisor(s->spatial);
    cl_float eps = s->eps;
    cl_int scale_is_variance = eval, add = v->residual.buffer != NULL, relu = s->relu;
    kernel_arg args[] = {ARG(n),
                         ARG(c),
                         ARG(sp),
                         VIEW_ARGS(x),
                         VIEW_ARGS(mean),
                         VIEW_ARGS(scale),
                         ARG(scale_is_variance),
                         ARG(eps),
                         VIEW_ARGS(gamma),
                         VIEW_ARGS(beta),
                         VIEW_ARGS(residual),
                         ARG(add),
                         ARG(relu),
                         VIEW_ARGS(y)};
    if (loops_in_items(ctx))
        return tdm_cl_launch_groups(ctx, K_BATCHNORM_NORMALIZE_CHANNELS, s->channels, args,
                                    COUNT(args));
    return launch_planes(ctx, K_BATCHNORM_NORMALIZE, s->spatial, s->batch * s->channels, args,
                         COUNT(args));
}

tdm_status tdm_opencl_batchnorm_forward(tdm_backend *backend, const tdm_batchnorm_shape *s,
                                        const tdm_batchnorm_views *v, bool train)
{
    opencl_context *ctx = ctx_of(backend);
    if (train && fuse_channel_passes(ctx, s))
        return launch_statistics(ctx, s, v, true);
    if (train)
        TDM_TRY(launch_statistics(ctx, s, v, false));
    TDM_TRY(launch_normalize(ctx, s, v, !train));
    return tdm_batchnorm_pool_apart(backend, s, v, true); /* one-kernel forms run theirs */
}

tdm_status tdm_opencl_batchnorm_backward(tdm_backend *backend, const tdm_batchnorm_shape *s,
                                         const tdm_batchnorm_views *v)
{
    opencl_context *ctx = ctx_of(backend);
    cl_view x = cl_view_of(v->x), dy = cl_view_of(v->dy), sm = cl_view_of(v->save_mean),
            si = cl_view_of(v->save_invstd), gamma = cl_view_of(v->gamma),
            dgamma = cl_view_of(v->dgamma), dbeta = cl_view_of(v->dbeta),
            means = cl_view_of(v->scratch), dx = cl_view_of(v->dx),
            y = cl_view_of(s->relu ? v->y : v->dy); /* unread without relu */
    cl_int relu = s->relu;
    cl_index n = s->batch;
    cl_divisor c = tdm_cl_divisor(s->channels), sp = tdm_cl_divisor(s->spatial);
    if (fuse_channel_passes(ctx, s)) {
        bn_pool_args pool = bn_pool_args_of(s, v, v->pooled_dy);
        kernel_arg args[] = {ARG(n),
                             ARG(c),
                             ARG(sp),
                             VIEW_ARGS(x),
                             VIEW_ARGS(dy),
                             VIEW_ARGS(y),
                             ARG(relu),
                             VIEW_ARGS(sm),
                             VIEW_ARGS(si),
                             VIEW_ARGS(gamma),
                             VIEW_ARGS(dgamma),
                             VIEW_ARGS(dbeta),
                             VIEW_ARGS(dx),
                             BN_POOL_ARGS(pool)};
        return tdm_cl_launch_groups(ctx, K_BATCHNORM_BACKWARD, s->channels, args, COUNT(args));
    }
    TDM_TRY(tdm_batchnorm_pool_apart(backend, s, v, false));
    kernel_arg reduce[] = {
        ARG(n),           ARG(c),          ARG(sp),       VIEW_ARGS(x),  VIEW_ARGS(dy),
        VIEW_ARGS(y),     ARG(relu),       VIEW_ARGS(sm), VIEW_ARGS(si), VIEW_ARGS(dgamma),
        VIEW_ARGS(dbeta), VIEW_ARGS(means)};
    TDM_TRY(
        tdm_cl_launch_groups(ctx, K_BATCHNORM_BACKWARD_REDUCE, s->channels, reduce, COUNT(reduce)));
    kernel_arg apply[] = {ARG(n),        ARG(c),           ARG(sp),          VIEW_ARGS(x),
                          VIEW_ARGS(dy), VIEW_ARGS(y),     ARG(relu),        VIEW_ARGS(sm),
                          VIEW_ARGS(si), VIEW_ARGS(gamma), VIEW_ARGS(means), VIEW_ARGS(dx)};
    return launch_planes(ctx, K_BATCHNORM_BACKWARD_APPLY, s->spatial, s->batch * s->channels, apply,
                         COUNT(apply));
}

/* ---------- pooling ---------- */

/* The shape both max-pool kernels take first (TDM_POOL_SHAPE in cl/pool.cl). */
typedef struct pool_args {
    cl_index planes;
    cl_divisor height, width;
    cl_index kernel_h, kernel_w;
    cl_divisor stride_h, stride_w, out_h, out_w;
} pool_args;

/* `per_plane` work-items for each plane: 1-D over all of them, or with
 * by_plane over (value, plane). */
static tdm_status launch_pool(tdm_backend *backend, kernel_id id, const tdm_pool2d_shape *s,
                              tdm_view first, tdm_view second, tdm_view third, size_t per_plane,
                              bool by_plane)
{
    pool_args p = {s->batch * s->channels,
                   tdm_cl_divisor(s->in_height),
                   tdm_cl_divisor(s->in_width),
                   s->kernel_h,
                   s->kernel_w,
                   tdm_cl_divisor(s->stride_h),
                   tdm_cl_divisor(s->stride_w),
                   tdm_cl_divisor(tdm_pool2d_out_height(s)),
                   tdm_cl_divisor(tdm_pool2d_out_width(s))};
    cl_view a = cl_view_of(first), b = cl_view_of(second), c = cl_view_of(third);
    kernel_arg args[] = {ARG(p.planes),   ARG(p.height),   ARG(p.width),    ARG(p.kernel_h),
                         ARG(p.kernel_w), ARG(p.stride_h), ARG(p.stride_w), ARG(p.out_h),
                         ARG(p.out_w),    VIEW_ARGS(a),    VIEW_ARGS(b),    VIEW_ARGS(c)};
    opencl_context *ctx = ctx_of(backend);
    if (by_plane)
        return launch_planes(ctx, id, per_plane, p.planes, args, COUNT(args));
    return tdm_cl_launch(ctx, id, (size_t)p.planes * per_plane, args, COUNT(args));
}

/* 2x2 windows at stride 2 have kernels of their own, without loops. */
static bool windows_2x2(const tdm_pool2d_shape *s)
{
    return s->kernel_h == 2 && s->kernel_w == 2 && s->stride_h == 2 && s->stride_w == 2;
}

/* A work-item an output, over all planes; for 2x2 windows where work-items
 * loop (a CPU device) an output row a work-item (174-183 -> 68-105 us a
 * launch on PoCL). cl/pool.cl says why. */
tdm_status tdm_opencl_maxpool2d(tdm_backend *backend, const tdm_pool2d_shape *s, tdm_view x,
                                tdm_view y, tdm_view argmax)
{
    size_t rows = tdm_pool2d_out_height(s), outputs = rows * tdm_pool2d_out_width(s);
    if (!windows_2x2(s))
        return launch_pool(backend, K_MAXPOOL2D, s, x, y, argmax, outputs, false);
    if (loops_in_items(ctx_of(backend)))
        return launch_pool(backend, K_MAXPOOL2D_2X2_ROWS, s, x, y, argmax, rows, false);
    return launch_pool(backend, K_MAXPOOL2D_2X2, s, x, y, argmax, outputs, false);
}

/* A work-item an input, over (input, plane); where work-items loop a plane a
 * work-item (135-155 -> 29 us a launch on PoCL). */
tdm_status tdm_opencl_maxpool2d_backward(tdm_backend *backend, const tdm_pool2d_shape *s,
                                         tdm_view argmax, tdm_view dy, tdm_view dx)
{
    if (loops_in_items(ctx_of(backend)))
        return launch_pool(backend, K_MAXPOOL2D_BACKWARD_PLANES, s, argmax, dy, dx, 1, false);
    return launch_pool(backend, windows_2x2(s) ? K_MAXPOOL2D_BACKWARD_2X2 : K_MAXPOOL2D_BACKWARD, s,
                       argmax, dy, dx, s->in_height * s->in_width, true);
}

static tdm_status launch_avgpool(tdm_backend *backend, kernel_id id, size_t planes, size_t spatial,
                                 tdm_view from, tdm_view to, size_t items)
{
    cl_view in = cl_view_of(from), out = cl_view_of(to);
    cl_index p = planes;
    cl_divisor by_spatial = tdm_cl_divisor(spatial);
    kernel_arg args[] = {ARG(p), ARG(by_spatial), VIEW_ARGS(in), VIEW_ARGS(out)};
    return tdm_cl_launch(ctx_of(backend), id, items, args, COUNT(args));
}

tdm_status tdm_opencl_global_avgpool(tdm_backend *backend, size_t planes, size_t spatial,
                                     tdm_view x, tdm_view y)
{
    return launch_avgpool(backend, K_GLOBAL_AVGPOOL, planes, spatial, x, y, planes);
}

tdm_status tdm_opencl_global_avgpool_backward(tdm_backend *backend, size_t planes, size_t spatial,
                                              tdm_view dy, tdm_view dx)
{
    return launch_avgpool(backend, K_GLOBAL_AVGPOOL_BACKWARD, planes, spatial, dy, dx,
                          planes * spatial);
}

/* ---------- loss and optimizer ---------- */

tdm_status tdm_opencl_softmax_cross_entropy(tdm_backend *backend, const tdm_cross_entropy_shape *s,
                                            tdm_view logits, tdm_view labels, tdm_view losses,
                                            tdm_view wrong, tdm_view dlogits)
{
    /* An unused output still needs a valid cl_mem: point it at losses. */
    cl_view z = cl_view_of(logits), y = cl_view_of(labels), l = cl_view_of(losses),
            w = cl_view_of(wrong.buffer ? wrong : losses),
            d = cl_view_of(dlogits.buffer ? dlogits : losses);
    cl_index n = s->batch, k = s->classes;
    cl_int write_wrong = wrong.buffer != NULL, write_dlogits = dlogits.buffer != NULL;
    kernel_arg args[] = {ARG(n),       ARG(k),           VIEW_ARGS(z), VIEW_ARGS(y),
                         VIEW_ARGS(l), ARG(write_wrong), VIEW_ARGS(w), ARG(write_dlogits),
                         VIEW_ARGS(d)};
    return tdm_cl_launch(ctx_of(backend), K_SOFTMAX_CROSS_ENTROPY, s->batch, args, COUNT(args));
}

tdm_status tdm_opencl_sgd(tdm_backend *backend, const tdm_sgd_options *o, bool first_step,
                          bool zero_grad, size_t count, tdm_view weight, tdm_view grad,
                          tdm_view velocity)
{
    cl_view w = cl_view_of(weight), g = cl_view_of(grad),
            v = cl_view_of(velocity.buffer ? velocity : grad); /* unread when momentum == 0 */
    cl_index n = count;
    cl_float lr = o->lr, momentum = o->momentum, dampening = o->dampening,
             weight_decay = o->weight_decay;
    cl_int nesterov = o->nesterov, first = first_step, zero = zero_grad;
    kernel_arg args[] = {
        ARG(n),     ARG(lr),   ARG(momentum), ARG(dampening), ARG(weight_decay), ARG(nesterov),
        ARG(first), ARG(zero), VIEW_ARGS(w),  VIEW_ARGS(g),   VIEW_ARGS(v)};
    return tdm_cl_launch(ctx_of(backend), K_SGD, count, args, COUNT(args));
}

tdm_status tdm_opencl_softmax_rows(tdm_backend *backend, size_t rows, size_t cols, tdm_view x,
                                   tdm_view lse)
{
    cl_view m = cl_view_of(x), l = cl_view_of(lse);
    cl_index r = rows, c = cols;
    kernel_arg args[] = {ARG(r), ARG(c), VIEW_ARGS(m), VIEW_ARGS(l)};
    return tdm_cl_launch(ctx_of(backend), K_SOFTMAX_ROWS, rows, args, COUNT(args));
}

/* Work-groups of the bits kernels. Each work-item loops over a whole row or
 * all the rows, so on a CPU device a work-group of one is a task of its
 * own (PoCL runs a group on one core; bigger groups left cores idle: 27 ms
 * against 14 for the sums of 100000 x 784 rows, K = 20). On a GPU, up to the
 * backend's group size side by side, then as many rows of them as fill it. */
static void bits_local_size(const tdm_backend *backend, size_t across, size_t local[2])
{
    const opencl_context *ctx = ctx_of(backend);
    bool gpu = ctx->info.is_gpu_or_accelerator;
    local[0] = !gpu ? 1 : across < ctx->group_size ? across : ctx->group_size;
    local[1] = !gpu ? 1 : ctx->group_size / local[0];
}

tdm_status tdm_opencl_bits_scores(tdm_backend *backend, const tdm_bits_shape *s, tdm_view bits,
                                  tdm_view table, tdm_view bias, tdm_view scores)
{
    cl_view x = cl_view_of(bits), t = cl_view_of(table), b = cl_view_of(bias),
            y = cl_view_of(scores);
    cl_index rows = s->rows, words = s->row_words, groups = tdm_bits_groups(s), k = s->components;
    if (groups * TDM_BITS_PATTERNS * s->components > UINT32_MAX)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "bits_scores: a table of %zu x 256 x %zu floats is more than the OpenCL "
                        "kernels index (2^32)",
                        (size_t)groups, s->components);
    kernel_arg args[] = {ARG(rows),    ARG(words),   ARG(groups),  ARG(k),
                         VIEW_ARGS(x), VIEW_ARGS(t), VIEW_ARGS(b), VIEW_ARGS(y)};
    /* chunks of 16 or 8 components a work-item where K has that many */
    size_t chunk = s->components >= 16 ? 16 : s->components >= 8 ? 8 : 1;
    kernel_id id = chunk == 16 ? K_BITS_SCORES16 : chunk == 8 ? K_BITS_SCORES8 : K_BITS_SCORES;
    size_t across = (s->components + chunk - 1) / chunk, local[2];
    bits_local_size(backend, across, local);
    return tdm_cl_launch_2d(ctx_of(backend), id, across, s->rows, local, args, COUNT(args));
}

/* Parts of the rows for bits_sums: 1 on a CPU device; on a GPU as many as
 * give each part BITS_PART_ROWS rows. At most the context's bits_parts, and
 * as many partial sums of `count` floats as BITS_PARTIALS_BYTES and one
 * buffer hold. */
static size_t bits_parts(const opencl_context *ctx, size_t rows, size_t count)
{
    size_t budget =
        ctx->max_buffer_bytes < BITS_PARTIALS_BYTES ? ctx->max_buffer_bytes : BITS_PARTIALS_BYTES;
    size_t room = budget / sizeof(float) / count;
    size_t parts = ctx->info.is_gpu_or_accelerator ? rows / BITS_PART_ROWS : ctx->bits_parts;
    parts = parts < ctx->bits_parts ? parts : ctx->bits_parts;
    parts = parts < room ? parts : room;
    parts = parts < rows ? parts : rows;
    return parts > 0 ? parts : 1;
}

tdm_status tdm_opencl_bits_sums(tdm_backend *backend, const tdm_bits_shape *s, tdm_view bits,
                                tdm_view weights, tdm_view sums)
{
    opencl_context *ctx = ctx_of(backend);
    cl_view x = cl_view_of(bits), w = cl_view_of(weights), y = cl_view_of(sums);
    cl_index rows = s->rows, cols = s->cols, words = s->row_words, k = s->components;
    cl_index count = k * (cols + 1), parts = bits_parts(ctx, s->rows, count);
    cl_view out = y;
    if (parts > 1) {
        TDM_TRY(tdm_cl_ensure_scratch(ctx, &ctx->bits_partials, &ctx->bits_partials_size,
                                      parts * count * sizeof(float), "bits_sums partials", true));
        out = (cl_view){ctx->bits_partials, 0};
    }
    kernel_arg args[] = {ARG(rows),  ARG(cols),    ARG(words),   ARG(k),
                         ARG(parts), VIEW_ARGS(x), VIEW_ARGS(w), VIEW_ARGS(out)};
    /* 16 columns by 8 components a work-item, for each part; one more run
     * for the totals */
    size_t runs = (s->cols + 15) / 16 + 1, quads = (s->components + 7) / 8, local[2];
    bits_local_size(backend, runs, local);
    TDM_TRY(tdm_cl_launch_2d(ctx, K_BITS_SUMS, runs, quads * parts, local, args, COUNT(args)));
    if (parts == 1)
        return TDM_OK;
    kernel_arg reduce[] = {ARG(count), ARG(parts), ARG(out.mem), VIEW_ARGS(y)};
    return tdm_cl_launch(ctx, K_BITS_SUMS_REDUCE, count, reduce, COUNT(reduce));
}

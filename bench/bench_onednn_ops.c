/* tandem's cpu ops against oneDNN's own primitives (plain NCHW layouts, the
 * layout tandem keeps; the inner product for the linear head) on the
 * shapes of ResNet(C) at batch 128: is any
 * oneDNN primitive faster than tandem's loop for them? One line per op:
 * `op <name> tandem <us> onednn <us> <onednn / tandem>`, each the median of
 * 7 rounds of at least 0.1 s. Built only with the oneDNN GEMM.
 * Usage: bench_onednn_ops [C] [THREADS]   (default C = 64, all cores) */
#define _POSIX_C_SOURCE 200809L
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tandem/tandem.h"
#include "core/clock.h"

enum { BATCH = 128, ROUNDS = 7 };

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef int (*op_call)(void *context);

/* Median microseconds per call over ROUNDS rounds of at least 0.1 s. */
static double time_call(op_call call, void *context)
{
    double rounds[ROUNDS];
    if (call(context) != 0)
        return -1.0;
    for (int r = 0; r < ROUNDS; r++) {
        size_t calls = 0;
        double start = tdm_monotonic_seconds(), elapsed = 0.0;
        while (elapsed < 0.1) {
            if (call(context) != 0)
                return -1.0;
            calls++;
            elapsed = tdm_monotonic_seconds() - start;
        }
        rounds[r] = 1e6 * elapsed / (double)calls;
    }
    qsort(rounds, ROUNDS, sizeof rounds[0], compare_doubles);
    return rounds[ROUNDS / 2];
}

/* ---------- oneDNN ---------- */

typedef struct onednn_op {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_primitive_t primitive;
    dnnl_exec_arg_t args[10];
    int nargs;
} onednn_op;

static int onednn_run(void *context)
{
    onednn_op *op = context;
    dnnl_status_t status = dnnl_primitive_execute(op->primitive, op->stream, op->nargs, op->args);
    if (status != dnnl_success) {
        fprintf(stderr, "bench_onednn_ops: %s\n", dnnl_status2str(status));
        return -1;
    }
    return dnnl_stream_wait(op->stream) == dnnl_success ? 0 : -1;
}

static dnnl_memory_desc_t nchw(dnnl_dim_t n, dnnl_dim_t c, dnnl_dim_t h, dnnl_dim_t w)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {n, c, h, w};
    dnnl_memory_desc_init_by_tag(&md, 4, dims, dnnl_f32, dnnl_nchw);
    return md;
}

static dnnl_memory_desc_t matrix_md(dnnl_dim_t rows, dnnl_dim_t cols)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {rows, cols};
    dnnl_memory_desc_init_by_tag(&md, 2, dims, dnnl_f32, dnnl_ab);
    return md;
}

static dnnl_memory_desc_t vector_md(dnnl_dim_t count)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {count};
    dnnl_memory_desc_init_by_tag(&md, 1, dims, dnnl_f32, dnnl_a);
    return md;
}

/* A memory over fresh host floats (or of the primitive's workspace). */
static void add_arg(onednn_op *op, int arg, const dnnl_memory_desc_t *md)
{
    size_t bytes = dnnl_memory_desc_get_size(md);
    float *data = malloc(bytes ? bytes : 4);
    for (size_t i = 0; i < bytes / sizeof(float); i++)
        data[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f + (arg == DNNL_ARG_VARIANCE);
    dnnl_memory_t memory;
    dnnl_memory_create(&memory, md, op->engine, data);
    op->args[op->nargs++] = (dnnl_exec_arg_t){arg, memory};
}

static int finish(onednn_op *op, const_dnnl_op_desc_t desc, const_dnnl_primitive_desc_t hint,
                  dnnl_primitive_desc_t *pd_out)
{
    dnnl_primitive_desc_t pd;
    if (dnnl_primitive_desc_create(&pd, desc, NULL, op->engine, hint) != dnnl_success)
        return -1;
    dnnl_primitive_create(&op->primitive, pd);
    if (pd_out)
        *pd_out = pd;
    return 0;
}

/* ---------- tandem ---------- */

typedef struct tandem_op {
    tdm_backend *backend;
    tdm_view v[10];
    int kind;
    tdm_conv2d_shape conv;
    tdm_batchnorm_shape norm;
    tdm_pool2d_shape pool;
    tdm_linear_shape linear;
} tandem_op;

/* A layer's forward, backward data and backward weights in that order
 * (compare_layer counts from the first). */
enum {
    CONV_FORWARD,
    CONV_BACKWARD_DATA,
    CONV_BACKWARD_WEIGHTS,
    NORM_FORWARD,
    NORM_BACKWARD,
    POOL_FORWARD,
    POOL_BACKWARD,
    LINEAR_FORWARD,
    LINEAR_BACKWARD_DATA,
    LINEAR_BACKWARD_WEIGHTS
};

static tdm_view tandem_floats(tdm_backend *backend, size_t count)
{
    tdm_buffer *buffer = NULL;
    float *host = malloc(count * sizeof(float));
    for (size_t i = 0; i < count; i++)
        host[i] = (float)((i * 7919) % 1000) / 500.0f - 0.5f; /* positive variances too */
    if (tdm_buffer_alloc(backend, count * sizeof(float), &buffer) != TDM_OK ||
        tdm_buffer_upload(buffer, 0, host, count * sizeof(float)) != TDM_OK)
        fprintf(stderr, "bench_onednn_ops: %s\n", tdm_last_error());
    free(host);
    return (tdm_view){buffer, 0};
}

static int tandem_run(void *context)
{
    tandem_op *o = context;
    tdm_view *v = o->v, none = {NULL, 0};
    tdm_status s = TDM_OK;
    switch (o->kind) {
    case CONV_FORWARD: s = tdm_conv2d_forward(o->backend, &o->conv, v[0], v[1], none, v[2]); break;
    case CONV_BACKWARD_DATA:
        s = tdm_conv2d_backward_input(o->backend, &o->conv, v[1], v[2], v[0]);
        break;
    case CONV_BACKWARD_WEIGHTS:
        s = tdm_conv2d_backward_weight(o->backend, &o->conv, v[0], v[2], v[1], none);
        break;
    case NORM_FORWARD:
        s = tdm_batchnorm_forward_train(o->backend, &o->norm, v[0], v[1], v[2], v[3], v[4], v[5],
                                        v[6], v[7]);
        break;
    case NORM_BACKWARD:
        s = tdm_batchnorm_backward(o->backend, &o->norm, v[0], v[7], none, v[1], v[5], v[6], v[8],
                                   v[2], v[3]);
        break;
    case POOL_FORWARD: s = tdm_maxpool2d_forward(o->backend, &o->pool, v[0], v[1], v[2]); break;
    case POOL_BACKWARD: s = tdm_maxpool2d_backward(o->backend, &o->pool, v[2], v[1], v[0]); break;
    case LINEAR_FORWARD:
        s = tdm_linear_forward(o->backend, &o->linear, v[0], v[1], v[2], v[3]);
        break;
    case LINEAR_BACKWARD_DATA:
        s = tdm_linear_backward_input(o->backend, &o->linear, v[1], v[3], v[4]);
        break;
    default: s = tdm_linear_backward_weight(o->backend, &o->linear, v[0], v[3], v[5], v[6]); break;
    }
    return s == TDM_OK && tdm_backend_synchronize(o->backend) == TDM_OK ? 0 : -1;
}

/* ---------- the ops ---------- */

/* Times `kind` of tandem's op against oneDNN's primitive: a line `op NAME_WHAT ...`. */
static void report(const char *name, const char *what, int kind, tandem_op *ours, onednn_op *theirs)
{
    ours->kind = kind;
    double t = time_call(tandem_run, ours), d = time_call(onednn_run, theirs);
    printf("op %s_%s tandem %.1f onednn %.1f %.2f\n", name, what, t, d, d / t);
    fflush(stdout);
}

/* The memory of a layer with weights: the bias may be NULL. */
typedef struct layer_memory {
    const dnnl_memory_desc_t *src, *weights, *bias, *dst;
} layer_memory;

/* A layer's three oneDNN primitives (forward, backward data, backward
 * weights, from descs) each timed against tandem's, whose kinds follow
 * first_kind in that order. */
static void compare_layer(const char *name, tandem_op *ours, onednn_op base,
                          const_dnnl_op_desc_t descs[3], const layer_memory *m, int first_kind)
{
    onednn_op f = base, bd = base, bw = base;
    dnnl_primitive_desc_t hint;
    if (finish(&f, descs[0], NULL, &hint) != 0 || finish(&bd, descs[1], hint, NULL) != 0 ||
        finish(&bw, descs[2], hint, NULL) != 0) {
        printf("op %s: oneDNN has no plain-layout implementation\n", name);
        return;
    }
    add_arg(&f, DNNL_ARG_SRC, m->src);
    add_arg(&f, DNNL_ARG_WEIGHTS, m->weights);
    if (m->bias)
        add_arg(&f, DNNL_ARG_BIAS, m->bias);
    add_arg(&f, DNNL_ARG_DST, m->dst);
    add_arg(&bd, DNNL_ARG_DIFF_DST, m->dst);
    add_arg(&bd, DNNL_ARG_WEIGHTS, m->weights);
    add_arg(&bd, DNNL_ARG_DIFF_SRC, m->src);
    add_arg(&bw, DNNL_ARG_SRC, m->src);
    add_arg(&bw, DNNL_ARG_DIFF_DST, m->dst);
    add_arg(&bw, DNNL_ARG_DIFF_WEIGHTS, m->weights);
    if (m->bias)
        add_arg(&bw, DNNL_ARG_DIFF_BIAS, m->bias);
    onednn_op *theirs[3] = {&f, &bd, &bw};
    const char *what[3] = {"forward", "backward_data", "backward_weights"};
    for (int i = 0; i < 3; i++)
        report(name, what[i], first_kind + i, ours, theirs[i]);
}

static void conv_ops(tdm_backend *backend, onednn_op base, const char *name, tdm_conv2d_shape s)
{
    size_t oh = tdm_conv2d_out_height(&s), ow = tdm_conv2d_out_width(&s);
    tandem_op ours = {.backend = backend, .conv = s};
    ours.v[0] = tandem_floats(backend, s.batch * s.in_channels * s.in_height * s.in_width);
    ours.v[1] = tandem_floats(backend, s.out_channels * s.in_channels * s.kernel_h * s.kernel_w);
    ours.v[2] = tandem_floats(backend, s.batch * s.out_channels * oh * ow);
    dnnl_memory_desc_t src = nchw(BATCH, (dnnl_dim_t)s.in_channels, (dnnl_dim_t)s.in_height,
                                  (dnnl_dim_t)s.in_width),
                       w = nchw((dnnl_dim_t)s.out_channels, (dnnl_dim_t)s.in_channels,
                                (dnnl_dim_t)s.kernel_h, (dnnl_dim_t)s.kernel_w),
                       dst =
                           nchw(BATCH, (dnnl_dim_t)s.out_channels, (dnnl_dim_t)oh, (dnnl_dim_t)ow);
    dnnl_dims_t strides = {(dnnl_dim_t)s.stride_h, (dnnl_dim_t)s.stride_w};
    dnnl_dims_t pad = {(dnnl_dim_t)s.pad_h, (dnnl_dim_t)s.pad_w};
    dnnl_convolution_desc_t forward, data, weights;
    dnnl_convolution_forward_desc_init(&forward, dnnl_forward_training, dnnl_convolution_direct,
                                       &src, &w, NULL, &dst, strides, pad, pad);
    dnnl_convolution_backward_data_desc_init(&data, dnnl_convolution_direct, &src, &w, &dst,
                                             strides, pad, pad);
    dnnl_convolution_backward_weights_desc_init(&weights, dnnl_convolution_direct, &src, &w, NULL,
                                                &dst, strides, pad, pad);
    const_dnnl_op_desc_t descs[3] = {&forward, &data, &weights};
    layer_memory mds = {&src, &w, NULL, &dst};
    compare_layer(name, &ours, base, descs, &mds, CONV_FORWARD);
}

static void norm_ops(tdm_backend *backend, onednn_op base, const char *name, size_t channels,
                     size_t side)
{
    tdm_batchnorm_shape s = {BATCH, channels, side * side, 1e-5f, 0.1f, .relu = false};
    size_t count = BATCH * channels * side * side;
    tandem_op ours = {.backend = backend, .norm = s};
    size_t sizes[9] = {count,    channels, channels, channels, channels,
                       channels, channels, count,    count};
    for (int i = 0; i < 9; i++)
        ours.v[i] = tandem_floats(backend, sizes[i]);
    dnnl_memory_desc_t data = nchw(BATCH, (dnnl_dim_t)channels, (dnnl_dim_t)side, (dnnl_dim_t)side);
    dnnl_memory_desc_t stat = vector_md((dnnl_dim_t)channels);
    unsigned flags = dnnl_use_scale | dnnl_use_shift;
    dnnl_batch_normalization_desc_t forward, backward;
    dnnl_batch_normalization_forward_desc_init(&forward, dnnl_forward_training, &data, 1e-5f,
                                               flags);
    dnnl_batch_normalization_backward_desc_init(&backward, dnnl_backward, &data, &data, 1e-5f,
                                                flags);
    onednn_op f = base, b = base;
    dnnl_primitive_desc_t hint;
    if (finish(&f, &forward, NULL, &hint) != 0 || finish(&b, &backward, hint, NULL) != 0) {
        printf("op %s: oneDNN has no plain-layout implementation\n", name);
        return;
    }
    int f_args[6] = {DNNL_ARG_SRC,      DNNL_ARG_DST,   DNNL_ARG_MEAN,
                     DNNL_ARG_VARIANCE, DNNL_ARG_SCALE, DNNL_ARG_SHIFT};
    for (int i = 0; i < 6; i++)
        add_arg(&f, f_args[i], i < 2 ? &data : &stat);
    int b_args[9] = {DNNL_ARG_SRC,   DNNL_ARG_DIFF_DST,   DNNL_ARG_DIFF_SRC,
                     DNNL_ARG_MEAN,  DNNL_ARG_VARIANCE,   DNNL_ARG_SCALE,
                     DNNL_ARG_SHIFT, DNNL_ARG_DIFF_SCALE, DNNL_ARG_DIFF_SHIFT};
    for (int i = 0; i < 9; i++)
        add_arg(&b, b_args[i], i < 3 ? &data : &stat);
    report(name, "forward_training", NORM_FORWARD, &ours, &f);
    report(name, "backward", NORM_BACKWARD, &ours, &b);
}

static void pool_ops(tdm_backend *backend, onednn_op base, const char *name, size_t channels,
                     size_t side)
{
    tdm_pool2d_shape s = {BATCH, channels, side, side, 2, 2, 2, 2};
    size_t in = BATCH * channels * side * side, out = in / 4;
    tandem_op ours = {.backend = backend, .pool = s};
    ours.v[0] = tandem_floats(backend, in);
    ours.v[1] = tandem_floats(backend, out);
    ours.v[2] = tandem_floats(backend, out);
    tdm_maxpool2d_forward(backend, &s, ours.v[0], ours.v[1], ours.v[2]); /* valid argmax */
    dnnl_memory_desc_t src = nchw(BATCH, (dnnl_dim_t)channels, (dnnl_dim_t)side, (dnnl_dim_t)side),
                       dst = nchw(BATCH, (dnnl_dim_t)channels, (dnnl_dim_t)side / 2,
                                  (dnnl_dim_t)side / 2);
    dnnl_dims_t two = {2, 2}, zero = {0, 0};
    dnnl_pooling_v2_desc_t forward, backward;
    dnnl_pooling_v2_forward_desc_init(&forward, dnnl_forward_training, dnnl_pooling_max, &src, &dst,
                                      two, two, zero, zero, zero);
    dnnl_pooling_v2_backward_desc_init(&backward, dnnl_pooling_max, &src, &dst, two, two, zero,
                                       zero, zero);
    onednn_op f = base, b = base;
    dnnl_primitive_desc_t hint;
    if (finish(&f, &forward, NULL, &hint) != 0 || finish(&b, &backward, hint, NULL) != 0) {
        printf("op %s: oneDNN has no plain-layout implementation\n", name);
        return;
    }
    const dnnl_memory_desc_t *workspace =
        dnnl_primitive_desc_query_md(hint, dnnl_query_workspace_md, 0);
    add_arg(&f, DNNL_ARG_SRC, &src);
    add_arg(&f, DNNL_ARG_DST, &dst);
    add_arg(&f, DNNL_ARG_WORKSPACE, workspace);
    add_arg(&b, DNNL_ARG_DIFF_DST, &dst);
    add_arg(&b, DNNL_ARG_DIFF_SRC, &src);
    b.args[b.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_WORKSPACE, f.args[2].memory};
    report(name, "forward", POOL_FORWARD, &ours, &f);
    report(name, "backward", POOL_BACKWARD, &ours, &b);
}

/* A linear layer (ResNet's head: C -> 10, bias) against oneDNN's inner
 * product. */
static void linear_ops(tdm_backend *backend, onednn_op base, const char *name, size_t in,
                       size_t out)
{
    tandem_op ours = {.backend = backend, .linear = {BATCH, in, out, 0}};
    size_t sizes[7] = {BATCH * in, out * in, out, BATCH * out, BATCH * in, out * in, out};
    for (int i = 0; i < 7; i++)
        ours.v[i] = tandem_floats(backend, sizes[i]);
    dnnl_memory_desc_t src = matrix_md(BATCH, (dnnl_dim_t)in),
                       w = matrix_md((dnnl_dim_t)out, (dnnl_dim_t)in),
                       b = vector_md((dnnl_dim_t)out), dst = matrix_md(BATCH, (dnnl_dim_t)out);
    dnnl_inner_product_desc_t forward, data, weights;
    dnnl_inner_product_forward_desc_init(&forward, dnnl_forward_training, &src, &w, &b, &dst);
    dnnl_inner_product_backward_data_desc_init(&data, &src, &w, &dst);
    dnnl_inner_product_backward_weights_desc_init(&weights, &src, &w, &b, &dst);
    const_dnnl_op_desc_t descs[3] = {&forward, &data, &weights};
    layer_memory mds = {&src, &w, &b, &dst};
    compare_layer(name, &ours, base, descs, &mds, LINEAR_FORWARD);
}

int main(int argc, char **argv)
{
    size_t c = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
    size_t threads = argc > 2 ? strtoul(argv[2], NULL, 10) : 0;
    tdm_backend *backend = NULL;
    if (c == 0 || tdm_cpu_backend_create_threads(threads, &backend) != TDM_OK)
        return fputs("usage: bench_onednn_ops [C] [THREADS]\n", stderr), 2;
    omp_set_num_threads((int)tdm_backend_host_threads(backend));
    onednn_op base = {0};
    if (dnnl_engine_create(&base.engine, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&base.stream, base.engine, dnnl_stream_default_flags) != dnnl_success)
        return fputs("bench_onednn_ops: no oneDNN cpu engine\n", stderr), 1;
    fprintf(stderr, "bench_onednn_ops: ResNet(%zu), batch %d, %s\n", c, BATCH,
            tdm_backend_description(backend));
    conv_ops(backend, base, "conv_stem_8x8",
             (tdm_conv2d_shape){BATCH, 1, 8, 8, c, 3, 3, 2, 2, 1, 1});
    conv_ops(backend, base, "conv_block_2x2",
             (tdm_conv2d_shape){BATCH, c, 2, 2, c, 3, 3, 1, 1, 1, 1});
    norm_ops(backend, base, "batchnorm_4x4", c, 4);
    norm_ops(backend, base, "batchnorm_2x2", c, 2);
    pool_ops(backend, base, "maxpool_4x4", c, 4);
    linear_ops(backend, base, "linear_head", c, 10);
    return 0; /* the process exits: buffers and primitives go with it */
}

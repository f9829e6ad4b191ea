/* The OpenCL backend: one context, one in-order queue and one program per
 * device; GEMM through CLBlast, the rest through the kernels in cl/. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <clblast_c.h>

#include "backend/opencl/cl_devices.h"
#include "backend/opencl/cl_program.h"
#include "backend/opencl/cl_tuning.h"
#include "backend/opencl/opencl_impl.h"
#include "backend/opencl/opencl_layers.h"

static const char *const kernel_names[KERNEL_COUNT] = {
#define TDM_OP(id, name, entry)
#define TDM_ELEMENTWISE(id, name, operands) [K_##id] = "tdm_" name,
#include "tandem/ops.def"
#undef TDM_OP
#undef TDM_ELEMENTWISE
#define TDM_KERNEL(id, name) [K_##id] = name,
#include "backend/opencl/kernels.def"
#undef TDM_KERNEL
};

static tdm_status set_args(opencl_context *ctx, kernel_id id, const kernel_arg *args,
                           size_t arg_count)
{
    for (size_t i = 0; i < arg_count; i++) {
        cl_int err = clSetKernelArg(ctx->kernels[id], (cl_uint)i, args[i].size, args[i].value);
        if (err != CL_SUCCESS)
            return TDM_FAIL(TDM_ERR_OPENCL, "clSetKernelArg(%s, %zu) failed: %s", kernel_names[id],
                            i, tdm_cl_error_name(err));
    }
    return TDM_OK;
}

/* In profiling mode every launch waits for its event: the report gives each
 * kernel's device time, and the run is serialised (slower) meanwhile. */
static cl_event *profile_event(opencl_context *ctx, cl_event *event)
{
    *event = NULL;
    return ctx->profiling ? event : NULL;
}

/* The device time from the start of `first` (NULL: of `last`) to the end of
 * `last` into the row; releases both events. */
static void profile_add_span(opencl_context *ctx, int row, cl_event first, cl_event last)
{
    cl_ulong start = 0, end = 0;
    if (last && clWaitForEvents(1, &last) == CL_SUCCESS &&
        clGetEventProfilingInfo(first ? first : last, CL_PROFILING_COMMAND_START, sizeof start,
                                &start, NULL) == CL_SUCCESS &&
        clGetEventProfilingInfo(last, CL_PROFILING_COMMAND_END, sizeof end, &end, NULL) ==
            CL_SUCCESS &&
        end >= start) {
        ctx->profile[row].seconds += 1e-9 * (double)(end - start);
        ctx->profile[row].launches++;
    }
    if (first)
        clReleaseEvent(first);
    if (last)
        clReleaseEvent(last);
}

static void profile_add(opencl_context *ctx, int row, cl_event event)
{
    profile_add_span(ctx, row, NULL, event);
}

/* In profiling mode, a marker enqueued before a CLBlast GEMM, whose own
 * event is its last kernel's: the span from the marker covers the copy,
 * pad and transpose kernels before it too. */
static cl_event profile_marker(opencl_context *ctx)
{
    cl_event marker = NULL;
    if (ctx->profiling && clEnqueueMarkerWithWaitList(ctx->queue, 0, NULL, &marker) != CL_SUCCESS)
        marker = NULL;
    return marker;
}

static int by_seconds_descending(const void *a, const void *b)
{
    const profile_row *x = *(const profile_row *const *)a, *y = *(const profile_row *const *)b;
    return (x->seconds < y->seconds) - (x->seconds > y->seconds);
}

/* The profile, to stderr: each kernel's launches and device time, largest first. */
static void profile_report(const opencl_context *ctx)
{
    const profile_row *rows[PROFILE_ROWS];
    double total = 0;
    for (int i = 0; i < PROFILE_ROWS; i++) {
        rows[i] = &ctx->profile[i];
        total += ctx->profile[i].seconds;
    }
    qsort(rows, PROFILE_ROWS, sizeof rows[0], by_seconds_descending);
    fprintf(stderr, "opencl profile of %s: %.3f ms of kernels\n", ctx->info.device_name,
            1e3 * total);
    fprintf(stderr, "  %-34s %10s %12s %10s %7s\n", "kernel", "launches", "total ms", "mean us",
            "share");
    for (int i = 0; i < PROFILE_ROWS && rows[i]->launches > 0; i++) {
        int row = (int)(rows[i] - ctx->profile);
        fprintf(stderr, "  %-34s %10lu %12.3f %10.2f %6.1f%%\n",
                row == PROFILE_GEMM   ? "CLBlast GEMM"
                : row == PROFILE_FILL ? "fill (clEnqueueFillBuffer)"
                : row == PROFILE_COPY ? "copy (clEnqueueCopyBuffer)"
                                      : kernel_names[row],
                rows[i]->launches, 1e3 * rows[i]->seconds,
                1e6 * rows[i]->seconds / (double)rows[i]->launches,
                total > 0 ? 100 * rows[i]->seconds / total : 0.0);
    }
}

tdm_status tdm_cl_launch_groups(opencl_context *ctx, kernel_id id, size_t groups,
                                const kernel_arg *args, size_t arg_count)
{
    size_t size = groups * ctx->reduction_group;
    return tdm_cl_launch_nd(ctx, id, 1, &size, &ctx->reduction_group, args, arg_count);
}

tdm_status tdm_cl_launch_2d(opencl_context *ctx, kernel_id id, size_t x, size_t y,
                            const size_t local[2], const kernel_arg *args, size_t arg_count)
{
    const size_t size[2] = {x, y};
    return tdm_cl_launch_nd(ctx, id, 2, size, local, args, arg_count);
}

tdm_status tdm_cl_launch_nd(opencl_context *ctx, kernel_id id, unsigned dims, const size_t *size,
                            const size_t *local, const kernel_arg *args, size_t arg_count)
{
    size_t global[3] = {1, 1, 1};
    for (unsigned d = 0; d < dims; d++) {
        if (size[d] == 0)
            return TDM_OK;
        global[d] = local ? (size[d] + local[d] - 1) / local[d] * local[d] : size[d];
    }
    TDM_TRY(set_args(ctx, id, args, arg_count));
    cl_event event;
    cl_int err = clEnqueueNDRangeKernel(ctx->queue, ctx->kernels[id], dims, NULL, global, local, 0,
                                        NULL, profile_event(ctx, &event));
    ctx->counts->launches++;
    profile_add(ctx, id, event);
    if (err != CL_SUCCESS)
        return TDM_FAIL(TDM_ERR_OPENCL, "clEnqueueNDRangeKernel(%s) failed: %s", kernel_names[id],
                        tdm_cl_error_name(err));
    return TDM_OK;
}

tdm_status tdm_cl_launch(opencl_context *ctx, kernel_id id, size_t items, const kernel_arg *args,
                         size_t arg_count)
{
    return tdm_cl_launch_nd(ctx, id, 1, &items, &ctx->group_size, args, arg_count);
}

static void release_context(opencl_context *ctx)
{
    if (ctx->gemm_scratch)
        clReleaseMemObject(ctx->gemm_scratch);
    if (ctx->bits_partials)
        clReleaseMemObject(ctx->bits_partials);
    for (int i = 0; i < KERNEL_COUNT; i++)
        if (ctx->kernels[i])
            clReleaseKernel(ctx->kernels[i]);
    if (ctx->program)
        clReleaseProgram(ctx->program);
    if (ctx->queue)
        clReleaseCommandQueue(ctx->queue);
    if (ctx->context)
        clReleaseContext(ctx->context);
    free(ctx);
}

static void opencl_free(tdm_backend *backend)
{
    opencl_context *ctx = ctx_of(backend);
    clFinish(ctx->queue);
    if (ctx->profiling)
        profile_report(ctx);
    /* CLBlast keeps its compiled programs in static caches, which would
     * otherwise release them at exit, after the OpenCL runtime's own static
     * state may be gone (Oclgrind then corrupted the heap). Clearing them
     * here costs other live backends a rebuild, on their next GEMM only. */
    CLBlastClearCache();
    release_context(ctx);
    free(backend);
}

static tdm_status opencl_synchronize(tdm_backend *backend)
{
    ctx_of(backend)->counts->waits++;
    TDM_CL_TRY(clFinish(ctx_of(backend)->queue));
    return TDM_OK;
}

static tdm_status opencl_buffer_alloc(tdm_backend *backend, tdm_buffer *buffer)
{
    const opencl_context *ctx = ctx_of(backend);
    if (buffer->size > ctx->max_buffer_bytes)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY,
                        "opencl: a buffer of %zu bytes is more than '%s' takes in one: at most "
                        "%zu bytes (%s)",
                        buffer->size, ctx->info.device_name, ctx->max_buffer_bytes,
                        ctx->buffer_limit);
    cl_int err = CL_SUCCESS;
    buffer->handle = clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, buffer->size, NULL, &err);
    if (err != CL_SUCCESS)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "clCreateBuffer of %zu bytes on '%s' failed: %s",
                        buffer->size, ctx->info.device_name, tdm_cl_error_name(err));
    return TDM_OK;
}

static void opencl_buffer_free(tdm_backend *backend, tdm_buffer *buffer)
{
    (void)backend;
    clReleaseMemObject(mem_of(buffer));
}

static tdm_status opencl_upload(tdm_backend *backend, tdm_buffer *dst, size_t offset,
                                const void *src, size_t bytes)
{
    TDM_CL_TRY(clEnqueueWriteBuffer(ctx_of(backend)->queue, mem_of(dst), CL_TRUE, offset, bytes,
                                    src, 0, NULL, NULL));
    return TDM_OK;
}

static tdm_status opencl_download(tdm_backend *backend, const tdm_buffer *src, size_t offset,
                                  void *dst, size_t bytes)
{
    ctx_of(backend)->counts->waits++;
    TDM_CL_TRY(clEnqueueReadBuffer(ctx_of(backend)->queue, mem_of(src), CL_TRUE, offset, bytes, dst,
                                   0, NULL, NULL));
    return TDM_OK;
}

/* A fill or copy just enqueued (err: what its clEnqueue call returned): a
 * command of its own, counted and timed as a launch in the profile's row. */
static tdm_status buffer_command_done(opencl_context *ctx, cl_int err, const char *call,
                                      size_t count, int row, cl_event event)
{
    ctx->counts->launches++;
    if (err != CL_SUCCESS)
        return TDM_FAIL(TDM_ERR_OPENCL, "%s of %zu floats failed: %s", call, count,
                        tdm_cl_error_name(err));
    profile_add(ctx, row, event);
    return TDM_OK;
}

/* count floats from x set to value by clEnqueueFillBuffer, the runtime's
 * own fill (on NVIDIA's driver about what a kernel costs: 6.7 us against
 * 6.9); timed as "fill" in the profile. */
static tdm_status fill_floats(opencl_context *ctx, tdm_view x, size_t count, float value)
{
    cl_event event;
    cl_int err = clEnqueueFillBuffer(ctx->queue, mem_of(x.buffer), &value, sizeof value,
                                     x.offset * sizeof(float), count * sizeof(float), 0, NULL,
                                     profile_event(ctx, &event));
    return buffer_command_done(ctx, err, "clEnqueueFillBuffer", count, PROFILE_FILL, event);
}

static tdm_status opencl_fill(tdm_backend *backend, tdm_view x, size_t count, float value)
{
    return fill_floats(ctx_of(backend), x, count, value);
}

static tdm_status opencl_copy(tdm_backend *backend, tdm_view src, tdm_view dst, size_t count)
{
    opencl_context *ctx = ctx_of(backend);
    cl_event event;
    cl_int err = clEnqueueCopyBuffer(ctx->queue, mem_of(src.buffer), mem_of(dst.buffer),
                                     src.offset * sizeof(float), dst.offset * sizeof(float),
                                     count * sizeof(float), 0, NULL, profile_event(ctx, &event));
    return buffer_command_done(ctx, err, "clEnqueueCopyBuffer", count, PROFILE_COPY, event);
}

static tdm_status opencl_axpy(tdm_backend *backend, size_t count, float alpha, tdm_view x,
                              tdm_view y)
{
    cl_mem x_mem = mem_of(x.buffer), y_mem = mem_of(y.buffer);
    cl_index n = count, x_offset = x.offset, y_offset = y.offset;
    cl_float a = alpha;
    kernel_arg args[] = {ARG(n), ARG(a), ARG(x_mem), ARG(x_offset), ARG(y_mem), ARG(y_offset)};
    return tdm_cl_launch(ctx_of(backend), K_AXPY, count, args, 6);
}

static tdm_status opencl_scale(tdm_backend *backend, size_t count, float alpha, tdm_view x)
{
    cl_mem mem = mem_of(x.buffer);
    cl_index n = count, offset = x.offset;
    cl_float a = alpha;
    kernel_arg args[] = {ARG(n), ARG(a), ARG(mem), ARG(offset)};
    return tdm_cl_launch(ctx_of(backend), K_SCALE, count, args, 4);
}

/* Every elementwise kernel takes (count, a, a_offset, b, b_offset, out,
 * out_offset, scalar). */
static tdm_status opencl_elementwise(tdm_backend *backend, tdm_elementwise_op op, size_t count,
                                     float scalar, tdm_view a, tdm_view b, tdm_view out)
{
    tdm_view second = b.buffer ? b : a; /* unary kernels ignore it */
    cl_mem a_mem = mem_of(a.buffer), b_mem = mem_of(second.buffer), out_mem = mem_of(out.buffer);
    cl_index n = count, a_offset = a.offset, b_offset = second.offset, out_offset = out.offset;
    cl_float parameter = scalar;
    kernel_arg args[] = {ARG(n),        ARG(a_mem),   ARG(a_offset),   ARG(b_mem),
                         ARG(b_offset), ARG(out_mem), ARG(out_offset), ARG(parameter)};
    /* Elementwise op e runs kernel e (see kernel_id). */
    return tdm_cl_launch(ctx_of(backend), (kernel_id)op, count, args, 8);
}

tdm_status tdm_cl_ensure_scratch(opencl_context *ctx, cl_mem *mem, size_t *size, size_t bytes,
                                 const char *what, bool within_limit)
{
    if (bytes <= *size)
        return TDM_OK;
    if (within_limit && bytes > ctx->max_buffer_bytes)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY,
                        "opencl: %zu bytes of %s are more than one buffer of %s holds: at most "
                        "%zu bytes (%s)",
                        bytes, what, ctx->info.device_name, ctx->max_buffer_bytes,
                        ctx->buffer_limit);
    if (*mem)
        clReleaseMemObject(*mem);
    *size = 0;
    cl_int err = CL_SUCCESS;
    *mem = clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err != CL_SUCCESS) {
        *mem = NULL;
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "clCreateBuffer of a %zu-byte %s failed: %s", bytes,
                        what, tdm_cl_error_name(err));
    }
    *size = bytes;
    return TDM_OK;
}

/* tandem's row-major C = op(A) op(B) (m x n) as the column-major product
 * C^T = op(B)^T op(A)^T (n x m), the same memory: CLBlast's indirect GEMM
 * writes column-major C directly, but transposes a row-major C through a
 * scratch matrix (a TransposeMatrix launch after every GEMM). */
typedef struct column_major_gemm {
    CLBlastTranspose ta, tb;
    size_t m, n, k;
    tdm_view a, b;
    size_t lda, ldb;
} column_major_gemm;

static column_major_gemm column_major_of(const tdm_sgemm_args *g)
{
    return (column_major_gemm){
        .ta = g->trans_b == TDM_TRANS ? CLBlastTransposeYes : CLBlastTransposeNo,
        .tb = g->trans_a == TDM_TRANS ? CLBlastTransposeYes : CLBlastTransposeNo,
        .m = g->n,
        .n = g->m,
        .k = g->k,
        .a = g->b,
        .b = g->a,
        .lda = g->ldb,
        .ldb = g->lda};
}

/* A, B and C as CLBlast gets them (in its column-major order): a cl_mem and
 * an offset each, and the sub-buffers made for them (NULL where none). */
typedef struct gemm_operands {
    cl_mem mem[3], owned[3];
    size_t offset[3];
} gemm_operands;

static void release_operands(gemm_operands *ops)
{
    for (int i = 0; i < 3; i++)
        if (ops->owned[i])
            clReleaseMemObject(ops->owned[i]);
}

/* CLBlast's indirect GEMM copies an operand that does not start its buffer
 * (its kernels take no offsets), so a view at an offset the device's
 * alignment allows becomes a sub-buffer of the operand's floats: CLBlast then
 * reads it, or writes C, in place when its orientation and sizes suit the
 * kernel (on PoCL the weight gradient of a dense convolution loses both
 * copies). The sub-buffers span only their operands, so that C's never
 * overlaps another (OpenCL leaves writing overlapping sub-buffers undefined). */
static tdm_status place_operand(const opencl_context *ctx, tdm_view v, size_t floats,
                                gemm_operands *ops, int i)
{
    size_t origin = v.offset * sizeof(float);
    ops->mem[i] = mem_of(v.buffer);
    ops->offset[i] = v.offset;
    if (origin == 0 || origin % ctx->sub_buffer_align != 0)
        return TDM_OK;
    cl_buffer_region region = {origin, floats * sizeof(float)};
    cl_int err = CL_SUCCESS;
    ops->owned[i] = clCreateSubBuffer(ops->mem[i], 0, CL_BUFFER_CREATE_TYPE_REGION, &region, &err);
    if (err != CL_SUCCESS)
        return TDM_CL_FAIL("clCreateSubBuffer", err);
    ops->mem[i] = ops->owned[i];
    ops->offset[i] = 0;
    return TDM_OK;
}

static tdm_status enqueue_sgemm(opencl_context *ctx, const tdm_sgemm_args *g,
                                const column_major_gemm *t, const gemm_operands *ops)
{
    const CLBlastLayout layout = CLBlastLayoutColMajor;
    const size_t *at = ops->offset;
    size_t scratch = 0;
    CLBlastStatusCode code =
        CLBlastSGemmTempBufferSize(layout, t->ta, t->tb, t->m, t->n, t->k, at[0], t->lda, at[1],
                                   t->ldb, at[2], g->ldc, &ctx->queue, &scratch);
    if (code != CLBlastSuccess)
        return TDM_CL_FAIL("CLBlastSGemmTempBufferSize", code);
    if (scratch > 0)
        /* sized by CLBlast (copies of all three operands): the driver judges it */
        TDM_TRY(tdm_cl_ensure_scratch(ctx, &ctx->gemm_scratch, &ctx->gemm_scratch_size, scratch,
                                      "GEMM scratch", false));
    const cl_mem *mem = ops->mem;
    ctx->counts->launches++;
    cl_event marker = profile_marker(ctx), event, *timed = profile_event(ctx, &event);
    code = scratch > 0 ? CLBlastSgemmWithTempBuffer(layout, t->ta, t->tb, t->m, t->n, t->k,
                                                    g->alpha, mem[0], at[0], t->lda, mem[1], at[1],
                                                    t->ldb, g->beta, mem[2], at[2], g->ldc,
                                                    &ctx->queue, timed, ctx->gemm_scratch)
                       : CLBlastSgemm(layout, t->ta, t->tb, t->m, t->n, t->k, g->alpha, mem[0],
                                      at[0], t->lda, mem[1], at[1], t->ldb, g->beta, mem[2], at[2],
                                      g->ldc, &ctx->queue, timed);
    profile_add_span(ctx, PROFILE_GEMM, marker, code == CLBlastSuccess ? event : NULL);
    if (code != CLBlastSuccess)
        return TDM_FAIL(TDM_ERR_OPENCL, "CLBlastSgemm (%zu x %zu x %zu) on '%s' failed: %s", g->m,
                        g->n, g->k, ctx->info.device_name, tdm_cl_error_name(code));
    return TDM_OK;
}

static tdm_status opencl_sgemm(tdm_backend *backend, const tdm_sgemm_args *g)
{
    opencl_context *ctx = ctx_of(backend);
    /* C needs no zeroing when beta == 0: CLBlast's GEMM kernels do not read it
     * then (since 0.9), so NaN there does not leak in (test_parity checks). */
    const column_major_gemm t = column_major_of(g);
    const tdm_view views[3] = {t.a, t.b, g->c};
    /* tdm_sgemm passes no empty product, so each operand spans floats */
    const size_t floats[3] = {tdm_matrix_floats(tdm_sgemm_operand(g, 'B')),
                              tdm_matrix_floats(tdm_sgemm_operand(g, 'A')),
                              tdm_matrix_floats(tdm_sgemm_operand(g, 'C'))};
    gemm_operands ops = {0};
    tdm_status status = TDM_OK;
    for (int i = 0; i < 3 && status == TDM_OK; i++)
        status = place_operand(ctx, views[i], floats[i], &ops, i);
    if (status == TDM_OK)
        status = enqueue_sgemm(ctx, g, &t, &ops);
    release_operands(&ops); /* an enqueued GEMM holds its own references */
    return status;
}

static const struct tdm_backend_iface opencl_iface = {
    .version = TDM_BACKEND_IFACE_VERSION,
    .free = opencl_free,
    .synchronize = opencl_synchronize,
    .buffer_alloc = opencl_buffer_alloc,
    .buffer_free = opencl_buffer_free,
    .upload = opencl_upload,
    .download = opencl_download,
    .fill = opencl_fill,
    .copy = opencl_copy,
    .axpy = opencl_axpy,
    .scale = opencl_scale,
    .sgemm = opencl_sgemm,
    .elementwise = opencl_elementwise,
    .im2col = tdm_opencl_im2col,
    .col2im = tdm_opencl_col2im,
    .swap_axes = tdm_opencl_swap_axes,
    .transpose = tdm_opencl_transpose,
    .conv_dense_weight = tdm_opencl_conv_dense_weight,
    .conv_dense_weight_backward = tdm_opencl_conv_dense_weight_backward,
    .conv_col_product = tdm_opencl_conv_col_product,
    .conv_direct_forward = tdm_opencl_conv_direct_forward,
    .conv_direct_backward = tdm_opencl_conv_direct_backward,
    .conv_col_weight_gradient = tdm_opencl_conv_col_weight_gradient,
    .small_linear = tdm_opencl_small_linear,
    .small_linear_backward = tdm_opencl_small_linear_backward,
    .bias_add = tdm_opencl_bias_add,
    .bias_backward = tdm_opencl_bias_backward,
    .batchnorm_forward = tdm_opencl_batchnorm_forward,
    .batchnorm_backward = tdm_opencl_batchnorm_backward,
    .maxpool2d = tdm_opencl_maxpool2d,
    .maxpool2d_backward = tdm_opencl_maxpool2d_backward,
    .global_avgpool = tdm_opencl_global_avgpool,
    .global_avgpool_backward = tdm_opencl_global_avgpool_backward,
    .softmax_cross_entropy = tdm_opencl_softmax_cross_entropy,
    .sgd = tdm_opencl_sgd,
    .softmax_rows = tdm_opencl_softmax_rows,
    .bits_scores = tdm_opencl_bits_scores,
    .bits_sums = tdm_opencl_bits_sums,
};

static tdm_status create_kernels(opencl_context *ctx)
{
    for (int i = 0; i < KERNEL_COUNT; i++) {
        cl_int err = CL_SUCCESS;
        ctx->kernels[i] = clCreateKernel(ctx->program, kernel_names[i], &err);
        if (err != CL_SUCCESS)
            return TDM_FAIL(TDM_ERR_OPENCL, "clCreateKernel(%s) failed: %s", kernel_names[i],
                            tdm_cl_error_name(err));
    }
    return TDM_OK;
}

static size_t power_of_two_at_most(size_t n)
{
    size_t p = 1;
    while (p * 2 <= n)
        p *= 2;
    return p;
}

/* The most work-items a setting below may give a work-group. */
enum { MAX_GROUP_SETTING = 1 << 20 };

/* One of the settings the tests and tools/gpu-check.sh turn through the
 * environment (docs/devices.md): `fallback` when unset or empty, else a
 * whole number from `least` to `most`; anything else is an error naming
 * the variable, rather than a setting silently not taken. */
static tdm_status environment_setting(const char *name, size_t fallback, size_t least, size_t most,
                                      size_t *value)
{
    const char *text = getenv(name);
    *value = fallback;
    if (!text || !text[0])
        return TDM_OK;
    char *end = NULL;
    errno = 0;
    unsigned long long number = strtoull(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end || errno || number < least || number > most)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "opencl: %s must be a whole number from %zu to %zu, not '%.40s'", name,
                        least, most, text);
    *value = (size_t)number;
    return TDM_OK;
}

/* The device's limits on a work-group, and TANDEM_OPENCL_MAX_GROUP, a cap
 * that lets the tests act as a device with small limits. */
static tdm_status device_group_limit(opencl_context *ctx, size_t *limit)
{
    size_t max_group = 0, sizes[3] = {0};
    TDM_CL_TRY(clGetDeviceInfo(ctx->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof max_group,
                               &max_group, NULL));
    TDM_CL_TRY(
        clGetDeviceInfo(ctx->device, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof sizes, sizes, NULL));
    *limit = max_group < sizes[0] ? max_group : sizes[0];
    size_t capped = 0;
    TDM_TRY(environment_setting("TANDEM_OPENCL_MAX_GROUP", 0, 1, MAX_GROUP_SETTING, &capped));
    ctx->group_capped = capped > 0 && capped < *limit;
    if (ctx->group_capped)
        *limit = capped;
    ctx->device_group_limit = *limit;
    return TDM_OK;
}

/* The largest buffer: the device's CL_DEVICE_MAX_MEM_ALLOC_SIZE, at most
 * what the kernels' 32-bit indices reach, and TANDEM_OPENCL_MAX_BUFFER, a
 * cap that lets the tests act as a device of small buffers. */
static tdm_status set_buffer_limit(opencl_context *ctx)
{
    const unsigned long long device_limit = ctx->info.max_alloc_bytes;
    const size_t indexed = MAX_BUFFER_FLOATS * sizeof(float);
    ctx->max_buffer_bytes = device_limit < indexed ? (size_t)device_limit : indexed;
    ctx->buffer_limit = device_limit < indexed ? "its CL_DEVICE_MAX_MEM_ALLOC_SIZE"
                                               : "2^31 floats, what tandem's kernels index";
    size_t capped = 0;
    TDM_TRY(environment_setting("TANDEM_OPENCL_MAX_BUFFER", 0, 1, indexed, &capped));
    ctx->buffer_capped = capped > 0 && capped < ctx->max_buffer_bytes;
    if (ctx->buffer_capped) {
        ctx->max_buffer_bytes = capped;
        ctx->buffer_limit = "capped by TANDEM_OPENCL_MAX_BUFFER";
    }
    return TDM_OK;
}

/* The smallest CL_KERNEL_WORK_GROUP_SIZE of the built kernels that allow
 * fewer work-items than they are launched with: the reductions (built with
 * reqd_work_group_size) the reduction group, the others the group size. */
static tdm_status kernels_group_limit(const opencl_context *ctx, size_t *limit)
{
    for (int i = 0; i < KERNEL_COUNT; i++) {
        size_t size = 0, compiled[3] = {0};
        TDM_CL_TRY(clGetKernelWorkGroupInfo(ctx->kernels[i], ctx->device, CL_KERNEL_WORK_GROUP_SIZE,
                                            sizeof size, &size, NULL));
        TDM_CL_TRY(clGetKernelWorkGroupInfo(ctx->kernels[i], ctx->device,
                                            CL_KERNEL_COMPILE_WORK_GROUP_SIZE, sizeof compiled,
                                            compiled, NULL));
        size_t launched = compiled[0] ? compiled[0] : ctx->group_size;
        if (size < launched && size < *limit)
            *limit = size;
    }
    return TDM_OK;
}

/* The work-group of the per-channel reductions (batch norm, bias): one
 * work-item on a CPU device, which runs a work-group on one core anyway and
 * where PoCL makes a pass over the group per barrier (batch norm's training
 * pass 97-101 -> 50-58 us a launch with one); the group size on a GPU.
 * TANDEM_OPENCL_REDUCTION_GROUP=N sets another, at most the group size (the
 * tests run PoCL's reductions with 16 work-items this way). */
static tdm_status set_reduction_group(opencl_context *ctx)
{
    size_t fallback = ctx->info.is_gpu_or_accelerator ? ctx->group_size : 1, size = 0;
    TDM_TRY(environment_setting("TANDEM_OPENCL_REDUCTION_GROUP", fallback, 1, MAX_GROUP_SETTING,
                                &size));
    ctx->reduction_group = size < ctx->group_size ? size : ctx->group_size;
    return TDM_OK;
}

static void release_program(opencl_context *ctx)
{
    for (int i = 0; i < KERNEL_COUNT; i++)
        if (ctx->kernels[i])
            clReleaseKernel(ctx->kernels[i]);
    memset(ctx->kernels, 0, sizeof ctx->kernels);
    clReleaseProgram(ctx->program);
    ctx->program = NULL;
}

/* Builds the kernels for the largest power-of-two work-group, up to
 * PREFERRED_GROUP_SIZE, that the device and then every kernel allow (a
 * kernel that needs many registers may allow fewer work-items than the
 * device: then once more, smaller). */
static tdm_status build_for_limits(opencl_context *ctx)
{
    size_t limit = 0;
    TDM_TRY(device_group_limit(ctx, &limit));
    for (int attempt = 0; attempt < 2; attempt++) {
        ctx->group_size =
            power_of_two_at_most(limit < PREFERRED_GROUP_SIZE ? limit : PREFERRED_GROUP_SIZE);
        TDM_TRY(set_reduction_group(ctx));
        TDM_TRY(tdm_cl_build_program(ctx->context, ctx->device, &ctx->info, ctx->reduction_group,
                                     &ctx->program));
        TDM_TRY(create_kernels(ctx));
        size_t kernels_limit = SIZE_MAX;
        TDM_TRY(kernels_group_limit(ctx, &kernels_limit));
        if (kernels_limit == SIZE_MAX)
            return TDM_OK;
        limit = kernels_limit;
        release_program(ctx);
    }
    return TDM_FAIL(TDM_ERR_UNSUPPORTED,
                    "opencl: the kernels allow no work-group of %zu work-items on %s",
                    ctx->group_size, ctx->info.device_name);
}

static tdm_status open_device(opencl_context *ctx, size_t platform_index, size_t device_index)
{
    cl_platform_id platform = NULL;
    cl_int err = CL_SUCCESS;
    TDM_TRY(tdm_cl_find_device(platform_index, device_index, &platform, &ctx->device));
    TDM_TRY(tdm_cl_describe_device(platform, ctx->device, &ctx->info));
    ctx->info.platform_index = platform_index;
    ctx->info.device_index = device_index;
    cl_context_properties properties[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)platform, 0};
    ctx->context = clCreateContext(properties, 1, &ctx->device, NULL, NULL, &err);
    if (err != CL_SUCCESS)
        return TDM_CL_FAIL("clCreateContext", err);
    size_t profile = 0;
    TDM_TRY(environment_setting("TANDEM_OPENCL_PROFILE", 0, 0, 1, &profile));
    ctx->profiling = profile;
    ctx->queue = clCreateCommandQueue(ctx->context, ctx->device,
                                      ctx->profiling ? CL_QUEUE_PROFILING_ENABLE : 0, &err);
    if (err != CL_SUCCESS)
        return TDM_CL_FAIL("clCreateCommandQueue", err);
    TDM_TRY(build_for_limits(ctx));
    TDM_TRY(set_buffer_limit(ctx));
    cl_uint align_bits = 0;
    TDM_CL_TRY(clGetDeviceInfo(ctx->device, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof align_bits,
                               &align_bits, NULL));
    ctx->sub_buffer_align = align_bits >= 8 ? align_bits / 8 : 1;
    TDM_TRY(environment_setting("TANDEM_OPENCL_BITS_PARTS",
                                ctx->info.is_gpu_or_accelerator ? MAX_GROUP_SETTING : 1, 1,
                                MAX_GROUP_SETTING, &ctx->bits_parts));
    TDM_TRY(environment_setting("TANDEM_OPENCL_PLANE_GROUPS", MAX_PLANE_GROUPS, 1, MAX_PLANE_GROUPS,
                                &ctx->plane_groups));
    tdm_cl_apply_tuning(ctx->device, &ctx->info, ctx->tuning, sizeof ctx->tuning);
    return TDM_OK;
}

/* "opencl P:D: <device> (platform ..., driver ...)", then what differs from
 * a plain build: a capped work-group, small convs as direct kernels (a
 * GPU's plan), CLBlast's tuning. */
static void describe(tdm_backend *backend, const opencl_context *ctx)
{
    snprintf(backend->description, sizeof backend->description,
             "opencl %zu:%zu: %.128s (platform %.96s, driver %.48s)%s%s%s%s%.100s%s",
             ctx->info.platform_index, ctx->info.device_index, ctx->info.device_name,
             ctx->info.platform_name, ctx->info.driver_version,
             ctx->group_capped ? " [work-groups capped by TANDEM_OPENCL_MAX_GROUP]" : "",
             ctx->buffer_capped ? " [buffers capped by TANDEM_OPENCL_MAX_BUFFER]" : "",
             backend->direct_small_convs ? " [small convs as direct kernels]" : "",
             ctx->tuning[0] ? " [" : "", ctx->tuning, ctx->tuning[0] ? "]" : "");
}

/* Small convolutions as direct kernels where the reductions' work-groups
 * are wide (a GPU: there a GEMM of so few products costs more than one
 * kernel doing them); TANDEM_OPENCL_DIRECT_CONVS=0 or 1 decides instead
 * (tools/gpu-check.sh times both plans on a GPU). */
static tdm_status set_direct_convs(tdm_backend *backend, const opencl_context *ctx)
{
    size_t direct = 0;
    TDM_TRY(
        environment_setting("TANDEM_OPENCL_DIRECT_CONVS", ctx->reduction_group > 1, 0, 1, &direct));
    backend->direct_small_convs = direct;
    return TDM_OK;
}

/* Two work-groups of the device's largest size a compute unit on a GPU
 * (tdm_backend_parallel_rows); TANDEM_OPENCL_PARALLEL_ROWS=N sets N on any
 * device (the tests give PoCL a GPU's blocks so). */
static tdm_status set_parallel_rows(tdm_backend *backend, const opencl_context *ctx)
{
    size_t fill = ctx->info.is_gpu_or_accelerator
                      ? 2 * (size_t)ctx->info.compute_units * ctx->device_group_limit
                      : 0;
    return environment_setting("TANDEM_OPENCL_PARALLEL_ROWS", fill, 0, MAX_BUFFER_FLOATS,
                               &backend->parallel_rows);
}

tdm_status tdm_opencl_tune(tdm_backend *backend, const tdm_tune_options *options,
                           tdm_tune_report *report)
{
    if (strcmp(backend->name, "opencl") != 0)
        return TDM_FAIL(TDM_ERR_UNSUPPORTED,
                        "tune: %s is not an OpenCL device (CLBlast's GEMM is what is tuned)",
                        tdm_backend_description(backend));
    opencl_context *ctx = ctx_of(backend);
    TDM_TRY(tdm_cl_tune(backend, ctx->device, &ctx->info, options, report));
    tdm_cl_apply_tuning(ctx->device, &ctx->info, ctx->tuning, sizeof ctx->tuning);
    describe(backend, ctx);
    return TDM_OK;
}

tdm_status tdm_opencl_backend_create(size_t platform_index, size_t device_index, tdm_backend **out)
{
    *out = NULL;
    tdm_backend *backend = calloc(1, sizeof *backend);
    opencl_context *ctx = calloc(1, sizeof *ctx);
    if (!backend || !ctx) {
        free(backend);
        free(ctx);
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "opencl: out of host memory");
    }
    ctx->counts = &backend->counts;
    tdm_status status = open_device(ctx, platform_index, device_index);
    if (status == TDM_OK)
        status = tdm_backend_init(backend, &opencl_iface, "opencl");
    if (status == TDM_OK)
        status = set_direct_convs(backend, ctx);
    if (status == TDM_OK)
        status = set_parallel_rows(backend, ctx);
    if (status != TDM_OK) {
        release_context(ctx);
        free(backend);
        return status;
    }
    backend->context = ctx;
    backend->max_buffer_bytes = ctx->max_buffer_bytes;
    backend->threads = tdm_cpu_default_threads(); /* for host-side passes over its data */
    backend->gemm_prefers_tn = true;              /* CLBlast's Xgemm (GEMMK=0, column-major) */
    describe(backend, ctx);
    *out = backend;
    return TDM_OK;
}

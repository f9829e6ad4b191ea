/* The plain-C backend: host memory, loops for elementwise ops, and CBLAS
 * (OpenBLAS, with its own thread pool) or the portable C GEMM. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend_impl.h"
#include "backend/cpu/cpu_layers.h"
#include "backend/cpu/gemm_portable.h"
#include "core/error.h"

#ifdef TANDEM_HAVE_CBLAS
#include <cblas.h>
#endif

static void cpu_free(tdm_backend *backend)
{
    free(backend);
}

static bool cpu_supports_op(const tdm_backend *backend, tdm_op op)
{
    (void)backend;
    return (unsigned)op < TDM_OP_COUNT;
}

static tdm_status cpu_synchronize(tdm_backend *backend)
{
    (void)backend;
    return TDM_OK;
}

static tdm_status cpu_buffer_alloc(tdm_backend *backend, tdm_buffer *buffer)
{
    (void)backend;
    buffer->handle = malloc(buffer->size);
    if (!buffer->handle)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "cpu: cannot allocate %zu bytes", buffer->size);
    return TDM_OK;
}

static void cpu_buffer_free(tdm_backend *backend, tdm_buffer *buffer)
{
    (void)backend;
    free(buffer->handle);
}

static tdm_status cpu_upload(tdm_backend *backend, tdm_buffer *dst, size_t offset, const void *src,
                             size_t bytes)
{
    (void)backend;
    memcpy((char *)dst->handle + offset, src, bytes);
    return TDM_OK;
}

static tdm_status cpu_download(tdm_backend *backend, const tdm_buffer *src, size_t offset,
                               void *dst, size_t bytes)
{
    (void)backend;
    memcpy(dst, (const char *)src->handle + offset, bytes);
    return TDM_OK;
}

static tdm_status cpu_fill(tdm_backend *backend, tdm_view x, size_t count, float value)
{
    (void)backend;
    float *data = tdm_view_host_floats(x);
    for (size_t i = 0; i < count; i++)
        data[i] = value;
    return TDM_OK;
}

static tdm_status cpu_copy(tdm_backend *backend, tdm_view src, tdm_view dst, size_t count)
{
    (void)backend;
    memcpy(tdm_view_host_floats(dst), tdm_view_host_floats(src), count * sizeof(float));
    return TDM_OK;
}

static tdm_status cpu_axpy(tdm_backend *backend, size_t count, float alpha, tdm_view x, tdm_view y)
{
    (void)backend;
    const float *xs = tdm_view_host_floats(x);
    float *ys = tdm_view_host_floats(y);
    for (size_t i = 0; i < count; i++)
        ys[i] += alpha * xs[i];
    return TDM_OK;
}

static tdm_status cpu_scale(tdm_backend *backend, size_t count, float alpha, tdm_view x)
{
    (void)backend;
    float *xs = tdm_view_host_floats(x);
    for (size_t i = 0; i < count; i++)
        xs[i] *= alpha;
    return TDM_OK;
}

/* One loop per op, so each one vectorises. */
static tdm_status cpu_elementwise(tdm_backend *backend, tdm_op op, size_t count, tdm_view a,
                                  tdm_view b, tdm_view out)
{
    (void)backend;
    const float *x = tdm_view_host_floats(a);
    const float *y = b.buffer ? tdm_view_host_floats(b) : NULL;
    float *z = tdm_view_host_floats(out);
    switch (op) {
    case TDM_OP_ADD:
        for (size_t i = 0; i < count; i++)
            z[i] = x[i] + y[i];
        break;
    case TDM_OP_RELU: /* NaN is not < 0: it stays NaN */
        for (size_t i = 0; i < count; i++)
            z[i] = x[i] < 0.0f ? 0.0f : x[i];
        break;
    case TDM_OP_RELU_BACKWARD:
        for (size_t i = 0; i < count; i++) {
            float passed = y[i]; /* loaded unconditionally, so the loop vectorises */
            z[i] = x[i] > 0.0f ? passed : 0.0f;
        }
        break;
    case TDM_OP_SIGMOID:
        for (size_t i = 0; i < count; i++)
            z[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    default: /* TDM_OP_SIGMOID_BACKWARD: supports_op lets only these through */
        for (size_t i = 0; i < count; i++)
            z[i] = y[i] * (x[i] * (1.0f - x[i]));
        break;
    }
    return TDM_OK;
}

#ifdef TANDEM_HAVE_CBLAS
static tdm_status cpu_sgemm(tdm_backend *backend, const tdm_sgemm_args *args)
{
    (void)backend;
    /* CBLAS takes int dimensions. */
    const size_t int_max = 2147483647;
    if (args->m > int_max || args->n > int_max || args->k > int_max || args->lda > int_max ||
        args->ldb > int_max || args->ldc > int_max)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "sgemm: a dimension exceeds CBLAS's int range");
    cblas_sgemm(CblasRowMajor, args->trans_a == TDM_TRANS ? CblasTrans : CblasNoTrans,
                args->trans_b == TDM_TRANS ? CblasTrans : CblasNoTrans, (int)args->m, (int)args->n,
                (int)args->k, args->alpha, tdm_view_host_floats(args->a), (int)args->lda,
                tdm_view_host_floats(args->b), (int)args->ldb, args->beta,
                tdm_view_host_floats(args->c), (int)args->ldc);
    return TDM_OK;
}
#define CPU_GEMM_NAME "OpenBLAS CBLAS"
#else
static tdm_status cpu_sgemm(tdm_backend *backend, const tdm_sgemm_args *args)
{
    (void)backend;
    return tdm_cpu_sgemm_portable(args->trans_a, args->trans_b, args->m, args->n, args->k,
                                  args->alpha, tdm_view_host_floats(args->a), args->lda,
                                  tdm_view_host_floats(args->b), args->ldb, args->beta,
                                  tdm_view_host_floats(args->c), args->ldc);
}
#define CPU_GEMM_NAME "portable C"
#endif

static const struct tdm_backend_iface cpu_iface = {
    .version = TDM_BACKEND_IFACE_VERSION,
    .free = cpu_free,
    .supports_op = cpu_supports_op,
    .synchronize = cpu_synchronize,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_free = cpu_buffer_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .fill = cpu_fill,
    .copy = cpu_copy,
    .axpy = cpu_axpy,
    .scale = cpu_scale,
    .sgemm = cpu_sgemm,
    .elementwise = cpu_elementwise,
    .im2col = tdm_cpu_im2col,
    .col2im = tdm_cpu_col2im,
    .swap_axes = tdm_cpu_swap_axes,
    .conv_dense_weight = tdm_cpu_conv_dense_weight,
    .conv_dense_weight_backward = tdm_cpu_conv_dense_weight_backward,
    .bias_add = tdm_cpu_bias_add,
    .bias_backward = tdm_cpu_bias_backward,
    .batchnorm_train = tdm_cpu_batchnorm_train,
    .batchnorm_eval = tdm_cpu_batchnorm_eval,
    .batchnorm_backward = tdm_cpu_batchnorm_backward,
    .maxpool2d = tdm_cpu_maxpool2d,
    .maxpool2d_backward = tdm_cpu_maxpool2d_backward,
    .global_avgpool = tdm_cpu_global_avgpool,
    .global_avgpool_backward = tdm_cpu_global_avgpool_backward,
    .softmax_cross_entropy = tdm_cpu_softmax_cross_entropy,
    .sgd = tdm_cpu_sgd,
    .softmax_rows = tdm_cpu_softmax_rows,
};

tdm_status tdm_cpu_backend_create(tdm_backend **out)
{
    *out = NULL;
    tdm_backend *backend = calloc(1, sizeof *backend);
    if (!backend)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "cpu: out of host memory");
    backend->iface = &cpu_iface;
    backend->name = "cpu";
    backend->host_memory = true;
    snprintf(backend->description, sizeof backend->description, "cpu backend (plain C, GEMM: %s)",
             CPU_GEMM_NAME);
    *out = backend;
    return TDM_OK;
}

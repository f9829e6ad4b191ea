/* The plain-C backend: host memory, OpenMP loops, and oneDNN, OpenBLAS or the
 * portable C GEMM (cpu_gemm.c). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend_impl.h"
#include "backend/cpu/cpu_layers.h"
#include "backend/cpu/cpu_gemm.h"
#include "core/error.h"

static void cpu_free(tdm_backend *backend)
{
    free(backend);
}

static tdm_status cpu_synchronize(tdm_backend *backend)
{
    (void)backend;
    return TDM_OK;
}

enum { CPU_BUFFER_ALIGNMENT = 64 };

static tdm_status cpu_buffer_alloc(tdm_backend *backend, tdm_buffer *buffer)
{
    (void)backend;
    /* Cache-line aligned, as AVX-512 loads in the GEMM want; aligned_alloc
     * needs a size that is a multiple of the alignment. */
    size_t rounded = buffer->size + (CPU_BUFFER_ALIGNMENT - 1);
    buffer->handle =
        rounded < buffer->size
            ? NULL
            : aligned_alloc(CPU_BUFFER_ALIGNMENT, rounded - rounded % CPU_BUFFER_ALIGNMENT);
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
    float *data = tdm_view_host_floats(x);
    int team = tdm_cpu_team(backend, count);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t i = 0; i < count; i++)
        data[i] = value;
    return TDM_OK;
}

static tdm_status cpu_copy(tdm_backend *backend, tdm_view src, tdm_view dst, size_t count)
{
    const float *in = tdm_view_host_floats(src);
    float *out = tdm_view_host_floats(dst);
    int team = tdm_cpu_team(backend, count);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t i = 0; i < count; i++)
        out[i] = in[i];
    return TDM_OK;
}

static tdm_status cpu_axpy(tdm_backend *backend, size_t count, float alpha, tdm_view x, tdm_view y)
{
    const float *xs = tdm_view_host_floats(x);
    float *ys = tdm_view_host_floats(y);
    int team = tdm_cpu_team(backend, count);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t i = 0; i < count; i++)
        ys[i] += alpha * xs[i];
    return TDM_OK;
}

static tdm_status cpu_scale(tdm_backend *backend, size_t count, float alpha, tdm_view x)
{
    float *xs = tdm_view_host_floats(x);
    int team = tdm_cpu_team(backend, count);
#pragma omp parallel for schedule(static) num_threads(team)
    for (size_t i = 0; i < count; i++)
        xs[i] *= alpha;
    return TDM_OK;
}

/* One loop per op, so each one vectorises. */
static tdm_status cpu_elementwise(tdm_backend *backend, tdm_elementwise_op op, size_t count,
                                  float scalar, tdm_view a, tdm_view b, tdm_view out)
{
    const float *x = tdm_view_host_floats(a);
    const float *y = b.buffer ? tdm_view_host_floats(b) : NULL;
    float *z = tdm_view_host_floats(out);
    int team = tdm_cpu_team(backend, count);
    switch (op) {
    case TDM_ELEMENTWISE_ADD:
#pragma omp parallel for schedule(static) num_threads(team)
        for (size_t i = 0; i < count; i++)
            z[i] = x[i] + y[i];
        break;
    case TDM_ELEMENTWISE_ADD_RELU:
#pragma omp parallel for schedule(static) num_threads(team)
        for (size_t i = 0; i < count; i++) {
            float sum = x[i] + y[i];
            z[i] = sum < 0.0f ? 0.0f : sum;
        }
        break;
    case TDM_ELEMENTWISE_RELU: /* NaN is not < 0: it stays NaN */
#pragma omp parallel for schedule(static) num_threads(team)
        for (size_t i = 0; i < count; i++)
            z[i] = x[i] < 0.0f ? 0.0f : x[i];
        break;
    case TDM_ELEMENTWISE_RELU_BACKWARD:
#pragma omp parallel for schedule(static) num_threads(team)
        for (size_t i = 0; i < count; i++) {
            float passed = y[i]; /* loaded unconditionally, so the loop vectorises */
            z[i] = x[i] > 0.0f ? passed : 0.0f;
        }
        break;
    case TDM_ELEMENTWISE_SIGMOID:
#pragma omp parallel for schedule(static) num_threads(team)
        for (size_t i = 0; i < count; i++)
            z[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    case TDM_ELEMENTWISE_LEAKY_RELU:
#pragma omp parallel for schedule(static) num_threads(team)
        for (size_t i = 0; i < count; i++)
            z[i] = x[i] > 0.0f ? x[i] : x[i] * scalar;
        break;
    case TDM_ELEMENTWISE_LEAKY_RELU_BACKWARD:
#pragma omp parallel for schedule(static) num_threads(team)
        for (size_t i = 0; i < count; i++) {
            float passed = y[i]; /* loaded unconditionally, so the loop vectorises */
            z[i] = x[i] > 0.0f ? passed : passed * scalar;
        }
        break;
    case TDM_ELEMENTWISE_SIGMOID_BACKWARD:
#pragma omp parallel for schedule(static) num_threads(team)
        for (size_t i = 0; i < count; i++)
            z[i] = y[i] * (x[i] * (1.0f - x[i]));
        break;
    }
    return TDM_OK;
}

static tdm_status cpu_sgemm(tdm_backend *backend, const tdm_sgemm_args *args)
{
    return tdm_cpu_gemm(backend->threads, args);
}

static const struct tdm_backend_iface cpu_iface = {
    .version = TDM_BACKEND_IFACE_VERSION,
    .free = cpu_free,
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
    .transpose = tdm_cpu_transpose,
    .conv_dense_weight = tdm_cpu_conv_dense_weight,
    .conv_dense_weight_backward = tdm_cpu_conv_dense_weight_backward,
    .conv_col_product = tdm_cpu_conv_col_product,
    .conv_direct_forward = tdm_cpu_conv_direct_forward,
    .conv_direct_backward = tdm_cpu_conv_direct_backward,
    .conv_col_weight_gradient = tdm_cpu_conv_col_weight_gradient,
    .small_linear = tdm_cpu_small_linear,
    .small_linear_backward = tdm_cpu_small_linear_backward,
    .bias_add = tdm_cpu_bias_add,
    .bias_backward = tdm_cpu_bias_backward,
    .batchnorm_forward = tdm_cpu_batchnorm_forward,
    .batchnorm_backward = tdm_cpu_batchnorm_backward,
    .maxpool2d = tdm_cpu_maxpool2d,
    .maxpool2d_backward = tdm_cpu_maxpool2d_backward,
    .global_avgpool = tdm_cpu_global_avgpool,
    .global_avgpool_backward = tdm_cpu_global_avgpool_backward,
    .softmax_cross_entropy = tdm_cpu_softmax_cross_entropy,
    .sgd = tdm_cpu_sgd,
    .softmax_rows = tdm_cpu_softmax_rows,
    .bits_scores = tdm_cpu_bits_scores,
    .bits_sums = tdm_cpu_bits_sums,
};

size_t tdm_cpu_default_threads(void)
{
    int procs = omp_get_num_procs(); /* libgomp counts the CPU affinity mask */
    return procs > 0 ? (size_t)procs : 1;
}

tdm_status tdm_cpu_backend_create_threads(size_t threads, tdm_backend **out)
{
    *out = NULL;
    if (threads > TDM_CPU_MAX_THREADS)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "cpu: %zu threads is more than the %d allowed",
                        threads, TDM_CPU_MAX_THREADS);
    tdm_backend *backend = calloc(1, sizeof *backend);
    if (!backend)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "cpu: out of host memory");
    tdm_status status = tdm_backend_init(backend, &cpu_iface, "cpu");
    if (status != TDM_OK) {
        free(backend);
        return status;
    }
    backend->host_memory = true;
    backend->threads = threads ? threads : tdm_cpu_default_threads();
    char gemm[256];
    tdm_cpu_gemm_describe(gemm, sizeof gemm);
    snprintf(backend->description, sizeof backend->description,
             "cpu backend (GEMM: %s; %zu thread%s)", gemm, backend->threads,
             backend->threads == 1 ? "" : "s");
    *out = backend;
    return TDM_OK;
}

tdm_status tdm_cpu_backend_create(tdm_backend **out)
{
    return tdm_cpu_backend_create_threads(0, out);
}

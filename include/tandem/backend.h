/* The compute backend seam: buffers on a device and the ops that run on them.
 *
 * A tdm_backend is one device (the plain-C `cpu` backend, or one OpenCL
 * device). Layers, models and EM are written against these calls only.
 * Element offsets and leading dimensions are counted in floats; ops are
 * asynchronous on devices with queues: tdm_backend_synchronize() or a
 * download waits for them. */
#ifndef TANDEM_BACKEND_H
#define TANDEM_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "tandem/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tdm_backend tdm_backend;
typedef struct tdm_buffer tdm_buffer;

/* The ops a backend may implement (one row each in tandem/ops.def);
 * tdm_backend_supports_op() asks. */
typedef enum tdm_op {
#define TDM_OP(id, name, entry) TDM_OP_##id,
#define TDM_ELEMENTWISE(id, name, operands) TDM_OP_##id,
#include "tandem/ops.def"
#undef TDM_OP
#undef TDM_ELEMENTWISE
    TDM_OP_COUNT
} tdm_op;

const char *tdm_op_name(tdm_op op);

typedef enum tdm_transpose { TDM_NO_TRANS = 0, TDM_TRANS = 1 } tdm_transpose;

/* A float array inside a buffer: the view every op reads or writes. */
typedef struct tdm_view {
    tdm_buffer *buffer;
    size_t offset; /* in floats */
} tdm_view;

/* Row-major C = alpha * op(A) * op(B) + beta * C, with op(A) m x k and
 * op(B) k x n. A stored untransposed is m x k with lda >= k; transposed it
 * is k x m with lda >= m (likewise B). With beta == 0, C is not read, so
 * NaN in an uninitialised C does not propagate (the BLAS rule). */
typedef struct tdm_sgemm_args {
    tdm_transpose trans_a, trans_b;
    size_t m, n, k;
    float alpha;
    tdm_view a;
    size_t lda;
    tdm_view b;
    size_t ldb;
    float beta;
    tdm_view c;
    size_t ldc;
} tdm_sgemm_args;

/* C = op(A) op(B) + beta C: the arguments of tdm_sgemm with alpha = 1. */
tdm_sgemm_args tdm_gemm_args(tdm_transpose trans_a, tdm_transpose trans_b, size_t m, size_t n,
                             size_t k, tdm_view a, size_t lda, tdm_view b, size_t ldb, float beta,
                             tdm_view c, size_t ldc);

/* --- the backend --- */

const char *tdm_backend_name(const tdm_backend *backend); /* "cpu" or "opencl" */
/* One line: device name, platform and driver version. */
const char *tdm_backend_description(const tdm_backend *backend);
bool tdm_backend_supports_op(const tdm_backend *backend, tdm_op op);
/* True when buffers live in host memory (the cpu backend): uploading is a
 * copy in RAM, and data read once is best streamed through the caches. */
bool tdm_backend_uses_host_memory(const tdm_backend *backend);
/* The host threads the backend runs its loops on (the cpu backend's thread
 * count), which host-side passes over its data may use too (>= 1). */
size_t tdm_backend_host_threads(const tdm_backend *backend);
/* The largest buffer tdm_buffer_alloc makes on this backend, in bytes: an
 * OpenCL device's CL_DEVICE_MAX_MEM_ALLOC_SIZE (at most the 8 GiB its
 * kernels index), SIZE_MAX on the cpu backend. A larger request fails with
 * TDM_ERR_OUT_OF_MEMORY and a message naming the limit; EM keeps its data on
 * a device only where it fits one buffer. */
size_t tdm_backend_max_buffer_bytes(const tdm_backend *backend);
/* The rows a kernel of a work-item or two a row (EM's bits_scores and
 * bits_sums) takes to keep every compute unit busy: on an OpenCL GPU two
 * work-groups of the device's largest size a compute unit (270336 on an
 * H100), so that EM's blocks fill it; 0 on the cpu backend and OpenCL CPU
 * devices, whose cores a few thousand rows keep busy. */
size_t tdm_backend_parallel_rows(const tdm_backend *backend);
tdm_status tdm_backend_synchronize(tdm_backend *backend);
void tdm_backend_free(tdm_backend *backend); /* NULL is allowed */

/* What a backend has asked of its device so far: kernel launches (each
 * OpenCL kernel tandem enqueues, each fill and copy of a buffer; a CLBlast
 * GEMM counts once) and waits for
 * the device (blocking reads, synchronize). The cpu backend launches no
 * kernels and never waits: both stay 0. */
typedef struct tdm_backend_counts {
    size_t launches, waits;
} tdm_backend_counts;
tdm_backend_counts tdm_backend_get_counts(const tdm_backend *backend);

/* The most threads a cpu backend takes: more than any machine tandem runs on
 * has cores (a typo guard). */
enum { TDM_CPU_MAX_THREADS = 1024 };

/* The plain-C backend: its loops and its GEMM (oneDNN, OpenBLAS or the
 * portable C GEMM, chosen at build time by TANDEM_CPU_GEMM) run on `threads`
 * OpenMP threads; 0 means tdm_cpu_default_threads(). The same thread count
 * gives the same bits; docs/devices.md says which results depend on it. */
tdm_status tdm_cpu_backend_create_threads(size_t threads, tdm_backend **out);
/* tdm_cpu_backend_create_threads(0, out) */
tdm_status tdm_cpu_backend_create(tdm_backend **out);
/* The cores this process may run on (its CPU affinity mask). */
size_t tdm_cpu_default_threads(void);

/* One OpenCL device, by platform and device index as clGetPlatformIDs and
 * clGetDeviceIDs(CL_DEVICE_TYPE_ALL) order them. */
tdm_status tdm_opencl_backend_create(size_t platform_index, size_t device_index, tdm_backend **out);

/* --- buffers --- */

tdm_status tdm_buffer_alloc(tdm_backend *backend, size_t bytes, tdm_buffer **out);
void tdm_buffer_free(tdm_buffer *buffer);         /* NULL is allowed */
size_t tdm_buffer_size(const tdm_buffer *buffer); /* in bytes */

/* Blocking copies between host memory and a buffer; offsets in bytes. */
tdm_status tdm_buffer_upload(tdm_buffer *dst, size_t dst_offset, const void *src, size_t bytes);
tdm_status tdm_buffer_download(const tdm_buffer *src, size_t src_offset, void *dst, size_t bytes);

/* --- ops (counts in floats) --- */

/* x[0..count) = value */
tdm_status tdm_fill(tdm_backend *backend, tdm_view x, size_t count, float value);
/* dst[0..count) = src[0..count); the ranges must not overlap */
tdm_status tdm_copy(tdm_backend *backend, tdm_view src, tdm_view dst, size_t count);
/* dst[b][c][r] = src[b][r][c]: each of `batch` rows x cols matrices
 * transposed; the ranges must not overlap */
tdm_status tdm_matrix_transpose(tdm_backend *backend, size_t batch, size_t rows, size_t cols,
                                tdm_view src, tdm_view dst);
/* y += alpha * x */
tdm_status tdm_axpy(tdm_backend *backend, size_t count, float alpha, tdm_view x, tdm_view y);
/* x *= alpha */
tdm_status tdm_scale(tdm_backend *backend, size_t count, float alpha, tdm_view x);
tdm_status tdm_sgemm(tdm_backend *backend, const tdm_sgemm_args *args);

/* Elementwise ops on count floats. An output may be the very same range as
 * an input (in place), but must not partly overlap one. */

/* z = x + y (the residual connection) */
tdm_status tdm_add(tdm_backend *backend, size_t count, tdm_view x, tdm_view y, tdm_view z);
/* z = max(x + y, 0): tdm_add then tdm_relu in one launch */
tdm_status tdm_add_relu(tdm_backend *backend, size_t count, tdm_view x, tdm_view y, tdm_view z);
/* y = max(x, 0); NaN stays NaN, as in torch.relu */
tdm_status tdm_relu(tdm_backend *backend, size_t count, tdm_view x, tdm_view y);
/* dx = dy where x > 0, else 0 (x: the forward input) */
tdm_status tdm_relu_backward(tdm_backend *backend, size_t count, tdm_view x, tdm_view dy,
                             tdm_view dx);
/* y = 1 / (1 + exp(-x)) */
tdm_status tdm_sigmoid(tdm_backend *backend, size_t count, tdm_view x, tdm_view y);
/* dx = dy * y * (1 - y) (y: the forward output) */
tdm_status tdm_sigmoid_backward(tdm_backend *backend, size_t count, tdm_view y, tdm_view dy,
                                tdm_view dx);

/* y = x where x > 0, else slope * x (torch.nn.functional.leaky_relu); NaN
 * stays NaN; slope must be finite. */
tdm_status tdm_leaky_relu(tdm_backend *backend, size_t count, float slope, tdm_view x, tdm_view y);
/* dx = dy where x > 0, else slope * dy (x: the forward input). */
tdm_status tdm_leaky_relu_backward(tdm_backend *backend, size_t count, float slope, tdm_view x,
                                   tdm_view dy, tdm_view dx);

/* For each row r of the rows x cols matrix x: lse[r] = log(sum_j exp(x[r][j]))
 * (with the row maximum subtracted first, so nothing overflows), then, in
 * place, x[r][j] = exp(x[r][j] - lse[r]): the softmax of the row. */
tdm_status tdm_softmax_rows(tdm_backend *backend, size_t rows, size_t cols, tdm_view x,
                            tdm_view lse);

/* --- EM on bit-packed rows (tandem/em.h) ---
 * rows x cols binary values, row_words 64-bit words a row: value c of row r is
 * bit c % 64 of word r * row_words + c / 64 (the layout of tdm_binary_data).
 * A view of such words counts its offset in floats, two per word, and must
 * start on a word. The values go in groups of TDM_BITS_GROUP, a byte: group g
 * holds columns 8g .. 8g + 7, and its pattern is those values as a number
 * (column 8g in bit 0, columns past cols read as 0). */
enum { TDM_BITS_GROUP = 8, TDM_BITS_PATTERNS = 256 };

typedef struct tdm_bits_shape {
    size_t rows, cols, row_words;
    size_t components; /* K */
} tdm_bits_shape;

/* (cols + 7) / 8 */
size_t tdm_bits_groups(const tdm_bits_shape *shape);
/* The 64-bit words of a row of cols values: (cols + 63) / 64. */
static inline size_t tdm_bits_row_words(size_t cols)
{
    return cols / 64 + (cols % 64 != 0);
}

/* scores[r][k] = bias[k] + the sum over groups g, in order, of
 * table[(g * 256 + pattern(r, g)) * K + k]: X W^T + b by table lookup, when
 * table[g][p][k] is the sum of W[k][8g + j] over the bits j set in p. */
tdm_status tdm_bits_scores(tdm_backend *backend, const tdm_bits_shape *shape, tdm_view bits,
                           tdm_view table, tdm_view bias, tdm_view scores);
/* sums[k][c] = the sum over rows r of weights[r][k] * value(r, c): W^T X for
 * the weights (rows x K) and the bits; then, at sums + K * cols, the totals
 * sums[K * cols + k] = the sum over rows of weights[r][k] (W^T 1). Float sums
 * in an order each backend fixes (independent of its thread count). */
tdm_status tdm_bits_sums(tdm_backend *backend, const tdm_bits_shape *shape, tdm_view bits,
                         tdm_view weights, tdm_view sums);

#ifdef __cplusplus
}
#endif

#endif

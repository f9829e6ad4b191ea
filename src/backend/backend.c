/* The generic layer: argument checks, then dispatch through the iface table. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "backend/backend_impl.h"
#include "core/error.h"

const char *tdm_op_name(tdm_op op)
{
    static const char *const names[TDM_OP_COUNT] = {
#define TDM_OP(id, name, entry) [TDM_OP_##id] = name,
#define TDM_ELEMENTWISE(id, name, operands) [TDM_OP_##id] = name,
#include "tandem/ops.def"
#undef TDM_OP
#undef TDM_ELEMENTWISE
    };
    return (unsigned)op < TDM_OP_COUNT ? names[op] : "unknown op";
}

/* The public op and the operand count of each elementwise op. */
static const struct {
    tdm_op op;
    int operands;
} elementwise_ops[TDM_ELEMENTWISE_COUNT] = {
#define TDM_OP(id, name, entry)
#define TDM_ELEMENTWISE(id, name, operands) [TDM_ELEMENTWISE_##id] = {TDM_OP_##id, operands},
#include "tandem/ops.def"
#undef TDM_OP
#undef TDM_ELEMENTWISE
};

tdm_status tdm_backend_init(tdm_backend *backend, const struct tdm_backend_iface *iface,
                            const char *name)
{
    if (iface->version != TDM_BACKEND_IFACE_VERSION)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "backend '%s' was built for interface version %d, this library has %d",
                        name, iface->version, TDM_BACKEND_IFACE_VERSION);
    backend->iface = iface;
    backend->name = name;
    return TDM_OK;
}

const char *tdm_backend_name(const tdm_backend *backend)
{
    return backend->name;
}

tdm_backend_counts tdm_backend_get_counts(const tdm_backend *backend)
{
    return backend->counts;
}

const char *tdm_backend_description(const tdm_backend *backend)
{
    return backend->description;
}

/* An op is supported when the backend's table has its entry. */
bool tdm_backend_supports_op(const tdm_backend *backend, tdm_op op)
{
    const struct tdm_backend_iface *t = backend->iface;
    switch (op) {
        /* clang-format off */
#define TDM_OP(id, name, entry) case TDM_OP_##id: return t->entry != NULL;
#define TDM_ELEMENTWISE(id, name, operands) case TDM_OP_##id: return t->elementwise != NULL;
#include "tandem/ops.def"
#undef TDM_OP
#undef TDM_ELEMENTWISE
        /* clang-format on */
    case TDM_OP_COUNT: return false;
    }
    return false; /* a value outside the enum */
}

bool tdm_backend_uses_host_memory(const tdm_backend *backend)
{
    return backend->host_memory;
}

size_t tdm_backend_host_threads(const tdm_backend *backend)
{
    return backend->threads ? backend->threads : 1;
}

size_t tdm_backend_max_buffer_bytes(const tdm_backend *backend)
{
    return backend->max_buffer_bytes ? backend->max_buffer_bytes : SIZE_MAX;
}

size_t tdm_backend_parallel_rows(const tdm_backend *backend)
{
    return backend->parallel_rows;
}

tdm_status tdm_backend_synchronize(tdm_backend *backend)
{
    return backend->iface->synchronize(backend);
}

void tdm_backend_free(tdm_backend *backend)
{
    if (!backend)
        return;
    for (int slot = 0; slot < TDM_SCRATCH_SLOTS; slot++)
        tdm_buffer_free(backend->scratch[slot]);
    backend->iface->free(backend);
}

tdm_status tdm_buffer_alloc(tdm_backend *backend, size_t bytes, tdm_buffer **out)
{
    *out = NULL;
    if (bytes == 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "tdm_buffer_alloc: size must be > 0 bytes");
    tdm_buffer *buffer = calloc(1, sizeof *buffer);
    if (!buffer)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "tdm_buffer_alloc: out of host memory");
    buffer->backend = backend;
    buffer->size = bytes;
    tdm_status status = backend->iface->buffer_alloc(backend, buffer);
    if (status != TDM_OK) {
        free(buffer);
        return status;
    }
    *out = buffer;
    return TDM_OK;
}

void tdm_buffer_free(tdm_buffer *buffer)
{
    if (!buffer)
        return;
    buffer->backend->iface->buffer_free(buffer->backend, buffer);
    free(buffer);
}

size_t tdm_buffer_size(const tdm_buffer *buffer)
{
    return buffer->size;
}

static tdm_status check_byte_range(const tdm_buffer *buffer, size_t offset, size_t bytes,
                                   const char *caller)
{
    if (offset > buffer->size || bytes > buffer->size - offset)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "%s: bytes [%zu, %zu+%zu) lie outside the %zu-byte buffer", caller, offset,
                        offset, bytes, buffer->size);
    return TDM_OK;
}

tdm_status tdm_buffer_upload(tdm_buffer *dst, size_t dst_offset, const void *src, size_t bytes)
{
    TDM_TRY(check_byte_range(dst, dst_offset, bytes, "tdm_buffer_upload"));
    if (bytes == 0)
        return TDM_OK;
    return dst->backend->iface->upload(dst->backend, dst, dst_offset, src, bytes);
}

tdm_status tdm_buffer_download(const tdm_buffer *src, size_t src_offset, void *dst, size_t bytes)
{
    TDM_TRY(check_byte_range(src, src_offset, bytes, "tdm_buffer_download"));
    if (bytes == 0)
        return TDM_OK;
    return src->backend->iface->download(src->backend, src, src_offset, dst, bytes);
}

tdm_status tdm_check_supported(const tdm_backend *backend, tdm_op op)
{
    if (!tdm_backend_supports_op(backend, op))
        return TDM_FAIL(TDM_ERR_UNSUPPORTED, "op '%s' is not supported by backend '%s'",
                        tdm_op_name(op), backend->name);
    return TDM_OK;
}

tdm_status tdm_check_view(const tdm_backend *backend, tdm_view view, size_t count, const char *op,
                          const char *operand)
{
    if (!view.buffer)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "%s: operand %s has no buffer", op, operand);
    if (view.buffer->backend != backend)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "%s: operand %s lives on backend '%s', not on '%s'", op, operand,
                        view.buffer->backend->name, backend->name);
    size_t floats = view.buffer->size / sizeof(float);
    if (view.offset > floats || count > floats - view.offset)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "%s: operand %s needs floats [%zu, %zu+%zu) but its buffer holds %zu", op,
                        operand, view.offset, view.offset, count, floats);
    return TDM_OK;
}

tdm_status tdm_fill(tdm_backend *backend, tdm_view x, size_t count, float value)
{
    TDM_TRY(tdm_check_supported(backend, TDM_OP_FILL));
    TDM_TRY(tdm_check_view(backend, x, count, "fill", "x"));
    return count ? backend->iface->fill(backend, x, count, value) : TDM_OK;
}

tdm_status tdm_check_small_linear(const char *op, const tdm_linear_shape *s)
{
    if (s->out_features && s->in_features > TDM_SMALL_LINEAR_MAX_WEIGHTS / s->out_features)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "%s: %zu x %zu weights, at most %d", op,
                        s->out_features, s->in_features, (int)TDM_SMALL_LINEAR_MAX_WEIGHTS);
    return TDM_OK;
}

bool tdm_views_overlap(tdm_view a, size_t a_count, tdm_view b, size_t b_count)
{
    return a.buffer == b.buffer && a.offset < b.offset + b_count && b.offset < a.offset + a_count;
}

tdm_status tdm_check_output(const tdm_backend *backend, const char *op, tdm_view out,
                            size_t out_count, const char *name, const tdm_view *inputs,
                            const size_t *input_counts, size_t input_count)
{
    TDM_TRY(tdm_check_view(backend, out, out_count, op, name));
    for (size_t i = 0; i < input_count; i++) {
        if (tdm_views_overlap(out, out_count, inputs[i], input_counts[i]))
            return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "%s: output %s overlaps an input", op, name);
    }
    return TDM_OK;
}

tdm_status tdm_copy(tdm_backend *backend, tdm_view src, tdm_view dst, size_t count)
{
    TDM_TRY(tdm_check_supported(backend, TDM_OP_COPY));
    TDM_TRY(tdm_check_view(backend, src, count, "copy", "src"));
    TDM_TRY(tdm_check_view(backend, dst, count, "copy", "dst"));
    if (tdm_views_overlap(src, count, dst, count))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "copy: source and destination overlap");
    return count ? backend->iface->copy(backend, src, dst, count) : TDM_OK;
}

tdm_status tdm_matrix_transpose(tdm_backend *backend, size_t batch, size_t rows, size_t cols,
                                tdm_view src, tdm_view dst)
{
    TDM_TRY(tdm_check_supported(backend, TDM_OP_TRANSPOSE));
    if (rows && cols && batch > SIZE_MAX / sizeof(float) / rows / cols)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "transpose: %zu matrices of %zu x %zu floats are too large", batch, rows,
                        cols);
    size_t count = batch * rows * cols;
    TDM_TRY(tdm_check_view(backend, src, count, "transpose", "src"));
    TDM_TRY(tdm_check_view(backend, dst, count, "transpose", "dst"));
    if (tdm_views_overlap(src, count, dst, count))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "transpose: source and destination overlap");
    return count ? backend->iface->transpose(backend, batch, rows, cols, src, dst) : TDM_OK;
}

tdm_status tdm_axpy(tdm_backend *backend, size_t count, float alpha, tdm_view x, tdm_view y)
{
    TDM_TRY(tdm_check_supported(backend, TDM_OP_AXPY));
    TDM_TRY(tdm_check_view(backend, x, count, "axpy", "x"));
    TDM_TRY(tdm_check_view(backend, y, count, "axpy", "y"));
    if (tdm_views_overlap(x, count, y, count) && x.offset != y.offset)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "axpy: x and y partially overlap");
    return count ? backend->iface->axpy(backend, count, alpha, x, y) : TDM_OK;
}

tdm_status tdm_scale(tdm_backend *backend, size_t count, float alpha, tdm_view x)
{
    TDM_TRY(tdm_check_supported(backend, TDM_OP_SCALE));
    TDM_TRY(tdm_check_view(backend, x, count, "scale", "x"));
    return count ? backend->iface->scale(backend, count, alpha, x) : TDM_OK;
}

tdm_matrix tdm_sgemm_operand(const tdm_sgemm_args *args, char operand)
{
    bool ta = args->trans_a == TDM_TRANS, tb = args->trans_b == TDM_TRANS;
    switch (operand) {
    case 'A': return (tdm_matrix){ta ? args->k : args->m, ta ? args->m : args->k, args->lda};
    case 'B': return (tdm_matrix){tb ? args->n : args->k, tb ? args->k : args->n, args->ldb};
    default: return (tdm_matrix){args->m, args->n, args->ldc};
    }
}

/* The operand's leading dimension holds its columns, and the floats it spans
 * lie in its view. */
static tdm_status check_matrix(const tdm_backend *backend, const tdm_sgemm_args *args,
                               tdm_view view, char operand)
{
    tdm_matrix m = tdm_sgemm_operand(args, operand);
    const char name[] = {operand, '\0'};
    if (m.ld < m.cols || m.ld == 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "sgemm: leading dimension of %s is %zu, smaller than its %zu columns", name,
                        m.ld, m.cols);
    if (m.rows != 0 && (m.rows - 1) > (SIZE_MAX - m.cols) / m.ld)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "sgemm: %s is too large", name);
    return tdm_check_view(backend, view, tdm_matrix_floats(m), "sgemm", name);
}

/* BLAS semantics for k == 0: C = beta * C, and C = 0 when beta == 0. */
static tdm_status scale_rows_of_c(tdm_backend *backend, const tdm_sgemm_args *args)
{
    for (size_t row = 0; row < args->m; row++) {
        tdm_view c_row = {args->c.buffer, args->c.offset + row * args->ldc};
        TDM_TRY(args->beta == 0.0f ? tdm_fill(backend, c_row, args->n, 0.0f)
                                   : tdm_scale(backend, args->n, args->beta, c_row));
    }
    return TDM_OK;
}

tdm_status tdm_sgemm(tdm_backend *backend, const tdm_sgemm_args *args)
{
    TDM_TRY(tdm_check_supported(backend, TDM_OP_SGEMM));
    TDM_TRY(check_matrix(backend, args, args->a, 'A'));
    TDM_TRY(check_matrix(backend, args, args->b, 'B'));
    TDM_TRY(check_matrix(backend, args, args->c, 'C'));
    if (args->m == 0 || args->n == 0)
        return TDM_OK;
    if (args->k == 0)
        return scale_rows_of_c(backend, args);
    return backend->iface->sgemm(backend, args);
}

/* An output may alias an input exactly (in place), never in part. */
static tdm_status check_elementwise_operand(const tdm_backend *backend, tdm_op op, tdm_view input,
                                            tdm_view out, size_t count, const char *operand)
{
    TDM_TRY(tdm_check_view(backend, input, count, tdm_op_name(op), operand));
    if (tdm_views_overlap(input, count, out, count) && input.offset != out.offset)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "%s: %s and the output partially overlap",
                        tdm_op_name(op), operand);
    return TDM_OK;
}

static tdm_status elementwise(tdm_backend *backend, tdm_elementwise_op which, size_t count,
                              float scalar, tdm_view a, const char *a_name, tdm_view b,
                              const char *b_name, tdm_view out)
{
    tdm_op op = elementwise_ops[which].op;
    TDM_TRY(tdm_check_supported(backend, op));
    TDM_TRY(tdm_check_view(backend, out, count, tdm_op_name(op), "out"));
    TDM_TRY(check_elementwise_operand(backend, op, a, out, count, a_name));
    if (elementwise_ops[which].operands == 2) /* unary ops get an empty b */
        TDM_TRY(check_elementwise_operand(backend, op, b, out, count, b_name));
    if (!isfinite(scalar))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "%s: the parameter %g is not finite",
                        tdm_op_name(op), (double)scalar);
    return count ? backend->iface->elementwise(backend, which, count, scalar, a, b, out) : TDM_OK;
}

tdm_status tdm_add(tdm_backend *backend, size_t count, tdm_view x, tdm_view y, tdm_view z)
{
    return elementwise(backend, TDM_ELEMENTWISE_ADD, count, 0.0f, x, "x", y, "y", z);
}

tdm_status tdm_add_relu(tdm_backend *backend, size_t count, tdm_view x, tdm_view y, tdm_view z)
{
    return elementwise(backend, TDM_ELEMENTWISE_ADD_RELU, count, 0.0f, x, "x", y, "y", z);
}

tdm_status tdm_relu(tdm_backend *backend, size_t count, tdm_view x, tdm_view y)
{
    return elementwise(backend, TDM_ELEMENTWISE_RELU, count, 0.0f, x, "x", (tdm_view){0}, NULL, y);
}

tdm_status tdm_relu_backward(tdm_backend *backend, size_t count, tdm_view x, tdm_view dy,
                             tdm_view dx)
{
    return elementwise(backend, TDM_ELEMENTWISE_RELU_BACKWARD, count, 0.0f, x, "x", dy, "dy", dx);
}

tdm_status tdm_sigmoid(tdm_backend *backend, size_t count, tdm_view x, tdm_view y)
{
    return elementwise(backend, TDM_ELEMENTWISE_SIGMOID, count, 0.0f, x, "x", (tdm_view){0}, NULL,
                       y);
}

tdm_status tdm_sigmoid_backward(tdm_backend *backend, size_t count, tdm_view y, tdm_view dy,
                                tdm_view dx)
{
    return elementwise(backend, TDM_ELEMENTWISE_SIGMOID_BACKWARD, count, 0.0f, y, "y", dy, "dy",
                       dx);
}

tdm_status tdm_leaky_relu(tdm_backend *backend, size_t count, float slope, tdm_view x, tdm_view y)
{
    return elementwise(backend, TDM_ELEMENTWISE_LEAKY_RELU, count, slope, x, "x", (tdm_view){0},
                       NULL, y);
}

tdm_status tdm_leaky_relu_backward(tdm_backend *backend, size_t count, float slope, tdm_view x,
                                   tdm_view dy, tdm_view dx)
{
    return elementwise(backend, TDM_ELEMENTWISE_LEAKY_RELU_BACKWARD, count, slope, x, "x", dy, "dy",
                       dx);
}

tdm_status tdm_softmax_rows(tdm_backend *backend, size_t rows, size_t cols, tdm_view x,
                            tdm_view lse)
{
    TDM_TRY(tdm_check_supported(backend, TDM_OP_SOFTMAX_ROWS));
    if (cols == 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "softmax_rows: cols must be > 0");
    if (rows > SIZE_MAX / cols)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "softmax_rows: matrix too large");
    TDM_TRY(tdm_check_view(backend, x, rows * cols, "softmax_rows", "x"));
    TDM_TRY(tdm_check_view(backend, lse, rows, "softmax_rows", "lse"));
    if (tdm_views_overlap(x, rows * cols, lse, rows))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "softmax_rows: x and lse overlap");
    return rows ? backend->iface->softmax_rows(backend, rows, cols, x, lse) : TDM_OK;
}

size_t tdm_bits_groups(const tdm_bits_shape *shape)
{
    return (shape->cols + TDM_BITS_GROUP - 1) / TDM_BITS_GROUP;
}

/* The shape fits in memory and the bits view holds every row's words. */
static tdm_status check_bits(tdm_backend *backend, const tdm_bits_shape *s, tdm_view bits,
                             const char *op)
{
    if (s->cols == 0 || s->components == 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "%s: cols and components must be > 0", op);
    if (s->row_words != tdm_bits_row_words(s->cols))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "%s: %zu words a row for %zu columns, expected %zu", op, s->row_words,
                        s->cols, tdm_bits_row_words(s->cols));
    if (bits.offset % 2)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "%s: the bits view does not start on a word", op);
    size_t groups = tdm_bits_groups(s);
    if (s->rows > SIZE_MAX / 2 / s->row_words || s->rows > SIZE_MAX / s->components ||
        s->cols > SIZE_MAX / s->components || groups > SIZE_MAX / TDM_BITS_PATTERNS / s->components)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "%s: sizes too large", op);
    return tdm_check_view(backend, bits, 2 * s->rows * s->row_words, op, "bits");
}

tdm_status tdm_bits_scores(tdm_backend *backend, const tdm_bits_shape *shape, tdm_view bits,
                           tdm_view table, tdm_view bias, tdm_view scores)
{
    TDM_TRY(tdm_check_supported(backend, TDM_OP_BITS_SCORES));
    TDM_TRY(check_bits(backend, shape, bits, "bits_scores"));
    size_t k = shape->components;
    TDM_TRY(tdm_check_view(backend, table, tdm_bits_groups(shape) * TDM_BITS_PATTERNS * k,
                           "bits_scores", "table"));
    TDM_TRY(tdm_check_view(backend, bias, k, "bits_scores", "bias"));
    tdm_view inputs[] = {bits, table, bias};
    size_t counts[] = {2 * shape->rows * shape->row_words,
                       tdm_bits_groups(shape) * TDM_BITS_PATTERNS * k, k};
    TDM_TRY(tdm_check_output(backend, "bits_scores", scores, shape->rows * k, "scores", inputs,
                             counts, 3));
    return shape->rows ? backend->iface->bits_scores(backend, shape, bits, table, bias, scores)
                       : TDM_OK;
}

tdm_status tdm_bits_sums(tdm_backend *backend, const tdm_bits_shape *shape, tdm_view bits,
                         tdm_view weights, tdm_view sums)
{
    TDM_TRY(tdm_check_supported(backend, TDM_OP_BITS_SUMS));
    TDM_TRY(check_bits(backend, shape, bits, "bits_sums"));
    size_t k = shape->components;
    TDM_TRY(tdm_check_view(backend, weights, shape->rows * k, "bits_sums", "weights"));
    tdm_view inputs[] = {bits, weights};
    size_t counts[] = {2 * shape->rows * shape->row_words, shape->rows * k};
    size_t out = k * (shape->cols + 1); /* the sums, then the totals */
    TDM_TRY(tdm_check_output(backend, "bits_sums", sums, out, "sums", inputs, counts, 2));
    if (shape->rows == 0)
        return tdm_fill(backend, sums, out, 0.0f);
    return backend->iface->bits_sums(backend, shape, bits, weights, sums);
}

tdm_sgemm_args tdm_gemm_args(tdm_transpose trans_a, tdm_transpose trans_b, size_t m, size_t n,
                             size_t k, tdm_view a, size_t lda, tdm_view b, size_t ldb, float beta,
                             tdm_view c, size_t ldc)
{
    return (tdm_sgemm_args){.trans_a = trans_a,
                            .trans_b = trans_b,
                            .m = m,
                            .n = n,
                            .k = k,
                            .alpha = 1.0f,
                            .a = a,
                            .lda = lda,
                            .b = b,
                            .ldb = ldb,
                            .beta = beta,
                            .c = c,
                            .ldc = ldc};
}

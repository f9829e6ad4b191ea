/* The parity harness: every op, on every backend, against the cpu backend and
 * against a double-precision reference, on fixed-seed random inputs.
 *
 * For each case and backend it checks: sentinel guards around every tensor
 * are untouched (out-of-bounds writes), inputs are unchanged, outputs are
 * finite, a second run gives the same bits (determinism), and the outputs
 * agree with the cpu backend and the reference within the op's tolerance.
 * New ops add one entry to `ops` below. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.h"
#include "parity.h"

/* A quiet NaN with a payload no op produces: compared bit for bit. */
static const uint32_t SENTINEL_BITS = 0x7FC5A5A5u;

/* ---------- fill, copy, scale, axpy ---------- */

/* 40000 is above the size from which the cpu backend splits a loop between threads. */
static const size_t vector_sizes[] = {1, 3, 17, 31, 64, 65, 127, 1000, 4099, 40000};
enum { VECTOR_SIZE_COUNT = sizeof vector_sizes / sizeof vector_sizes[0] };

static size_t make_vector_cases(op_case *cases, size_t capacity, int tensor_count)
{
    static const char *const names[] = {"x", "y", "z"};
    size_t count = 0;
    for (size_t i = 0; i < VECTOR_SIZE_COUNT && count < capacity; i++) {
        op_case *c = &cases[count++];
        memset(c, 0, sizeof *c);
        c->p.vector.count = vector_sizes[i];
        c->p.vector.alpha = i % 2 ? -1.75f : 0.3f;
        c->tensor_count = tensor_count;
        for (size_t t = 0; t < (size_t)tensor_count; t++)
            c->tensors[t] = (tensor_spec){.name = names[t],
                                          .count = vector_sizes[i],
                                          .written = t == (size_t)tensor_count - 1};
        snprintf(c->label, sizeof c->label, "count=%zu alpha=%g", vector_sizes[i],
                 (double)c->p.vector.alpha);
    }
    return count;
}

static tdm_status run_fill(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_fill(backend, v[0], c->p.vector.count, c->p.vector.alpha);
}

static void reference_fill(const op_case *c, double *const *t)
{
    for (size_t i = 0; i < c->p.vector.count; i++)
        t[0][i] = c->p.vector.alpha;
}

static tdm_status run_copy(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_copy(backend, v[0], v[1], c->p.vector.count);
}

static void reference_copy(const op_case *c, double *const *t)
{
    memcpy(t[1], t[0], c->p.vector.count * sizeof(double));
}

/* (batch, rows, cols): edges of every width past the 4 x 4 blocks of the
 * OpenCL kernel, single rows and columns, conv1's col (9 x 2048) and its
 * dy (128 samples of 64 x 16). */
static const size_t transpose_shapes[][3] = {{1, 1, 1},    {1, 1, 7},    {1, 6, 1},  {1, 4, 4},
                                             {2, 5, 3},    {3, 7, 9},    {4, 8, 12}, {2, 13, 30},
                                             {1, 9, 2048}, {128, 64, 16}};

static size_t make_transpose_cases(op_case *cases, size_t capacity, int unused)
{
    (void)unused;
    size_t count = 0;
    for (size_t i = 0; i < sizeof transpose_shapes / sizeof transpose_shapes[0] && count < capacity;
         i++) {
        op_case *c = &cases[count++];
        memset(c, 0, sizeof *c);
        transpose_case *t = &c->p.transpose;
        *t = (transpose_case){transpose_shapes[i][0], transpose_shapes[i][1],
                              transpose_shapes[i][2]};
        size_t floats = t->batch * t->rows * t->cols;
        c->tensor_count = 2;
        c->tensors[0] = (tensor_spec){.name = "src", .count = floats};
        c->tensors[1] =
            (tensor_spec){.name = "dst", .count = floats, .written = true, .init = INIT_NAN};
        snprintf(c->label, sizeof c->label, "batch=%zu rows=%zu cols=%zu", t->batch, t->rows,
                 t->cols);
    }
    return count;
}

static tdm_status run_transpose(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    const transpose_case *t = &c->p.transpose;
    return tdm_matrix_transpose(backend, t->batch, t->rows, t->cols, v[0], v[1]);
}

static void reference_transpose(const op_case *c, double *const *t)
{
    const transpose_case *s = &c->p.transpose;
    for (size_t b = 0; b < s->batch; b++)
        for (size_t r = 0; r < s->rows; r++)
            for (size_t col = 0; col < s->cols; col++)
                t[1][(b * s->cols + col) * s->rows + r] = t[0][(b * s->rows + r) * s->cols + col];
}

static tdm_status run_scale(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_scale(backend, c->p.vector.count, c->p.vector.alpha, v[0]);
}

static void reference_scale(const op_case *c, double *const *t)
{
    for (size_t i = 0; i < c->p.vector.count; i++)
        t[0][i] = (float)(c->p.vector.alpha * t[0][i]); /* one float rounding, as IEEE demands */
}

static tdm_status run_axpy(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_axpy(backend, c->p.vector.count, c->p.vector.alpha, v[0], v[1]);
}

static void reference_axpy(const op_case *c, double *const *t)
{
    for (size_t i = 0; i < c->p.vector.count; i++)
        t[1][i] += c->p.vector.alpha * t[0][i];
}

/* ---------- the elementwise layer ops: add, relu, sigmoid ---------- */

static tdm_status run_add(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_add(backend, c->p.vector.count, v[0], v[1], v[2]);
}

static void reference_add(const op_case *c, double *const *t)
{
    for (size_t i = 0; i < c->p.vector.count; i++)
        t[2][i] = (float)(t[0][i] + t[1][i]); /* exact in double, then one rounding */
}

static tdm_status run_add_relu(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_add_relu(backend, c->p.vector.count, v[0], v[1], v[2]);
}

static void reference_add_relu(const op_case *c, double *const *t)
{
    for (size_t i = 0; i < c->p.vector.count; i++) {
        float sum = (float)(t[0][i] + t[1][i]); /* the float add's one rounding */
        t[2][i] = sum < 0.0f ? 0.0 : sum;
    }
}

static tdm_status run_relu(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_relu(backend, c->p.vector.count, v[0], v[1]);
}

static void reference_relu(const op_case *c, double *const *t)
{
    for (size_t i = 0; i < c->p.vector.count; i++)
        t[1][i] = t[0][i] > 0.0 ? t[0][i] : 0.0;
}

static tdm_status run_relu_backward(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_relu_backward(backend, c->p.vector.count, v[0], v[1], v[2]);
}

static void reference_relu_backward(const op_case *c, double *const *t)
{
    for (size_t i = 0; i < c->p.vector.count; i++)
        t[2][i] = t[0][i] > 0.0 ? t[1][i] : 0.0;
}

/* The slope is the case's alpha (0.3 or -1.75). */
static tdm_status run_leaky_relu(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_leaky_relu(backend, c->p.vector.count, c->p.vector.alpha, v[0], v[1]);
}

static void reference_leaky_relu(const op_case *c, double *const *t)
{
    for (size_t i = 0; i < c->p.vector.count; i++)
        t[1][i] = t[0][i] > 0.0 ? t[0][i] : c->p.vector.alpha * t[0][i];
}

static tdm_status run_leaky_relu_backward(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_leaky_relu_backward(backend, c->p.vector.count, c->p.vector.alpha, v[0], v[1], v[2]);
}

static void reference_leaky_relu_backward(const op_case *c, double *const *t)
{
    for (size_t i = 0; i < c->p.vector.count; i++)
        t[2][i] = t[0][i] > 0.0 ? t[1][i] : c->p.vector.alpha * t[1][i];
}

static tdm_status run_sigmoid(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_sigmoid(backend, c->p.vector.count, v[0], v[1]);
}

static void reference_sigmoid(const op_case *c, double *const *t)
{
    for (size_t i = 0; i < c->p.vector.count; i++)
        t[1][i] = 1.0 / (1.0 + exp(-t[0][i]));
}

static tdm_status run_sigmoid_backward(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    return tdm_sigmoid_backward(backend, c->p.vector.count, v[0], v[1], v[2]);
}

static void reference_sigmoid_backward(const op_case *c, double *const *t)
{
    for (size_t i = 0; i < c->p.vector.count; i++)
        t[2][i] = t[1][i] * t[0][i] * (1.0 - t[0][i]);
}

/* ---------- sgemm ---------- */

/* (m, n, k): ones, odd sizes and powers of two, square and very thin. */
static const size_t gemm_shapes[][3] = {
    {1, 1, 1},    {1, 17, 3},      {3, 1, 17},      {17, 31, 1},  {31, 17, 64}, {64, 65, 127},
    {65, 64, 31}, {127, 3, 65},    {1, 127, 64},    {64, 1, 127}, {3, 3, 3},    {17, 17, 17},
    {31, 65, 3},  {65, 127, 1},    {127, 127, 127}, {1, 64, 65},  {64, 31, 17}, {3, 127, 31},
    {65, 1, 1},   {128, 128, 128}, {200, 33, 129},  {7, 300, 5},
};
enum { GEMM_SHAPE_COUNT = sizeof gemm_shapes / sizeof gemm_shapes[0] };

static void set_gemm_case(op_case *c, gemm_case g, tensor_init c_init)
{
    bool ta = g.trans_a == TDM_TRANS, tb = g.trans_b == TDM_TRANS;
    size_t a_rows = ta ? g.k : g.m, b_rows = tb ? g.n : g.k;
    memset(c, 0, sizeof *c);
    c->p.gemm = g;
    c->tensor_count = 3;
    c->tensors[0] = (tensor_spec){.name = "A", .count = (a_rows - 1) * g.lda + (ta ? g.m : g.k)};
    c->tensors[1] = (tensor_spec){.name = "B", .count = (b_rows - 1) * g.ldb + (tb ? g.k : g.n)};
    c->tensors[2] = (tensor_spec){.name = "C",
                                  .count = (g.m - 1) * g.ldc + g.n,
                                  .written = true,
                                  .init = c_init,
                                  .cols = g.n,
                                  .ld = g.ldc};
    snprintf(c->label, sizeof c->label,
             "m=%zu n=%zu k=%zu %c%c lda=%zu ldb=%zu ldc=%zu a=%g b=%g%s", g.m, g.n, g.k,
             ta ? 'T' : 'N', tb ? 'T' : 'N', g.lda, g.ldb, g.ldc, (double)g.alpha, (double)g.beta,
             c_init == INIT_NAN ? " C=NaN" : "");
}

/* Leading dimensions are padded in some cases so strides are exercised. */
static gemm_case gemm_for_shape(size_t shape, int transposes)
{
    const size_t *s = gemm_shapes[shape];
    gemm_case g = {.trans_a = transposes & 1 ? TDM_TRANS : TDM_NO_TRANS,
                   .trans_b = transposes & 2 ? TDM_TRANS : TDM_NO_TRANS,
                   .m = s[0],
                   .n = s[1],
                   .k = s[2],
                   .alpha = shape % 2 ? -1.25f : 0.75f,
                   .beta = shape % 3 == 0 ? 1.5f : -0.5f};
    size_t pad = (shape + (size_t)transposes) % 3 * 5;
    g.lda = (g.trans_a == TDM_TRANS ? g.m : g.k) + pad;
    g.ldb = (g.trans_b == TDM_TRANS ? g.k : g.n) + pad;
    g.ldc = g.n + pad;
    return g;
}

static size_t make_gemm_cases(op_case *cases, size_t capacity, int variant)
{
    (void)variant;
    size_t count = 0;
    for (size_t shape = 0; shape < GEMM_SHAPE_COUNT; shape++)
        for (int transposes = 0; transposes < 4 && count < capacity; transposes++)
            set_gemm_case(&cases[count++], gemm_for_shape(shape, transposes), INIT_RANDOM);
    /* beta = 0 must not read C, so NaN there must not reach the result. */
    for (int transposes = 0; transposes < 4 && count < capacity; transposes++) {
        gemm_case g = gemm_for_shape(5, transposes);
        g.beta = 0.0f;
        set_gemm_case(&cases[count++], g, INIT_NAN);
    }
    /* The same at 896^3, where CLBlast leaves XgemmDirect for its padded,
     * indirect Xgemm by default (XGEMM_MIN_INDIRECT_SIZE). */
    gemm_case large = {
        .m = 896, .n = 896, .k = 896, .lda = 896, .ldb = 896, .ldc = 896, .alpha = 0.75f};
    if (count < capacity)
        set_gemm_case(&cases[count++], large, INIT_NAN);
    /* Operands at an aligned offset, which the OpenCL backend hands CLBlast as
     * sub-buffers: read, and C written, in place where the orientation and
     * sizes suit its kernel (A transposed, B not, sizes its tiles divide). */
    for (int transposes = 0; transposes < 4 && count < capacity; transposes++) {
        gemm_case g = {.trans_a = transposes & 1 ? TDM_TRANS : TDM_NO_TRANS,
                       .trans_b = transposes & 2 ? TDM_TRANS : TDM_NO_TRANS,
                       .m = 128,
                       .n = 256,
                       .k = 64,
                       .alpha = 1.25f,
                       .beta = transposes < 2 ? 0.0f : -0.5f};
        g.lda = g.trans_a == TDM_TRANS ? g.m : g.k;
        g.ldb = g.trans_b == TDM_TRANS ? g.k : g.n;
        g.ldc = g.n;
        set_gemm_case(&cases[count], g, g.beta == 0.0f ? INIT_NAN : INIT_RANDOM);
        for (size_t t = 0; t < 3; t++)
            cases[count].tensors[t].aligned = true;
        strncat(cases[count].label, " aligned",
                sizeof cases[count].label - strlen(cases[count].label) - 1);
        count++;
    }
    /* k = 0: C = beta * C, as in BLAS. */
    gemm_case empty = {
        .m = 5, .n = 7, .k = 0, .lda = 1, .ldb = 7, .ldc = 9, .alpha = 2.0f, .beta = -0.5f};
    if (count < capacity)
        set_gemm_case(&cases[count++], empty, INIT_RANDOM);
    return count;
}

static tdm_status run_gemm(tdm_backend *backend, const op_case *c, const tdm_view *v)
{
    const gemm_case *g = &c->p.gemm;
    tdm_sgemm_args args = {.trans_a = g->trans_a,
                           .trans_b = g->trans_b,
                           .m = g->m,
                           .n = g->n,
                           .k = g->k,
                           .alpha = g->alpha,
                           .a = v[0],
                           .lda = g->lda,
                           .b = v[1],
                           .ldb = g->ldb,
                           .beta = g->beta,
                           .c = v[2],
                           .ldc = g->ldc};
    return tdm_sgemm(backend, &args);
}

static void reference_gemm(const op_case *c, double *const *t)
{
    const gemm_case *g = &c->p.gemm;
    for (size_t i = 0; i < g->m; i++) {
        for (size_t j = 0; j < g->n; j++) {
            double sum = 0.0;
            for (size_t p = 0; p < g->k; p++) {
                double a = g->trans_a == TDM_TRANS ? t[0][p * g->lda + i] : t[0][i * g->lda + p];
                double b = g->trans_b == TDM_TRANS ? t[1][j * g->ldb + p] : t[1][p * g->ldb + j];
                sum += a * b;
            }
            double *out = &t[2][i * g->ldc + j];
            *out = g->alpha * sum + (g->beta == 0.0f ? 0.0 : g->beta * *out);
        }
    }
}

/* ---------- the table ---------- */

static const parity_op ops[] = {
    /* fill, copy and scale are one correctly rounded operation per element
     * (or none): every IEEE device gives the same bits. */
    {"fill", TDM_OP_FILL, 0.0, 0.0, make_vector_cases, 1, run_fill, reference_fill, false, false},
    {"copy", TDM_OP_COPY, 0.0, 0.0, make_vector_cases, 2, run_copy, reference_copy, false, false},
    {"scale", TDM_OP_SCALE, 0.0, 0.0, make_vector_cases, 1, run_scale, reference_scale, false,
     false},
    /* data movement: the same bits */
    {"transpose", TDM_OP_TRANSPOSE, 0.0, 0.0, make_transpose_cases, 0, run_transpose,
     reference_transpose, false, false},
    /* y + alpha*x: a compiler may fuse it into one FMA (one rounding) or not
     * (two), so results differ by at most an ulp or two of the operands. */
    {"axpy", TDM_OP_AXPY, 1e-12, 1e-6, make_vector_cases, 2, run_axpy, reference_axpy, false, true},
    /* add and relu (forward and backward) are exact: one rounding or none. */
    {"add", TDM_OP_ADD, 0.0, 0.0, make_vector_cases, 3, run_add, reference_add, false, false},
    {"add_relu", TDM_OP_ADD_RELU, 0.0, 0.0, make_vector_cases, 3, run_add_relu, reference_add_relu,
     false, false},
    {"relu", TDM_OP_RELU, 0.0, 0.0, make_vector_cases, 2, run_relu, reference_relu, false, false},
    {"relu_backward", TDM_OP_RELU_BACKWARD, 0.0, 0.0, make_vector_cases, 3, run_relu_backward,
     reference_relu_backward, false, false},
    /* One float product (or none) per element: 1 rounding, 6e-8 relative. */
    {"leaky_relu", TDM_OP_LEAKY_RELU, 1e-12, 1e-6, make_vector_cases, 2, run_leaky_relu,
     reference_leaky_relu, false, false},
    {"leaky_relu_backward", TDM_OP_LEAKY_RELU_BACKWARD, 1e-12, 1e-6, make_vector_cases, 3,
     run_leaky_relu_backward, reference_leaky_relu_backward, false, false},
    /* OpenCL allows exp 3 ulp and float division 2.5 ulp of error, C's expf
     * about 1: together under 8 ulp = 2^-20 ~ 1e-6 relative. */
    {"sigmoid", TDM_OP_SIGMOID, 1e-12, 2e-6, make_vector_cases, 2, run_sigmoid, reference_sigmoid,
     false, false},
    /* dy * (y * (1 - y)): three correctly rounded float operations, 3 ulp at most. */
    {"sigmoid_backward", TDM_OP_SIGMOID_BACKWARD, 1e-12, 1e-6, make_vector_cases, 3,
     run_sigmoid_backward, reference_sigmoid_backward, false, false},
    /* Float32 dot products of up to 300 terms of values in [-1, 1]: the
     * summation order differs between BLAS libraries; the worst-case bound
     * k * 2^-24 * sum|a b| is about 1e-4 of the result's RMS for k = 300,
     * typical errors are ~1e-6. */
    {"sgemm", TDM_OP_SGEMM, 1e-10, 1e-4, make_gemm_cases, 0, run_gemm, reference_gemm, true, false},
};
enum { OP_COUNT = sizeof ops / sizeof ops[0] };

/* ---------- the harness ---------- */

typedef struct case_data {
    float *initial[MAX_TENSORS]; /* guard + values + guard, as uploaded */
    float *result[MAX_TENSORS];  /* the same after the op ran */
} case_data;

static float sentinel(void)
{
    float value;
    memcpy(&value, &SENTINEL_BITS, sizeof value);
    return value;
}

/* Where a tensor starts in its buffer: after the guard, and on a 64-bit word
 * for packed bits (other tensors start odd, to catch alignment assumptions),
 * or ALIGNED_LEAD floats in where the case asks. */
static size_t lead(const tensor_spec *t)
{
    if (t->aligned)
        return ALIGNED_LEAD;
    return t->init == INIT_BITS ? GUARD + 1 : GUARD;
}

static size_t padded(const tensor_spec *t)
{
    return lead(t) + t->count + GUARD + 1;
}

static uint64_t case_seed(const parity_op *op, size_t case_index)
{
    uint64_t seed = test_base_seed() * 1000003u + case_index;
    for (const char *p = op->name; *p; p++)
        seed = seed * 31u + (unsigned char)*p;
    return seed;
}

static float int_as_float(int32_t value)
{
    float bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

static double tensor_value(const tensor_spec *t, const float *x)
{
    if (!is_integer_tensor(t))
        return *x;
    int32_t value;
    memcpy(&value, x, sizeof value);
    return value;
}

/* Half i of an INIT_BITS tensor: random bits, those past the last column 0. */
static float bits_half(const tensor_spec *t, size_t i, test_rng *rng)
{
    size_t row_words = (t->int_range + 63) / 64,
           first_column = (i / 2 % row_words) * 64 + i % 2 * 32;
    uint32_t bits = (uint32_t)test_rng_next(rng);
    if (first_column >= t->int_range)
        bits = 0;
    else if (t->int_range - first_column < 32)
        bits &= (1u << (t->int_range - first_column)) - 1u;
    return int_as_float((int32_t)bits);
}

static float initial_value(const tensor_spec *t, size_t i, test_rng *rng)
{
    switch (t->init) {
    case INIT_BITS: return bits_half(t, i, rng);
    case INIT_NAN: return NAN;
    case INIT_POSITIVE: return test_rng_uniform(rng, 0.5f, 2.0f);
    case INIT_LABELS: return int_as_float((int32_t)(test_rng_next(rng) % t->int_range));
    case INIT_INDEX: return int_as_float(-1);
    case INIT_GRID: return floorf(test_rng_uniform(rng, -1024.0f, 1024.0f)) / 1024.0f;
    case INIT_RANDOM: break;
    }
    return test_rng_uniform(rng, -1.0f, 1.0f);
}

static void make_case_data(const op_case *c, uint64_t seed, case_data *data)
{
    test_rng rng = {seed};
    memset(data, 0, sizeof *data);
    for (size_t t = 0; t < c->tensor_count; t++) {
        size_t total = padded(&c->tensors[t]);
        data->initial[t] = malloc(total * sizeof(float));
        data->result[t] = malloc(total * sizeof(float));
        assert_non_null(data->initial[t]);
        assert_non_null(data->result[t]);
        for (size_t i = 0; i < total; i++)
            data->initial[t][i] = sentinel();
        for (size_t i = 0; i < c->tensors[t].count; i++)
            data->initial[t][lead(&c->tensors[t]) + i] = initial_value(&c->tensors[t], i, &rng);
    }
}

static void free_case_data(const op_case *c, case_data *data)
{
    for (size_t t = 0; t < c->tensor_count; t++) {
        free(data->initial[t]);
        free(data->result[t]);
    }
}

/* Uploads the tensors, runs the op once, downloads everything. */
static tdm_status run_once(tdm_backend *backend, const parity_op *op, const op_case *c,
                           case_data *data)
{
    tdm_buffer *buffers[MAX_TENSORS] = {0};
    tdm_view views[MAX_TENSORS];
    tdm_status status = TDM_OK;
    for (size_t t = 0; t < c->tensor_count && status == TDM_OK; t++) {
        size_t bytes = padded(&c->tensors[t]) * sizeof(float);
        status = tdm_buffer_alloc(backend, bytes, &buffers[t]);
        if (status == TDM_OK)
            status = tdm_buffer_upload(buffers[t], 0, data->initial[t], bytes);
        views[t] = (tdm_view){buffers[t], lead(&c->tensors[t])};
    }
    if (status == TDM_OK)
        status = op->run(backend, c, views);
    if (status == TDM_OK)
        status = tdm_backend_synchronize(backend);
    for (size_t t = 0; t < c->tensor_count && status == TDM_OK; t++)
        status = tdm_buffer_download(buffers[t], 0, data->result[t],
                                     padded(&c->tensors[t]) * sizeof(float));
    for (size_t t = 0; t < c->tensor_count; t++)
        tdm_buffer_free(buffers[t]);
    return status;
}

static bool same_bits(const float *a, const float *b, size_t count)
{
    return memcmp(a, b, count * sizeof(float)) == 0;
}

/* Guards intact, inputs unchanged, outputs finite; "" when all hold. */
static void check_integrity(const op_case *c, const case_data *data, char *problem, size_t size)
{
    problem[0] = '\0';
    for (size_t t = 0; t < c->tensor_count; t++) {
        const tensor_spec *spec = &c->tensors[t];
        const float *got = data->result[t], *was = data->initial[t];
        size_t start = lead(spec), end = start + spec->count;
        if (!same_bits(got, was, start) || !same_bits(got + end, was + end, padded(spec) - end)) {
            snprintf(problem, size, "wrote outside tensor %s (sentinel overwritten)", spec->name);
            return;
        }
        if (!spec->written && !same_bits(got + start, was + start, spec->count)) {
            snprintf(problem, size, "modified input tensor %s", spec->name);
            return;
        }
        for (size_t i = 0; spec->written && i < spec->count; i++) {
            if (!is_element(spec, i) && !same_bits(got + start + i, was + start + i, 1)) {
                snprintf(problem, size, "wrote into the padding of %s at %zu", spec->name, i);
                return;
            }
            if (is_element(spec, i) && !is_integer_tensor(spec) && !isfinite(got[start + i])) {
                snprintf(problem, size, "%s[%zu] is not finite (%g)", spec->name, i,
                         (double)got[start + i]);
                return;
            }
        }
    }
}

typedef struct error_metrics {
    double nmse, max_relative;
    size_t elements;
} error_metrics;

/* Integer tensors (argmax) must match exactly. */
static error_metrics compare_integers(const float *x, const double *y, const tensor_spec *spec)
{
    for (size_t i = 0; i < spec->count; i++)
        if (tensor_value(spec, &x[i]) != y[i])
            return (error_metrics){INFINITY, INFINITY, spec->count};
    return (error_metrics){0.0, 0.0, spec->count};
}

/* Over the tensor's elements (not the padding between strided rows), with
 * y's rms taken as at least `floor` (the inputs' rms for an op whose
 * outputs cancel, else 0). */
static error_metrics compare(const float *x, const double *y, const tensor_spec *spec, double floor)
{
    if (is_integer_tensor(spec))
        return compare_integers(x, y, spec);
    double sum_sq_diff = 0.0, sum_sq_ref = 0.0, worst = 0.0;
    size_t elements = 0;
    for (size_t i = 0; i < spec->count; i++) {
        if (is_element(spec, i)) {
            sum_sq_ref += y[i] * y[i];
            elements++;
        }
    }
    sum_sq_ref = fmax(sum_sq_ref, (double)elements * floor * floor);
    double rms = sqrt(sum_sq_ref / (double)elements);
    for (size_t i = 0; i < spec->count; i++) {
        double diff = fabs((double)x[i] - y[i]);
        if (!is_element(spec, i) || diff == 0.0)
            continue;
        sum_sq_diff += diff * diff;
        worst = fmax(worst, diff / fmax(fmax(fabs(y[i]), rms), 1e-30));
    }
    /* A NaN difference must fail, never compare as "not above tolerance". */
    if (isnan(sum_sq_diff))
        return (error_metrics){INFINITY, INFINITY, elements};
    error_metrics m = {sum_sq_diff > 0.0 ? sum_sq_diff / fmax(sum_sq_ref, 1e-300) : 0.0, worst,
                       elements};
    return m;
}

static void fail_case(const parity_op *op, const op_case *c, size_t case_index,
                      tdm_backend *backend, const char *format, ...)
{
    char detail[512];
    va_list args;
    va_start(args, format);
    vsnprintf(detail, sizeof detail, format, args);
    va_end(args);
    fail_msg("%s [%s] on %s: %s (seed %llu, case %zu; rerun with TANDEM_TEST_SEED=%llu)", op->name,
             c->label, tdm_backend_description(backend), detail,
             (unsigned long long)case_seed(op, case_index), case_index,
             (unsigned long long)test_base_seed());
}

/* The rms of the values the case reads (its finite float inputs, written
 * ones included), over the elements of every such tensor. */
static double input_rms(const op_case *c, const case_data *data)
{
    double sum_sq = 0.0;
    size_t elements = 0;
    for (size_t t = 0; t < c->tensor_count; t++) {
        const tensor_spec *spec = &c->tensors[t];
        if (is_integer_tensor(spec) || spec->init == INIT_NAN)
            continue;
        for (size_t i = 0; i < spec->count; i++)
            if (is_element(spec, i)) {
                double value = data->initial[t][lead(spec) + i];
                sum_sq += value * value;
                elements++;
            }
    }
    return elements ? sqrt(sum_sq / (double)elements) : 0.0;
}

/* Compares each written tensor of `data` with the expected values. */
static void check_against(const parity_op *op, const op_case *c, size_t case_index,
                          tdm_backend *backend, const case_data *data, double *const *expected,
                          const char *what)
{
    double floor = op->cancels ? input_rms(c, data) : 0.0;
    for (size_t t = 0; t < c->tensor_count; t++) {
        if (!c->tensors[t].written)
            continue;
        error_metrics m =
            compare(data->result[t] + lead(&c->tensors[t]), expected[t], &c->tensors[t], floor);
        /* Over few elements the nmse is no average: held to what max_relative
         * allows one element, shared between them, where that is looser. */
        double max_nmse =
            fmax(op->max_nmse, op->max_relative * op->max_relative / (double)m.elements);
        if (m.nmse > max_nmse || m.max_relative > op->max_relative)
            fail_case(op, c, case_index, backend,
                      "%s differs from %s: nmse %.3g (max %.3g), max relative %.3g (max %.3g)",
                      c->tensors[t].name, what, m.nmse, max_nmse, m.max_relative, op->max_relative);
    }
}

static void run_checked(const parity_op *op, const op_case *c, size_t case_index,
                        tdm_backend *backend, case_data *data)
{
    char problem[256];
    if (!tdm_backend_supports_op(backend, op->op))
        fail_case(op, c, case_index, backend, "op not supported");
    if (run_once(backend, op, c, data) != TDM_OK)
        fail_case(op, c, case_index, backend, "failed: %s", tdm_last_error());
    check_integrity(c, data, problem, sizeof problem);
    if (problem[0])
        fail_case(op, c, case_index, backend, "%s", problem);
}

/* Runs a second time and demands the same bits. */
static void check_deterministic(const parity_op *op, const op_case *c, size_t case_index,
                                tdm_backend *backend, const case_data *first)
{
    case_data again;
    make_case_data(c, case_seed(op, case_index), &again);
    run_checked(op, c, case_index, backend, &again);
    for (size_t t = 0; t < c->tensor_count; t++)
        if (!same_bits(again.result[t], first->result[t], padded(&c->tensors[t])))
            fail_case(op, c, case_index, backend, "two runs gave different bits in %s",
                      c->tensors[t].name);
    free_case_data(c, &again);
}

/* The cpu backend with another thread count than test_all_backends' cpu. */
static tdm_backend *cpu_other_threads;

static bool gemm_is_thread_count_exact(void)
{
    return strstr(tdm_backend_description(cpu_other_threads), "portable C") != NULL;
}

/* Our own loops split outputs, never sums, between threads: the same bits
 * on any thread count. A GEMM library may split sums (oneDNN does for some
 * shapes), so there the cpu tolerance applies instead. */
static void check_thread_count(const parity_op *op, const op_case *c, size_t case_index,
                               const case_data *cpu_data, double *const *cpu_result)
{
    case_data other;
    make_case_data(c, case_seed(op, case_index), &other);
    run_checked(op, c, case_index, cpu_other_threads, &other);
    if (op->uses_gemm && !gemm_is_thread_count_exact())
        check_against(op, c, case_index, cpu_other_threads, &other, cpu_result,
                      "the cpu backend with another thread count");
    else
        for (size_t t = 0; t < c->tensor_count; t++)
            if (!same_bits(other.result[t], cpu_data->result[t], padded(&c->tensors[t])))
                fail_case(op, c, case_index, cpu_other_threads,
                          "%s: the bits depend on the thread count", c->tensors[t].name);
    free_case_data(c, &other);
}

/* double copies of the initial values, updated by the reference. */
static void reference_values(const parity_op *op, const op_case *c, const case_data *data,
                             double **out)
{
    for (size_t t = 0; t < c->tensor_count; t++) {
        out[t] = malloc(c->tensors[t].count * sizeof(double) + 1);
        assert_non_null(out[t]);
        for (size_t i = 0; i < c->tensors[t].count; i++)
            out[t][i] = tensor_value(&c->tensors[t], &data->initial[t][lead(&c->tensors[t]) + i]);
    }
    op->reference(c, out);
}

static void widen(const tensor_spec *t, const float *x, double *out)
{
    for (size_t i = 0; i < t->count; i++)
        out[i] = tensor_value(t, &x[i]);
}

static void check_case(const test_backends *all, const parity_op *op, const op_case *c,
                       size_t case_index)
{
    case_data cpu_data, device_data;
    double *reference[MAX_TENSORS] = {0}, *cpu_result[MAX_TENSORS] = {0};
    make_case_data(c, case_seed(op, case_index), &cpu_data);
    reference_values(op, c, &cpu_data, reference);
    run_checked(op, c, case_index, all->all[0], &cpu_data);
    check_against(op, c, case_index, all->all[0], &cpu_data, reference, "the reference");
    check_deterministic(op, c, case_index, all->all[0], &cpu_data);
    for (size_t t = 0; t < c->tensor_count; t++) {
        cpu_result[t] = malloc(c->tensors[t].count * sizeof(double) + 1);
        assert_non_null(cpu_result[t]);
        widen(&c->tensors[t], cpu_data.result[t] + lead(&c->tensors[t]), cpu_result[t]);
    }
    check_thread_count(op, c, case_index, &cpu_data, cpu_result);
    for (size_t b = 1; b < all->count; b++) {
        make_case_data(c, case_seed(op, case_index), &device_data);
        run_checked(op, c, case_index, all->all[b], &device_data);
        check_against(op, c, case_index, all->all[b], &device_data, cpu_result, "the cpu backend");
        check_against(op, c, case_index, all->all[b], &device_data, reference, "the reference");
        check_deterministic(op, c, case_index, all->all[b], &device_data);
        free_case_data(c, &device_data);
    }
    for (size_t t = 0; t < c->tensor_count; t++) {
        free(reference[t]);
        free(cpu_result[t]);
    }
    free_case_data(c, &cpu_data);
}

/* TANDEM_PARITY_MAX_ELEMENTS=N keeps only the cases whose tensors have at
 * most N elements each (the Oclgrind run: a simulator is slow), and an op
 * with none keeps its case of the smallest largest tensor (a linear layer
 * takes its GEMM path only above 4096 weights); 0 or unset keeps all. */
static size_t max_elements(void)
{
    const char *text = getenv("TANDEM_PARITY_MAX_ELEMENTS");
    return text ? strtoul(text, NULL, 10) : 0;
}

static size_t largest_tensor(const op_case *c)
{
    size_t largest = 0;
    for (size_t t = 0; t < c->tensor_count; t++)
        largest = c->tensors[t].count > largest ? c->tensors[t].count : largest;
    return largest;
}

/* The most elements a tensor of the op's cases may have: the limit, or
 * above it the smallest the cases allow. */
static size_t element_limit(const op_case *cases, size_t count)
{
    size_t limit = max_elements(), smallest = SIZE_MAX;
    for (size_t i = 0; i < count; i++)
        smallest = largest_tensor(&cases[i]) < smallest ? largest_tensor(&cases[i]) : smallest;
    return limit == 0 ? SIZE_MAX : smallest > limit ? smallest : limit;
}

/* TANDEM_PARITY_GEMM=only or none: the ops that run a GEMM, or the others
 * (the Oclgrind run checks the two halves with different plugins). */
static bool op_selected(const parity_op *op)
{
    const char *gemm = getenv("TANDEM_PARITY_GEMM");
    if (!gemm || !gemm[0])
        return true;
    return strcmp(gemm, "only") == 0 ? op->uses_gemm : !op->uses_gemm;
}

static void test_op(void **state)
{
    const parity_op *op = *state;
    static op_case cases[MAX_CASES];
    if (!op_selected(op)) {
        printf("%s: not run (TANDEM_PARITY_GEMM=%s)\n", op->name, getenv("TANDEM_PARITY_GEMM"));
        return;
    }
    size_t count = op->make_cases(cases, MAX_CASES, op->variant), checked = 0;
    size_t limit = element_limit(cases, count);
    for (size_t i = 0; i < count; i++)
        if (largest_tensor(&cases[i]) <= limit) {
            check_case(&test_all_backends, op, &cases[i], i);
            checked++;
        }
    if (checked == 0)
        fail_msg("%s: no cases", op->name);
    printf("%s: %zu of %zu cases on %zu backend(s) agree\n", op->name, checked, count,
           test_all_backends.count);
}

/* Semantics the random cases cannot reach: NaN through relu (it stays NaN,
 * as in torch.relu), and elementwise ops in place. */
static void test_relu_nan_and_in_place(void **state)
{
    (void)state;
    const float input[4] = {NAN, -2.0f, 0.0f, 3.0f};
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        tdm_buffer *buffer = NULL;
        float out[4];
        assert_int_equal(tdm_buffer_alloc(backend, sizeof input, &buffer), TDM_OK);
        assert_int_equal(tdm_buffer_upload(buffer, 0, input, sizeof input), TDM_OK);
        tdm_view x = {buffer, 0};
        assert_int_equal(tdm_relu(backend, 4, x, x), TDM_OK);
        assert_int_equal(tdm_add(backend, 4, x, x, x), TDM_OK);
        assert_int_equal(tdm_buffer_download(buffer, 0, out, sizeof out), TDM_OK);
        assert_true(isnan(out[0]));
        assert_true(out[1] == 0.0f && out[2] == 0.0f && out[3] == 6.0f);
        assert_int_equal(tdm_relu(backend, 3, x, (tdm_view){buffer, 1}),
                         TDM_ERR_INVALID_ARGUMENT); /* partial overlap */
        tdm_buffer_free(buffer);
    }
}

/* test_all_backends, and the cpu backend with 3 threads, or 1 when the
 * suite runs with more than 1. */
static int open_backends(void **state)
{
    size_t threads = test_cpu_threads() == 1 ? 3 : 1;
    if (test_open_all_backends(state) != 0 ||
        tdm_cpu_backend_create_threads(threads, &cpu_other_threads) != TDM_OK)
        return -1;
    printf("also: %s\n", tdm_backend_description(cpu_other_threads));
    return 0;
}

static int close_backends(void **state)
{
    tdm_backend_free(cpu_other_threads);
    return test_close_all_backends(state);
}

enum { MAX_TESTS = 64 };

int main(void)
{
    static struct CMUnitTest tests[MAX_TESTS];
    size_t count = 0;
    for (size_t i = 0; i < OP_COUNT; i++)
        tests[count++] = (struct CMUnitTest){ops[i].name, test_op, NULL, NULL, (void *)&ops[i]};
    for (size_t i = 0; i < parity_layer_op_count && count < MAX_TESTS - 1; i++)
        tests[count++] = (struct CMUnitTest){parity_layer_ops[i].name, test_op, NULL, NULL,
                                             (void *)&parity_layer_ops[i]};
    tests[count++] =
        (struct CMUnitTest){"relu_nan_and_in_place", test_relu_nan_and_in_place, NULL, NULL, NULL};
    printf("parity harness: base seed %llu\n", (unsigned long long)test_base_seed());
    return _cmocka_run_group_tests("parity", tests, count, open_backends, close_backends);
}

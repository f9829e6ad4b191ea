/* Types shared by the parity harness (test_parity.c) and its table of
 * layer ops (parity_layers.c). */
#ifndef TANDEM_TESTS_PARITY_H
#define TANDEM_TESTS_PARITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tandem/tandem.h"

/* A tensor starts GUARD floats into its buffer, or ALIGNED_LEAD floats
 * (4 KiB, a multiple of every device's base address alignment) where the
 * case asks for an aligned start. */
enum { GUARD = 37, ALIGNED_LEAD = 1024, MAX_TENSORS = 12, MAX_CASES = 160 };

/* How a tensor's initial values are drawn. INIT_LABELS draws integers in
 * [0, int_range) and makes an int32 tensor; INIT_INDEX marks an int32
 * output (its initial values are overwritten). */
typedef enum tensor_init {
    INIT_RANDOM,   /* uniform in [-1, 1] */
    INIT_NAN,      /* NaN everywhere: must never be read */
    INIT_POSITIVE, /* uniform in [0.5, 2]: variances, inverse deviations */
    INIT_GRID,     /* uniform on the multiples of 2^-10 in [-1, 1]: equal or far apart */
    INIT_LABELS,
    INIT_INDEX,
    INIT_BITS /* rows of 64-bit words (two floats each) of int_range columns, random bits,
                 the bits past the last column 0 */
} tensor_init;

typedef struct tensor_spec {
    const char *name;
    size_t count;
    bool written; /* an output (possibly also read, like C in GEMM) */
    tensor_init init;
    size_t cols, ld;  /* a strided matrix: only cols of every ld values are the op's */
    size_t int_range; /* INIT_LABELS; INIT_BITS: the columns */
    bool aligned;     /* starts ALIGNED_LEAD floats into its buffer */
} tensor_spec;

static inline bool is_integer_tensor(const tensor_spec *t)
{
    return t->init == INIT_LABELS || t->init == INIT_INDEX || t->init == INIT_BITS;
}

/* A word of an INIT_BITS tensor from the doubles that hold its two halves. */
static inline uint64_t bits_word(const double *halves, size_t word)
{
    return (uint64_t)(uint32_t)(int32_t)halves[2 * word] |
           (uint64_t)(uint32_t)(int32_t)halves[2 * word + 1] << 32;
}

/* False for the padding between the rows of a strided matrix. */
static inline bool is_element(const tensor_spec *t, size_t i)
{
    return t->ld == 0 || i % t->ld < t->cols;
}

typedef struct gemm_case {
    tdm_transpose trans_a, trans_b;
    size_t m, n, k, lda, ldb, ldc;
    float alpha, beta;
} gemm_case;

typedef struct vector_case {
    size_t count;
    float alpha;
} vector_case;

typedef struct transpose_case {
    size_t batch, rows, cols;
} transpose_case;

/* The shapes and options of one layer-op case; each op uses its own. */
typedef struct layer_case {
    tdm_conv2d_shape conv;
    tdm_pool2d_shape pool;
    tdm_batchnorm_shape norm;
    tdm_linear_shape linear;
    tdm_cross_entropy_shape loss;
    tdm_sgd_options sgd;
    bool first_step;
    bool residual; /* a batch norm's forward adds a residual, its last tensor */
    size_t planes, spatial;
} layer_case;

typedef struct op_case {
    char label[160];
    size_t tensor_count;
    tensor_spec tensors[MAX_TENSORS];
    union {
        gemm_case gemm;
        vector_case vector;
        transpose_case transpose;
        layer_case layer;
    } p;
} op_case;

typedef struct parity_op {
    const char *name;
    tdm_op op;
    /* Tolerances against the cpu backend and the double reference: the
     * normalised mean squared error sum (x - y)^2 / sum y^2, and the largest
     * |x - y| / max(|y|, rms(y)) (the floor keeps entries that cancel to near
     * zero from dominating). Justified where each op is listed. */
    double max_nmse, max_relative;
    /* Writes up to capacity cases; variant picks among related ops (a
     * direction, a mode, a tensor count). */
    size_t (*make_cases)(op_case *cases, size_t capacity, int variant);
    int variant;
    tdm_status (*run)(tdm_backend *backend, const op_case *c, const tdm_view *views);
    /* Updates the written tensors of t (initial values in, results out). */
    void (*reference)(const op_case *c, double *const *t);
    /* Runs a GEMM library, whose bits may depend on the thread count; every
     * other op must give the same bits on any number of cpu threads. */
    bool uses_gemm;
    /* Its outputs can cancel to far below the terms they are computed from
     * (y + alpha x, a mean of signed values, x - mean): their roundings are
     * of the terms' size, so the differences are measured against at least
     * the rms of the case's inputs too (max(|y|, rms(y), that) and, for the
     * nmse, max(sum y^2, count * that^2)). */
    bool cancels;
} parity_op;

/* The definition of cross-correlation in double, visited term by term:
 * y += w x, dx += w dy, dw += dy x (whichever outputs are non-NULL). */
void parity_conv_reference(const tdm_conv2d_shape *s, const double *x, const double *w,
                           const double *dy, double *y, double *dx, double *dw);

/* The layer-op entries of the table (parity_layers.c). */
extern const parity_op parity_layer_ops[];
extern const size_t parity_layer_op_count;

#endif

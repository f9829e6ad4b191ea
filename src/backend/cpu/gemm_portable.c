#include "backend/cpu/gemm_portable.h"

#include <stdlib.h>

#include "core/error.h"

/* Rows of op(B) per pass: a panel of this many rows stays in cache while
 * ROW_BLOCK rows of C take their share of it. */
enum { K_BLOCK = 256, ROW_BLOCK = 16 };

static void scale_c(size_t m, size_t n, float beta, float *c, size_t ldc)
{
    for (size_t i = 0; i < m; i++) {
        float *row = c + i * ldc;
        for (size_t j = 0; j < n; j++)
            row[j] = beta == 0.0f ? 0.0f : beta * row[j]; /* beta == 0: C is not read */
    }
}

/* C += alpha * op(A) * B for B stored k x n row-major; the inner loop runs
 * along contiguous rows of B and C so the compiler can vectorise it. Threads
 * share out blocks of rows of C; each entry sums over p in order, so the
 * result does not depend on the thread count. */
static void accumulate(size_t threads, tdm_transpose trans_a, size_t m, size_t n, size_t k,
                       float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                       float *c, size_t ldc)
{
    size_t blocks = (m + ROW_BLOCK - 1) / ROW_BLOCK;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t block = 0; block < blocks; block++) {
        size_t i0 = block * ROW_BLOCK, i1 = i0 + ROW_BLOCK < m ? i0 + ROW_BLOCK : m;
        for (size_t p0 = 0; p0 < k; p0 += K_BLOCK) {
            size_t p1 = p0 + K_BLOCK < k ? p0 + K_BLOCK : k;
            for (size_t i = i0; i < i1; i++) {
                float *c_row = c + i * ldc;
                for (size_t p = p0; p < p1; p++) {
                    float a_ip = alpha * (trans_a == TDM_TRANS ? a[p * lda + i] : a[i * lda + p]);
                    const float *b_row = b + p * ldb;
                    for (size_t j = 0; j < n; j++)
                        c_row[j] += a_ip * b_row[j];
                }
            }
        }
    }
}

/* Copies op(B) = B^T (B stored n x k) into a dense k x n matrix. */
static float *transpose_copy(const float *b, size_t ldb, size_t n, size_t k)
{
    float *bt = malloc(k * n * sizeof *bt);
    if (!bt)
        return NULL;
    for (size_t j = 0; j < n; j++)
        for (size_t p = 0; p < k; p++)
            bt[p * n + j] = b[j * ldb + p];
    return bt;
}

tdm_status tdm_cpu_sgemm_portable(size_t threads, tdm_transpose trans_a, tdm_transpose trans_b,
                                  size_t m, size_t n, size_t k, float alpha, const float *a,
                                  size_t lda, const float *b, size_t ldb, float beta, float *c,
                                  size_t ldc)
{
    if (beta != 1.0f)
        scale_c(m, n, beta, c, ldc);
    if (trans_b == TDM_NO_TRANS) {
        accumulate(threads, trans_a, m, n, k, alpha, a, lda, b, ldb, c, ldc);
        return TDM_OK;
    }
    float *bt = transpose_copy(b, ldb, n, k);
    if (!bt)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "sgemm: no host memory for a %zu x %zu scratch", k,
                        n);
    accumulate(threads, trans_a, m, n, k, alpha, a, lda, bt, n, c, ldc);
    free(bt);
    return TDM_OK;
}

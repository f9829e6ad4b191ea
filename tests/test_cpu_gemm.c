/* The portable C GEMM (the cpu backend's GEMM when built without CBLAS)
 * against a double-precision reference, in every build. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "backend/cpu/gemm_portable.h"
#include "common.h"

static double reference_entry(tdm_transpose ta, tdm_transpose tb, size_t i, size_t j, size_t k,
                              const float *a, size_t lda, const float *b, size_t ldb)
{
    double sum = 0.0;
    for (size_t p = 0; p < k; p++)
        sum += (double)(ta == TDM_TRANS ? a[p * lda + i] : a[i * lda + p]) *
               (tb == TDM_TRANS ? b[j * ldb + p] : b[p * ldb + j]);
    return sum;
}

static void check_shape(size_t m, size_t n, size_t k, tdm_transpose ta, tdm_transpose tb,
                        float beta)
{
    const float alpha = -0.75f;
    size_t lda = (ta == TDM_TRANS ? m : k) + 2, ldb = (tb == TDM_TRANS ? k : n) + 1, ldc = n + 3;
    size_t a_rows = ta == TDM_TRANS ? k : m, b_rows = tb == TDM_TRANS ? n : k;
    float *a = malloc(a_rows * lda * sizeof *a), *b = malloc(b_rows * ldb * sizeof *b);
    float *c = malloc(m * ldc * sizeof *c), *c0 = malloc(m * ldc * sizeof *c0);
    assert_true(a && b && c && c0);
    test_rng rng = {test_base_seed() + m * 7 + n * 13 + k};
    for (size_t i = 0; i < a_rows * lda; i++)
        a[i] = test_rng_uniform(&rng, -1.0f, 1.0f);
    for (size_t i = 0; i < b_rows * ldb; i++)
        b[i] = test_rng_uniform(&rng, -1.0f, 1.0f);
    for (size_t i = 0; i < m * ldc; i++)
        c[i] = c0[i] = beta == 0.0f ? NAN : test_rng_uniform(&rng, -1.0f, 1.0f);
    assert_int_equal(
        tdm_cpu_sgemm_portable(2, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), TDM_OK);
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            double expected = alpha * reference_entry(ta, tb, i, j, k, a, lda, b, ldb) +
                              (beta == 0.0f ? 0.0 : beta * (double)c0[i * ldc + j]);
            /* k float32 products summed in order: at most k * 2^-24 * sum|ab|, < 3e-5 * k. */
            assert_true(fabs(c[i * ldc + j] - expected) <= 3e-5 * (double)(k + 1));
        }
        for (size_t j = n; j < ldc && i + 1 < m; j++) /* padding untouched */
            assert_memory_equal(&c[i * ldc + j], &c0[i * ldc + j], sizeof(float));
    }
    free(a);
    free(b);
    free(c);
    free(c0);
}

static void portable_gemm_matches_reference(void **state)
{
    (void)state;
    static const size_t shapes[][3] = {{1, 1, 1},    {3, 17, 31},   {64, 65, 1},
                                       {31, 1, 300}, {65, 64, 127}, {17, 3, 513}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++)
            for (int beta = 0; beta < 2; beta++)
                check_shape(shapes[s][0], shapes[s][1], shapes[s][2],
                            t & 1 ? TDM_TRANS : TDM_NO_TRANS, t & 2 ? TDM_TRANS : TDM_NO_TRANS,
                            beta ? 1.5f : 0.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(portable_gemm_matches_reference)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

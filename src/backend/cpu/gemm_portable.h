/* A portable C SGEMM, used by the cpu backend built with TANDEM_CPU_GEMM=portable and
 * tested against a double-precision reference in every build. */
#ifndef TANDEM_CPU_GEMM_PORTABLE_H
#define TANDEM_CPU_GEMM_PORTABLE_H

#include "tandem/backend.h"

/* Row-major C = alpha * op(A) op(B) + beta * C on host pointers, with the
 * conventions of tdm_sgemm_args, on `threads` OpenMP threads (the same bits
 * for any count). Fails only when the scratch copy of a transposed B cannot
 * be allocated. */
tdm_status tdm_cpu_sgemm_portable(size_t threads, tdm_transpose trans_a, tdm_transpose trans_b,
                                  size_t m, size_t n, size_t k, float alpha, const float *a,
                                  size_t lda, const float *b, size_t ldb, float beta, float *c,
                                  size_t ldc);

#endif

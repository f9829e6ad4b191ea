/* The cpu backend's SGEMM: oneDNN, OpenBLAS or the portable C GEMM, chosen
 * at build time (TANDEM_CPU_GEMM in CMakeLists.txt). */
#ifndef TANDEM_CPU_GEMM_H
#define TANDEM_CPU_GEMM_H

#include "backend/backend_impl.h"

/* Row-major C = alpha op(A) op(B) + beta C on `threads` threads. */
tdm_status tdm_cpu_gemm(size_t threads, const tdm_sgemm_args *args);

/* What runs, for tandem devices and selftest: e.g. "oneDNN 2.6.3, avx512_core". */
void tdm_cpu_gemm_describe(char *out, size_t capacity);

#endif

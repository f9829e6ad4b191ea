/* Loops the cpu backend vectorises by hand with GCC's vector types. */
#ifndef TANDEM_CPU_CLONES_H
#define TANDEM_CPU_CLONES_H

#include <string.h>

/* A function compiled for AVX-512, AVX2 and baseline x86-64, the clone for
 * the CPU picked when the library loads (GCC's function multiversioning):
 * Debian builds for baseline x86-64 only. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TDM_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TDM_VECTOR_CLONES
#endif

/* The vector helpers are always inlined into the clones. */
#define TDM_INLINE static inline __attribute__((always_inline))

/* Since they are always inlined, the ABI of passing vectors in registers,
 * which GCC warns may differ between the clones, never applies. */
#pragma GCC diagnostic ignored "-Wpsabi"

/* Sixteen floats, as the OpenCL kernels' float16, loaded and stored
 * without alignment. */
enum { TDM_VEC16_LANES = 16 };
typedef float tdm_vec16 __attribute__((vector_size(TDM_VEC16_LANES * sizeof(float))));

TDM_INLINE tdm_vec16 tdm_load16(const float *p)
{
    tdm_vec16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

TDM_INLINE void tdm_store16(float *p, tdm_vec16 v)
{
    memcpy(p, &v, sizeof v);
}

#endif

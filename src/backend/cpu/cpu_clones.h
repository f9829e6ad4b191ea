/* Loops the cpu backend vectorises by hand with GCC's vector types. */
#ifndef TANDEM_CPU_CLONES_H
#define TANDEM_CPU_CLONES_H

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

#endif

/* Vectorised math for the cpu backend's loops. */
#ifndef TANDEM_CPU_VECTOR_MATH_H
#define TANDEM_CPU_VECTOR_MATH_H

#include <stddef.h>

/* x[i] = expf(x[i]) for count floats, 0 where expf would be subnormal (x <
 * -87): glibc's vector expf (libmvec, within 4 ulp; 2e-7 relative measured)
 * in the AVX-512, AVX2 or SSE width the CPU has, where the build found it;
 * else the scalar expf. */
void tdm_cpu_exp_in_place(float *x, size_t count);

#endif

/* The math functions of the cpu backend's loops. */
#ifndef TANDEM_CPU_VECTOR_MATH_H
#define TANDEM_CPU_VECTOR_MATH_H

#include <stddef.h>

/* x[i] = expf(x[i]) for count floats, 0 where expf would be subnormal (x <
 * -87). */
void tdm_cpu_exp_in_place(float *x, size_t count);

#endif

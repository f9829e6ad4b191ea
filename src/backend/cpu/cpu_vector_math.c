/* The cpu backend's exponentials. glibc's scalar expf: GCC keeps a loop of
 * expf calls scalar unless errno is given up, and libmvec's vector expf
 * measured no faster in EM, where the exponentials are about 1% of an
 * iteration (docs/dependencies.md). */
#include "backend/cpu/cpu_vector_math.h"

#include <math.h>

/* Below this expf is subnormal or 0 (and glibc's expf takes its slow path,
 * setting errno); such values become 0 here. */
#define TDM_EXP_LOWEST (-87.0f)

void tdm_cpu_exp_in_place(float *x, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        float in = x[i], e = expf(in < TDM_EXP_LOWEST ? TDM_EXP_LOWEST : in); /* NaN stays NaN */
        x[i] = in < TDM_EXP_LOWEST ? 0.0f : e;
    }
}

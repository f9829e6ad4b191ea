/* glibc's libmvec holds vector versions of expf under the vector function
 * ABI's names (_ZGVeN16v_expf and so on); declaring expf `simd` lets GCC
 * call them from a vectorised loop, as glibc's own math.h does only under
 * -ffast-math, which tandem does not use (it would drop NaN checks). */
#include "backend/cpu/cpu_vector_math.h"

#include <math.h>

#if defined(TANDEM_HAVE_LIBMVEC) && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((simd("notinbranch"))) float expf(float);
#define TDM_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TDM_VECTOR_CLONES
#endif

/* Below this expf is subnormal or 0, and libmvec would take its slow scalar
 * path for the whole vector (with errno); such values become 0 here. */
#define TDM_EXP_LOWEST (-87.0f)

TDM_VECTOR_CLONES
void tdm_cpu_exp_in_place(float *x, size_t count)
{
#pragma omp simd
    for (size_t i = 0; i < count; i++) {
        float in = x[i], e = expf(in < TDM_EXP_LOWEST ? TDM_EXP_LOWEST : in); /* NaN stays NaN */
        x[i] = in < TDM_EXP_LOWEST ? 0.0f : e;
    }
}

/* Sizes the kernels divide by: cl/common.cl's tdm_divisor, (d, m, s, 0)
 * with n / d = (hi32(n * m) + n) >> s for every n < 2^31 (the kernels'
 * indices: buffers hold at most 2^31 floats). A division by a runtime size
 * is a library loop on GPUs and has no vector form on CPUs; this is a
 * multiply and a shift. */
#ifndef TANDEM_OPENCL_DIVISOR_H
#define TANDEM_OPENCL_DIVISOR_H

#include <stdint.h>

#include "backend/opencl/cl_common.h"

typedef cl_uint4 cl_divisor;

/* d's multiplier and shift; d from 1 to 2^31. A size of 0 (an empty tensor,
 * where no work-item divides) gives all zeros rather than a host crash. */
static inline cl_divisor tdm_cl_divisor(uint32_t d)
{
    if (d == 0)
        return (cl_divisor){{0, 0, 0, 0}};
    uint32_t shift = 0;
    while (((uint64_t)1 << shift) < d)
        shift++;
    /* below 2^32: 2^shift - d < d */
    uint64_t magic = ((uint64_t)1 << 32) * (((uint64_t)1 << shift) - d) / d + 1;
    return (cl_divisor){{d, (cl_uint)magic, shift, 0}};
}

/* n / d as the kernels compute it (tdm_div in cl/common.cl). */
static inline uint32_t tdm_cl_divide(uint32_t n, cl_divisor d)
{
    uint32_t high = (uint32_t)(((uint64_t)n * d.s[1]) >> 32);
    return (high + n) >> d.s[2];
}

#endif

/* The multiply-and-shift division of the OpenCL kernels (tdm_div in
 * cl/common.cl, mirrored by tdm_cl_divide): exact for every divisor and
 * every index below 2^31, checked at the edges of each quotient and over
 * random pairs. The parity tests check that the kernels use it rightly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backend/opencl/cl_divisor.h"
#include "core/rng.h"

enum { INDEX_LIMIT = INT32_MAX }; /* kernels' indices are below 2^31 */

static void check(uint32_t n, uint32_t d, cl_divisor divisor)
{
    if (n > INDEX_LIMIT)
        return;
    uint32_t q = tdm_cl_divide(n, divisor);
    if (q != n / d)
        fail_msg("%u / %u: got %u, expected %u", n, d, q, n / d);
}

/* Around 0, around each multiple k * d for small k, and around the top. */
static void check_edges(uint32_t d)
{
    cl_divisor divisor = tdm_cl_divisor(d);
    assert_int_equal(divisor.s[0], d);
    for (uint32_t k = 0; k < 4; k++)
        for (int64_t delta = -1; delta <= 1; delta++)
            if ((int64_t)k * d + delta >= 0)
                check((uint32_t)((int64_t)k * d + delta), d, divisor);
    uint32_t top = INDEX_LIMIT / d * d;
    for (int64_t delta = -2; delta <= 2; delta++)
        check((uint32_t)((int64_t)top + delta), d, divisor);
    check(INDEX_LIMIT, d, divisor);
}

static void small_divisors_at_every_edge(void **state)
{
    (void)state;
    for (uint32_t d = 1; d <= 100000; d++)
        check_edges(d);
}

static void powers_of_two_and_neighbours(void **state)
{
    (void)state;
    for (int bit = 0; bit <= 31; bit++)
        for (int64_t delta = -1; delta <= 1; delta++) {
            int64_t d = ((int64_t)1 << bit) + delta;
            if (d >= 1 && d <= ((int64_t)1 << 31))
                check_edges((uint32_t)d);
        }
}

static void every_index_for_awkward_divisors(void **state)
{
    (void)state;
    const uint32_t divisors[] = {3, 7, 9, 641, 65537, 2147483647u};
    for (size_t i = 0; i < sizeof divisors / sizeof divisors[0]; i++) {
        cl_divisor divisor = tdm_cl_divisor(divisors[i]);
        for (uint32_t n = 0; n < (1u << 24); n++)
            check(n, divisors[i], divisor);
    }
}

static void zero_is_no_crash(void **state)
{
    (void)state;
    cl_divisor zero = tdm_cl_divisor(0);
    assert_true(zero.s[0] == 0 && zero.s[1] == 0 && zero.s[2] == 0);
}

static void random_pairs(void **state)
{
    (void)state;
    tdm_rng rng = {12345};
    for (int i = 0; i < 10000000; i++) {
        uint64_t bits = tdm_rng_next(&rng);
        uint32_t d = (uint32_t)(bits >> 33) + 1; /* 1 .. 2^31 */
        uint32_t n = (uint32_t)bits & INDEX_LIMIT;
        if (i % 2)
            d = d >> (bits % 31) | 1; /* small divisors too */
        check(n, d, tdm_cl_divisor(d));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(small_divisors_at_every_edge),
        cmocka_unit_test(powers_of_two_and_neighbours),
        cmocka_unit_test(every_index_for_awkward_divisors),
        cmocka_unit_test(random_pairs),
        cmocka_unit_test(zero_is_no_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Helpers shared by the tests: a seeded RNG and the list of backends. */
#ifndef TANDEM_TESTS_COMMON_H
#define TANDEM_TESTS_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include "tandem/tandem.h"

/* splitmix64: small, seedable, identical on every platform. */
typedef struct test_rng {
    uint64_t state;
} test_rng;

uint64_t test_rng_next(test_rng *rng);
float test_rng_uniform(test_rng *rng, float low, float high);
/* count values uniform in [-1, 1) from a generator seeded with seed. */
void test_fill_random(float *values, size_t count, uint64_t seed);

/* The base seed: TANDEM_TEST_SEED if set, else a fixed default. */
uint64_t test_base_seed(void);

/* CI=true: a missing OpenCL device fails the test instead of skipping. */
bool test_running_in_ci(void);

/* The cpu backend's threads: TANDEM_THREADS if set (tools/test.sh runs the
 * suite with 1 and 2), else 0, the default. */
size_t test_cpu_threads(void);

enum { TEST_MAX_BACKENDS = 8 };

/* backends[0] is cpu with test_cpu_threads(); the rest are every OpenCL
 * device found. */
typedef struct test_backends {
    tdm_backend *all[TEST_MAX_BACKENDS];
    size_t count;
    size_t opencl_count;
} test_backends;

/* Opens them and prints each one; false (with a message) when an OpenCL
 * device exists but fails to open, or none exists in CI. */
bool test_backends_open(test_backends *backends);
/* The same with environment settings (TANDEM_OPENCL_MAX_BUFFER, say) in
 * force while they open, then removed; fails the test unless they open. */
void test_backends_open_with(test_backends *backends, const char *const settings[][2],
                             size_t count);
void test_backends_close(test_backends *backends);

/* The backends of a test program, opened and closed by these cmocka group
 * fixtures. */
extern test_backends test_all_backends;
int test_open_all_backends(void **state);
int test_close_all_backends(void **state);

/* max |x - y| / max(|y|, rms(y)) over count values: a relative error that
 * small entries do not inflate; INFINITY where a difference is NaN. */
double test_max_relative_error(const float *x, const float *y, size_t count);

/* The bundled digits split as tandem train splits them (the [data] defaults). */
void test_load_digits(tdm_dataset *train, tdm_dataset *test);
/* The bundled digits binarised at 8, as tandem em reads them, with labels. */
tdm_binary_data test_binary_digits(void);

/* The [model] of a config file (its other sections are read and ignored). */
void test_load_model(const char *path, tdm_model_spec *spec);

#endif

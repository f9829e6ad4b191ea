#define _POSIX_C_SOURCE 200809L /* setenv, unsetenv */
#include "common.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

uint64_t test_rng_next(test_rng *rng)
{
    uint64_t z = (rng->state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

float test_rng_uniform(test_rng *rng, float low, float high)
{
    double unit = (double)(test_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(low + (high - low) * unit);
}

void test_fill_random(float *values, size_t count, uint64_t seed)
{
    test_rng rng = {seed};
    for (size_t i = 0; i < count; i++)
        values[i] = test_rng_uniform(&rng, -1.0f, 1.0f);
}

uint64_t test_base_seed(void)
{
    const char *text = getenv("TANDEM_TEST_SEED");
    return text && *text ? strtoull(text, NULL, 0) : 20261127ULL;
}

bool test_running_in_ci(void)
{
    const char *ci = getenv("CI");
    return ci && (strcmp(ci, "true") == 0 || strcmp(ci, "1") == 0);
}

static bool open_opencl_devices(test_backends *backends)
{
    tdm_opencl_device_info *devices = NULL;
    size_t count = 0;
    if (tdm_opencl_list_devices(&devices, &count) != TDM_OK)
        printf("no OpenCL device: %s\n", tdm_last_error());
    for (size_t i = 0; i < count && backends->count < TEST_MAX_BACKENDS; i++) {
        tdm_backend *backend = NULL;
        if (tdm_opencl_backend_create(devices[i].platform_index, devices[i].device_index,
                                      &backend) != TDM_OK) {
            printf("FAILED to open OpenCL device %zu:%zu: %s\n", devices[i].platform_index,
                   devices[i].device_index, tdm_last_error());
            free(devices);
            return false;
        }
        backends->all[backends->count++] = backend;
        backends->opencl_count++;
    }
    free(devices);
    return true;
}

size_t test_cpu_threads(void)
{
    tdm_device_config config;
    tdm_device_config_init(&config);
    const char *threads = getenv("TANDEM_THREADS");
    if (threads && tdm_device_config_set(&config, "threads", threads) != TDM_OK) {
        fprintf(stderr, "TANDEM_THREADS: %s\n", tdm_last_error());
        abort();
    }
    return config.threads;
}

bool test_backends_open(test_backends *backends)
{
    memset(backends, 0, sizeof *backends);
    if (tdm_cpu_backend_create_threads(test_cpu_threads(), &backends->all[0]) != TDM_OK) {
        printf("FAILED to create the cpu backend: %s\n", tdm_last_error());
        return false;
    }
    backends->count = 1;
    if (!open_opencl_devices(backends))
        return false;
    for (size_t i = 0; i < backends->count; i++)
        printf("backend %zu: %s\n", i, tdm_backend_description(backends->all[i]));
    if (backends->opencl_count == 0) {
        if (test_running_in_ci()) {
            printf("FAILED: CI=true but no OpenCL device was found (is pocl-opencl-icd "
                   "installed?)\n");
            return false;
        }
        printf("SKIPPING OpenCL parity: no OpenCL device on this machine\n");
    }
    return true;
}

void test_backends_open_with(test_backends *backends, const char *const settings[][2], size_t count)
{
    for (size_t i = 0; i < count; i++)
        setenv(settings[i][0], settings[i][1], 1);
    bool opened = test_backends_open(backends);
    for (size_t i = 0; i < count; i++)
        unsetenv(settings[i][0]);
    assert_true(opened);
}

double test_max_relative_error(const float *x, const float *y, size_t count)
{
    double squares = 0.0, worst = 0.0;
    for (size_t i = 0; i < count; i++)
        squares += (double)y[i] * y[i];
    double rms = sqrt(squares / (double)count);
    for (size_t i = 0; i < count; i++) {
        double diff = fabs((double)x[i] - y[i]);
        if (isnan(diff))
            return INFINITY;
        worst = fmax(worst, diff / fmax(fmax(fabs(y[i]), rms), 1e-30));
    }
    return worst;
}

void test_backends_close(test_backends *backends)
{
    for (size_t i = 0; i < backends->count; i++)
        tdm_backend_free(backends->all[i]);
    backends->count = 0;
}

test_backends test_all_backends;

int test_open_all_backends(void **state)
{
    (void)state;
    return test_backends_open(&test_all_backends) ? 0 : -1;
}

int test_close_all_backends(void **state)
{
    (void)state;
    test_backends_close(&test_all_backends);
    return 0;
}

/* Keys of sections a test does not look at. */
static tdm_status ignore_key(void *target, const char *key, const char *value)
{
    (void)target;
    (void)key;
    (void)value;
    return TDM_OK;
}

void test_load_model(const char *path, tdm_model_spec *spec)
{
    tdm_model_spec_init(spec);
    const tdm_config_section sections[] = {
        {"model", tdm_model_spec_set, spec}, {"device", ignore_key, NULL},
        {"data", ignore_key, NULL},          {"train", ignore_key, NULL},
        {"run", ignore_key, NULL},           {"em", ignore_key, NULL}};
    if (tdm_config_parse(path, sections, sizeof sections / sizeof sections[0]) != TDM_OK) {
        fprintf(stderr, "cannot read %s: %s\n", path, tdm_last_error());
        abort();
    }
}

tdm_binary_data test_binary_digits(void)
{
    tdm_dataset all;
    assert_int_equal(tdm_dataset_load_csv(TANDEM_SOURCE_DIR "/data/digits.csv.gz",
                                          (tdm_sample_shape){1, 8, 8}, 16, 10, &all),
                     TDM_OK);
    tdm_binary_data d;
    assert_int_equal(tdm_binary_from_dataset(&all, 8.0f, &d), TDM_OK);
    tdm_dataset_free(&all);
    return d;
}

void test_load_digits(tdm_dataset *train, tdm_dataset *test)
{
    tdm_data_config config;
    tdm_data_config_init(&config);
    snprintf(config.path, sizeof config.path, "%s/data/digits.csv.gz", TANDEM_SOURCE_DIR);
    assert_int_equal(tdm_data_config_load(&config, train, test), TDM_OK);
}

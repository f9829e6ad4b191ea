/* The on-disk program-binary cache: keys, atomic entries, corruption, and
 * a real OpenCL build through it (forced on, since PoCL caches itself). */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend/opencl/kernel_cache.h"
#include "common.h"

static char directory[256];

static void key_depends_on_every_part(void **state)
{
    (void)state;
    const char *base[] = {"source", "-cl-std=CL1.2", "device", "driver 1"};
    const char *other_driver[] = {"source", "-cl-std=CL1.2", "device", "driver 2"};
    const char *shifted[] = {"sourc", "e-cl-std=CL1.2", "device", "driver 1"};
    uint64_t key = tdm_kernel_cache_key(base, 4);
    assert_true(key == tdm_kernel_cache_key(base, 4));
    assert_true(key != tdm_kernel_cache_key(other_driver, 4));
    assert_true(key != tdm_kernel_cache_key(shifted, 4)); /* parts are separated */
}

static void directory_follows_environment(void **state)
{
    (void)state;
    char out[512];
    setenv("TANDEM_KERNEL_CACHE", "off", 1);
    assert_false(tdm_kernel_cache_directory(out, sizeof out));
    setenv("TANDEM_KERNEL_CACHE", "/somewhere/else", 1);
    assert_true(tdm_kernel_cache_directory(out, sizeof out));
    assert_string_equal(out, "/somewhere/else");
    unsetenv("TANDEM_KERNEL_CACHE");
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    assert_true(tdm_kernel_cache_directory(out, sizeof out));
    assert_string_equal(out, "/xdg/tandem/kernels");
    setenv("TANDEM_KERNEL_CACHE", directory, 1);
}

static void entry_path(uint64_t key, char *out, size_t size)
{
    snprintf(out, size, "%s/%016llx.bin", directory, (unsigned long long)key);
}

static void entries_round_trip_and_reject_corruption(void **state)
{
    (void)state;
    const unsigned char payload[] = "not really a binary, but bytes all the same";
    unsigned char *loaded = NULL;
    size_t size = 0;
    assert_int_equal(tdm_kernel_cache_load(directory, 42, &loaded, &size), TDM_ERR_NOT_FOUND);
    assert_int_equal(tdm_kernel_cache_store(directory, 42, payload, sizeof payload), TDM_OK);
    assert_int_equal(tdm_kernel_cache_load(directory, 42, &loaded, &size), TDM_OK);
    assert_int_equal(size, sizeof payload);
    assert_memory_equal(loaded, payload, size);
    free(loaded);

    char path[512];
    entry_path(42, path, sizeof path);
    FILE *file = fopen(path, "r+b");
    assert_non_null(file);
    fseek(file, 30, SEEK_SET);
    fputc('#', file); /* flip a payload byte: the checksum must catch it */
    fclose(file);
    assert_int_equal(tdm_kernel_cache_load(directory, 42, &loaded, &size), TDM_ERR_NOT_FOUND);
    assert_non_null(strstr(tdm_last_error(), "corrupt"));
    assert_int_equal(truncate(path, 20), 0);
    assert_int_equal(tdm_kernel_cache_load(directory, 42, &loaded, &size), TDM_ERR_NOT_FOUND);
    remove(path);
}

static size_t count_entries(void)
{
    char command[512];
    snprintf(command, sizeof command, "ls %s/*.bin 2>/dev/null | wc -l", directory);
    FILE *pipe = popen(command, "r");
    assert_non_null(pipe);
    unsigned long count = 0;
    assert_int_equal(fscanf(pipe, "%lu", &count), 1);
    pclose(pipe);
    return count;
}

/* Builds the program, then checks the backend really computes. */
static void open_and_fill(size_t platform, size_t device)
{
    tdm_backend *backend = NULL;
    tdm_buffer *buffer = NULL;
    float values[3] = {0};
    if (tdm_opencl_backend_create(platform, device, &backend) != TDM_OK)
        fail_msg("%s", tdm_last_error());
    assert_int_equal(tdm_buffer_alloc(backend, sizeof values, &buffer), TDM_OK);
    assert_int_equal(tdm_fill(backend, (tdm_view){buffer, 0}, 3, 2.5f), TDM_OK);
    assert_int_equal(tdm_buffer_download(buffer, 0, values, sizeof values), TDM_OK);
    assert_true(values[0] == 2.5f && values[2] == 2.5f);
    tdm_buffer_free(buffer);
    tdm_backend_free(backend);
}

static void opencl_build_uses_the_cache(void **state)
{
    (void)state;
    tdm_opencl_device_info *devices = NULL;
    size_t count = 0;
    if (tdm_opencl_list_devices(&devices, &count) != TDM_OK || count == 0) {
        if (test_running_in_ci())
            fail_msg("CI=true but no OpenCL device: %s", tdm_last_error());
        skip();
    }
    setenv("TANDEM_KERNEL_CACHE_ALL_DRIVERS", "1", 1);
    open_and_fill(devices[0].platform_index, devices[0].device_index);
    assert_int_equal(count_entries(), 1); /* written by the first build */
    open_and_fill(devices[0].platform_index, devices[0].device_index); /* loaded from it */
    assert_int_equal(count_entries(), 1);
    char command[512];
    snprintf(command, sizeof command, "for f in %s/*.bin; do echo junk > $f; done", directory);
    assert_int_equal(system(command), 0);
    open_and_fill(devices[0].platform_index, devices[0].device_index); /* falls back */
    unsetenv("TANDEM_KERNEL_CACHE_ALL_DRIVERS");
    free(devices);
}

static int make_directory(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(directory, sizeof directory, "%s/tandem-kcache-XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(directory))
        return -1;
    setenv("TANDEM_KERNEL_CACHE", directory, 1);
    return 0;
}

static int remove_directory(void **state)
{
    (void)state;
    char command[512];
    snprintf(command, sizeof command, "rm -rf '%s'", directory);
    return system(command) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_depends_on_every_part),
        cmocka_unit_test(directory_follows_environment),
        cmocka_unit_test(entries_round_trip_and_reject_corruption),
        cmocka_unit_test(opencl_build_uses_the_cache),
    };
    return cmocka_run_group_tests(tests, make_directory, remove_directory);
}

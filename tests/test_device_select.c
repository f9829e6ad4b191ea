/* Config files, device strings and the device choice, on made-up device lists. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tandem/tandem.h"

static tdm_opencl_device_info fake_device(size_t platform, size_t device, const char *platform_name,
                                          const char *device_name, const char *type)
{
    tdm_opencl_device_info info;
    memset(&info, 0, sizeof info);
    info.platform_index = platform;
    info.device_index = device;
    snprintf(info.platform_name, sizeof info.platform_name, "%s", platform_name);
    snprintf(info.platform_vendor, sizeof info.platform_vendor, "%s vendor", platform_name);
    snprintf(info.device_name, sizeof info.device_name, "%s", device_name);
    snprintf(info.type, sizeof info.type, "%s", type);
    info.is_gpu_or_accelerator = strcmp(type, "CPU") != 0;
    return info;
}

/* A PoCL CPU device on platform 0 and an NVIDIA GPU on platform 1. */
static void two_platforms(tdm_opencl_device_info devices[2])
{
    devices[0] = fake_device(0, 0, "Portable Computing Language", "pthread-znver3", "CPU");
    devices[1] = fake_device(1, 0, "NVIDIA CUDA", "NVIDIA H100 80GB HBM3", "GPU");
}

static tdm_device_choice choose_ok(const tdm_device_config *config,
                                   const tdm_opencl_device_info *devices, size_t count)
{
    tdm_device_choice choice;
    assert_int_equal(tdm_device_choose(config, devices, count, &choice), TDM_OK);
    return choice;
}

static void auto_prefers_gpu_and_falls_back_to_cpu_quietly(void **state)
{
    (void)state;
    tdm_opencl_device_info devices[2];
    two_platforms(devices);
    tdm_device_config config;
    tdm_device_config_init(&config);
    tdm_device_choice choice = choose_ok(&config, devices, 2);
    assert_true(choice.use_opencl);
    assert_int_equal(choice.device, 1);
    /* Only PoCL: auto means the cpu backend, and that is not a fallback. */
    choice = choose_ok(&config, devices, 1);
    assert_false(choice.use_opencl);
    assert_false(choice.fell_back);
}

/* Processes of one machine (spread = their local rank) take the matching
 * devices in turn; a device named outright is every process's. */
static void spread_shares_out_the_matching_devices(void **state)
{
    (void)state;
    tdm_opencl_device_info devices[4] = {
        fake_device(0, 0, "Portable Computing Language", "pthread-znver3", "CPU"),
        fake_device(1, 0, "NVIDIA CUDA", "NVIDIA H100 80GB HBM3", "GPU"),
        fake_device(1, 1, "NVIDIA CUDA", "NVIDIA H100 80GB HBM3", "GPU"),
        fake_device(1, 2, "NVIDIA CUDA", "NVIDIA H100 80GB HBM3", "GPU")};
    tdm_device_config config;
    tdm_device_config_init(&config);
    size_t expected[] = {1, 2, 3, 1, 2};
    for (size_t rank = 0; rank < 5; rank++) {
        config.spread = rank;
        assert_int_equal(choose_ok(&config, devices, 4).device, expected[rank]);
    }
    assert_int_equal(tdm_device_config_apply_string(&config, "opencl:1:2"), TDM_OK);
    config.spread = 1;
    assert_int_equal(choose_ok(&config, devices, 4).device, 3);
    assert_int_equal(tdm_device_config_apply_string(&config, "opencl"), TDM_OK);
    assert_int_equal(choose_ok(&config, devices, 4).device, 1); /* all four match */
}

static void opencl_picks_by_index_or_name(void **state)
{
    (void)state;
    tdm_opencl_device_info devices[2];
    two_platforms(devices);
    tdm_device_config config;
    tdm_device_config_init(&config);
    assert_int_equal(tdm_device_config_apply_string(&config, "opencl"), TDM_OK);
    assert_int_equal(choose_ok(&config, devices, 2).device, 0);
    assert_int_equal(tdm_device_config_apply_string(&config, "opencl:1:0"), TDM_OK);
    assert_int_equal(choose_ok(&config, devices, 2).device, 1);
    assert_int_equal(tdm_device_config_apply_string(&config, "opencl:nvidia"), TDM_OK);
    assert_int_equal(choose_ok(&config, devices, 2).device, 1);
    assert_int_equal(tdm_device_config_apply_string(&config, "opencl:0:PTHREAD"), TDM_OK);
    assert_int_equal(choose_ok(&config, devices, 2).device, 0);
    config.type = TDM_DEVICE_TYPE_GPU;
    assert_int_equal(tdm_device_config_apply_string(&config, "opencl"), TDM_OK);
    assert_int_equal(choose_ok(&config, devices, 2).device, 1);
    assert_int_equal(tdm_device_config_apply_string(&config, "cpu"), TDM_OK);
    assert_false(choose_ok(&config, devices, 2).use_opencl);
}

static void unmatched_device_follows_fallback(void **state)
{
    (void)state;
    tdm_opencl_device_info devices[2];
    two_platforms(devices);
    tdm_device_config config;
    tdm_device_config_init(&config);
    assert_int_equal(tdm_device_config_set(&config, "backend", "opencl"), TDM_OK);
    assert_int_equal(tdm_device_config_set(&config, "device", "no such device"), TDM_OK);
    tdm_device_choice choice = choose_ok(&config, devices, 2);
    assert_false(choice.use_opencl);
    assert_true(choice.fell_back);
    assert_non_null(strstr(choice.why, "no such device"));
    assert_int_equal(tdm_device_config_set(&config, "fallback", "error"), TDM_OK);
    assert_int_equal(tdm_device_choose(&config, devices, 2, &choice), TDM_ERR_NOT_FOUND);
    assert_non_null(strstr(tdm_last_error(), "no OpenCL device matches"));
    /* No devices at all (no driver installed) is the same case. */
    assert_int_equal(tdm_device_choose(&config, NULL, 0, &choice), TDM_ERR_NOT_FOUND);
}

static void bad_device_strings_are_rejected(void **state)
{
    (void)state;
    static const char *const bad[] = {"gpu", "cpu:0", "opencl:0:1:2", "", "OPENCL"};
    tdm_device_config config;
    tdm_device_config_init(&config);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(tdm_device_config_apply_string(&config, bad[i]), TDM_ERR_CONFIG);
        assert_non_null(strstr(tdm_last_error(), "invalid device"));
    }
    assert_int_equal(config.backend, TDM_BACKEND_AUTO); /* a failed string changes nothing */
    char long_string[400];
    memset(long_string, 'x', sizeof long_string - 1);
    long_string[sizeof long_string - 1] = '\0';
    assert_int_equal(tdm_device_config_apply_string(&config, long_string), TDM_ERR_CONFIG);
    assert_non_null(strstr(tdm_last_error(), "is too long"));
    memcpy(long_string, "opencl:", 7); /* fits the string, not the platform field */
    long_string[250] = '\0';
    assert_int_equal(tdm_device_config_apply_string(&config, long_string), TDM_ERR_CONFIG);
    assert_non_null(strstr(tdm_last_error(), "longer than 127 characters"));
    assert_int_equal(tdm_device_config_set(&config, "device", long_string), TDM_ERR_CONFIG);
}

static const char *write_config(const char *text)
{
    static char path[256];
    const char *directory = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/tandem-test-config-%ld.ini", directory ? directory : "/tmp",
             (long)getpid());
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    fputs(text, file);
    fclose(file);
    return path;
}

static tdm_status parse_device_config(const char *text, tdm_device_config *config)
{
    tdm_device_config_init(config);
    const tdm_config_section sections[] = {{"device", tdm_device_config_set, config}};
    const char *path = write_config(text);
    tdm_status status = tdm_config_parse(path, sections, 1);
    remove(path);
    return status;
}

static void config_file_sets_every_key(void **state)
{
    (void)state;
    tdm_device_config config;
    assert_int_equal(parse_device_config("; comment\n[device]\nbackend = opencl\nplatform = 1\n"
                                         "device = H100 ; inline comment\ntype = gpu\n"
                                         "fallback = error\n",
                                         &config),
                     TDM_OK);
    assert_int_equal(config.backend, TDM_BACKEND_OPENCL);
    assert_string_equal(config.platform, "1");
    assert_string_equal(config.device, "H100");
    assert_int_equal(config.type, TDM_DEVICE_TYPE_GPU);
    assert_int_equal(config.fallback, TDM_FALLBACK_ERROR);
}

/* Each bad config fails with "path:line: <what>". */
static void expect_config_error(const char *text, int line, const char *what)
{
    tdm_device_config config;
    assert_int_equal(parse_device_config(text, &config), TDM_ERR_CONFIG);
    char expected_line[32];
    snprintf(expected_line, sizeof expected_line, ".ini:%d: ", line);
    const char *message = tdm_last_error();
    if (!strstr(message, expected_line) || !strstr(message, what))
        fail_msg("config error '%s' lacks '%s' or '%s'", message, expected_line, what);
}

static void bad_config_names_file_and_line(void **state)
{
    (void)state;
    expect_config_error("[device]\nbackend = cpu\ncolour = red\n", 3, "unknown key 'colour'");
    expect_config_error("[device]\n\nbackend = gpu\n", 3, "invalid value 'gpu' for key 'backend'");
    expect_config_error("[device]\ntype = fast\n", 2, "expected any, gpu or cpu");
    expect_config_error("[device]\nfallback = maybe\n", 2, "expected cpu or error");
    expect_config_error("# top\n[devise]\nbackend = cpu\n", 3, "unknown section [devise]");
    expect_config_error("backend = cpu\n", 1, "outside any [section]");
    expect_config_error("[device]\nbackend cpu\n", 2, "malformed line");
    expect_config_error("[device]\nbackend = cpu\n[device\n", 3, "malformed line");
}

static void missing_config_file_is_named(void **state)
{
    (void)state;
    const tdm_config_section sections[] = {{"device", tdm_device_config_set, NULL}};
    assert_int_equal(tdm_config_parse("/nonexistent/tandem.ini", sections, 1), TDM_ERR_CONFIG);
    assert_non_null(strstr(tdm_last_error(), "/nonexistent/tandem.ini"));
    assert_non_null(strstr(tdm_last_error(), "No such file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(auto_prefers_gpu_and_falls_back_to_cpu_quietly),
        cmocka_unit_test(opencl_picks_by_index_or_name),
        cmocka_unit_test(spread_shares_out_the_matching_devices),
        cmocka_unit_test(unmatched_device_follows_fallback),
        cmocka_unit_test(bad_device_strings_are_rejected),
        cmocka_unit_test(config_file_sets_every_key),
        cmocka_unit_test(bad_config_names_file_and_line),
        cmocka_unit_test(missing_config_file_is_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

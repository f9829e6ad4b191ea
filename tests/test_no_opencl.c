/* A machine without any OpenCL driver: CTest runs this with OCL_ICD_VENDORS
 * pointing at an empty directory, which ocl-icd then searches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "tandem/tandem.h"

static void listing_says_no_driver(void **state)
{
    (void)state;
    tdm_opencl_device_info *devices = NULL;
    size_t count = 99;
    assert_int_equal(tdm_opencl_list_devices(&devices, &count), TDM_ERR_NOT_FOUND);
    assert_null(devices);
    assert_int_equal(count, 0);
    assert_non_null(strstr(tdm_last_error(), "no OpenCL driver installed"));
}

static tdm_status create(const char *backend_key, const char *fallback, tdm_backend **backend,
                         tdm_device_choice *choice)
{
    tdm_device_config config;
    tdm_device_config_init(&config);
    assert_int_equal(tdm_device_config_set(&config, "backend", backend_key), TDM_OK);
    assert_int_equal(tdm_device_config_set(&config, "fallback", fallback), TDM_OK);
    return tdm_backend_create_from_config(&config, backend, choice);
}

static void auto_and_fallback_use_cpu(void **state)
{
    (void)state;
    tdm_backend *backend = NULL;
    tdm_device_choice choice;
    assert_int_equal(create("auto", "error", &backend, &choice), TDM_OK);
    assert_string_equal(tdm_backend_name(backend), "cpu");
    assert_false(choice.fell_back);
    tdm_backend_free(backend);
    assert_int_equal(create("opencl", "cpu", &backend, &choice), TDM_OK);
    assert_string_equal(tdm_backend_name(backend), "cpu");
    assert_true(choice.fell_back);
    assert_non_null(strstr(choice.why, "no OpenCL driver installed"));
    tdm_backend_free(backend);
}

static void opencl_with_fallback_error_fails(void **state)
{
    (void)state;
    tdm_backend *backend = NULL;
    tdm_device_choice choice;
    assert_int_equal(create("opencl", "error", &backend, &choice), TDM_ERR_NOT_FOUND);
    assert_null(backend);
    assert_non_null(strstr(tdm_last_error(), "no OpenCL driver installed"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(listing_says_no_driver),
        cmocka_unit_test(auto_and_fallback_use_cpu),
        cmocka_unit_test(opencl_with_fallback_error_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

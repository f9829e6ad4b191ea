/* Every bad call is refused with a status and a message, on every backend. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "backend/backend_impl.h"
#include "backend/opencl/cl_common.h"
#include "backend/opencl/cl_devices.h"
#include "backend/opencl/cl_program.h"
#include "common.h"

static void expect_failure(tdm_status status, tdm_status expected, const char *fragment)
{
    assert_int_equal(status, expected);
    if (!strstr(tdm_last_error(), fragment))
        fail_msg("message '%s' lacks '%s'", tdm_last_error(), fragment);
    /* Messages carry the source location, relative to the source tree. */
    assert_non_null(strstr(tdm_last_error(), "(at src/"));
}

static void opencl_errors_have_names(void **state)
{
    (void)state;
    assert_string_equal(tdm_cl_error_name(-30), "CL_INVALID_VALUE");
    assert_string_equal(tdm_cl_error_name(-1), "CL_DEVICE_NOT_FOUND");
    assert_string_equal(tdm_cl_error_name(-1001), "CL_PLATFORM_NOT_FOUND_KHR");
    assert_string_equal(tdm_cl_error_name(-2046), "CLBlastInvalidLocalMemUsage");
    assert_string_equal(tdm_cl_error_name(-1017), "CLBlastInvalidDimension");
    assert_string_equal(tdm_cl_error_name(-777), "unknown OpenCL error -777");
}

static void bad_buffers_are_refused(void **state)
{
    (void)state;
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        tdm_buffer *buffer = NULL;
        float host[8] = {0};
        expect_failure(tdm_buffer_alloc(backend, 0, &buffer), TDM_ERR_INVALID_ARGUMENT,
                       "size must be > 0");
        assert_null(buffer);
        assert_int_equal(tdm_buffer_alloc(backend, 4 * sizeof(float), &buffer), TDM_OK);
        expect_failure(tdm_buffer_upload(buffer, 4, host, 4 * sizeof(float)),
                       TDM_ERR_INVALID_ARGUMENT, "outside the 16-byte buffer");
        expect_failure(tdm_buffer_download(buffer, 17, host, 0), TDM_ERR_INVALID_ARGUMENT,
                       "outside");
        tdm_buffer_free(buffer);
        /* OpenCL's kernels index in 32 bits: a buffer past 2^31 floats, or
         * past the device's CL_DEVICE_MAX_MEM_ALLOC_SIZE, is refused before
         * any allocation, naming the limit. */
        if (strcmp(tdm_backend_name(backend), "opencl") == 0) {
            assert_true(tdm_backend_max_buffer_bytes(backend) <= (size_t)1 << 33);
            expect_failure(tdm_buffer_alloc(backend, ((size_t)1 << 33) + 4, &buffer),
                           TDM_ERR_OUT_OF_MEMORY, "a buffer of 8589934596 bytes is more than");
            assert_true(strstr(tdm_last_error(), "(its CL_DEVICE_MAX_MEM_ALLOC_SIZE)") ||
                        strstr(tdm_last_error(), "(2^31 floats, what tandem's kernels index)"));
        }
    }
}

static void bad_views_are_refused(void **state)
{
    (void)state;
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b],
                    *other = test_all_backends.all[(b + 1) % test_all_backends.count];
        tdm_buffer *x = NULL, *foreign = NULL;
        assert_int_equal(tdm_buffer_alloc(backend, 10 * sizeof(float), &x), TDM_OK);
        assert_int_equal(tdm_buffer_alloc(other, 10 * sizeof(float), &foreign), TDM_OK);
        tdm_view whole = {x, 0}, tail = {x, 6};
        expect_failure(tdm_fill(backend, tail, 5, 1.0f), TDM_ERR_INVALID_ARGUMENT,
                       "needs floats [6, 6+5) but its buffer holds 10");
        expect_failure(tdm_copy(backend, whole, (tdm_view){x, 3}, 5), TDM_ERR_INVALID_ARGUMENT,
                       "overlap");
        expect_failure(tdm_axpy(backend, 4, 1.0f, whole, (tdm_view){x, 2}),
                       TDM_ERR_INVALID_ARGUMENT, "partially overlap");
        expect_failure(tdm_matrix_transpose(backend, 1, 2, 2, whole, (tdm_view){x, 2}),
                       TDM_ERR_INVALID_ARGUMENT, "transpose: source and destination overlap");
        expect_failure(tdm_matrix_transpose(backend, 1, 3, 3, whole, tail),
                       TDM_ERR_INVALID_ARGUMENT,
                       "transpose: operand dst needs floats [6, 6+9) but its buffer holds 10");
        expect_failure(tdm_matrix_transpose(backend, SIZE_MAX / 8, 2, 2, whole, tail),
                       TDM_ERR_INVALID_ARGUMENT, "matrices of 2 x 2 floats are too large");
        expect_failure(tdm_scale(backend, 1, 2.0f, (tdm_view){NULL, 0}), TDM_ERR_INVALID_ARGUMENT,
                       "has no buffer");
        if (other != backend)
            expect_failure(tdm_fill(backend, (tdm_view){foreign, 0}, 1, 0.0f),
                           TDM_ERR_INVALID_ARGUMENT, "lives on backend");
        assert_int_equal(tdm_fill(backend, whole, 0, 1.0f), TDM_OK); /* empty is fine */
        tdm_buffer_free(x);
        tdm_buffer_free(foreign);
    }
}

static void bad_gemm_shapes_are_refused(void **state)
{
    (void)state;
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        tdm_buffer *buffer = NULL;
        assert_int_equal(tdm_buffer_alloc(backend, 64 * sizeof(float), &buffer), TDM_OK);
        tdm_view v = {buffer, 0};
        tdm_sgemm_args args = {.m = 4,
                               .n = 4,
                               .k = 4,
                               .alpha = 1.0f,
                               .a = v,
                               .lda = 4,
                               .b = v,
                               .ldb = 4,
                               .c = {buffer, 32},
                               .ldc = 4};
        args.lda = 3;
        expect_failure(tdm_sgemm(backend, &args), TDM_ERR_INVALID_ARGUMENT,
                       "leading dimension of A is 3, smaller than its 4 columns");
        args.lda = 4;
        args.trans_b = TDM_TRANS;
        args.ldb = 2;
        expect_failure(tdm_sgemm(backend, &args), TDM_ERR_INVALID_ARGUMENT,
                       "leading dimension of B");
        args.ldb = 4;
        args.c.offset = 50;
        expect_failure(tdm_sgemm(backend, &args), TDM_ERR_INVALID_ARGUMENT,
                       "operand C needs floats [50, 50+16)");
        tdm_buffer_free(buffer);
    }
}

static void unknown_ops_are_unsupported(void **state)
{
    (void)state;
    for (size_t b = 0; b < test_all_backends.count; b++)
        assert_false(tdm_backend_supports_op(test_all_backends.all[b], TDM_OP_COUNT));
    assert_string_equal(tdm_op_name(TDM_OP_SGEMM), "sgemm");
}

/* Support is read from the backend's table, and a table of another
 * interface version is refused. */
static void support_comes_from_the_table(void **state)
{
    (void)state;
    static const struct tdm_backend_iface sparse = {.version = TDM_BACKEND_IFACE_VERSION};
    static const struct tdm_backend_iface old = {.version = TDM_BACKEND_IFACE_VERSION - 1};
    tdm_backend backend = {0};
    expect_failure(tdm_backend_init(&backend, &old, "old"), TDM_ERR_INVALID_ARGUMENT,
                   "backend 'old' was built for interface version");
    assert_int_equal(tdm_backend_init(&backend, &sparse, "sparse"), TDM_OK);
    for (int op = 0; op < TDM_OP_COUNT; op++)
        assert_false(tdm_backend_supports_op(&backend, (tdm_op)op));
    expect_failure(tdm_relu(&backend, 1, (tdm_view){0}, (tdm_view){0}), TDM_ERR_UNSUPPORTED,
                   "relu");
    for (int op = 0; op < TDM_OP_COUNT; op++) /* the real backends have every entry */
        for (size_t b = 0; b < test_all_backends.count; b++)
            assert_true(tdm_backend_supports_op(test_all_backends.all[b], (tdm_op)op));
}

/* A fill is one kernel launch and a download one wait on an OpenCL backend;
 * the cpu backend counts neither. */
static void counts_follow_launches_and_waits(void **state)
{
    (void)state;
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        bool opencl = strcmp(tdm_backend_name(backend), "opencl") == 0;
        tdm_buffer *buffer = NULL;
        float value = 0.0f;
        assert_int_equal(tdm_buffer_alloc(backend, 16 * sizeof(float), &buffer), TDM_OK);
        tdm_backend_counts before = tdm_backend_get_counts(backend);
        assert_int_equal(tdm_fill(backend, (tdm_view){buffer, 0}, 16, 2.0f), TDM_OK);
        assert_int_equal(tdm_buffer_download(buffer, 0, &value, sizeof value), TDM_OK);
        tdm_backend_counts after = tdm_backend_get_counts(backend);
        assert_true(value == 2.0f);
        assert_int_equal(after.launches - before.launches, opencl ? 1 : 0);
        assert_int_equal(after.waits - before.waits, opencl ? 1 : 0);
        tdm_buffer_free(buffer);
    }
}

/* The bit-packed EM ops refuse shapes that do not match their views, a
 * bits view off a word, and outputs on their inputs; leaky_relu refuses a
 * non-finite slope; the cpu backend refuses absurd thread counts. */
static void bits_leaky_relu_and_threads_arguments(void **state)
{
    (void)state;
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        tdm_buffer *buffer = NULL;
        assert_int_equal(tdm_buffer_alloc(backend, 8192 * sizeof(float), &buffer), TDM_OK);
        /* 3 rows of 70 columns (2 words each), K = 2: bits 12 floats, table 9 x 256 x 2. */
        tdm_bits_shape s = {.rows = 3, .cols = 70, .row_words = 2, .components = 2};
        tdm_view bits = {buffer, 0}, table = {buffer, 100}, bias = {buffer, 4800},
                 out = {buffer, 4900};
        assert_int_equal(tdm_bits_scores(backend, &s, bits, table, bias, out), TDM_OK);
        assert_int_equal(tdm_bits_sums(backend, &s, bits, (tdm_view){buffer, 100}, out), TDM_OK);
        tdm_bits_shape wrong_words = s;
        wrong_words.row_words = 1;
        expect_failure(tdm_bits_scores(backend, &wrong_words, bits, table, bias, out),
                       TDM_ERR_INVALID_ARGUMENT, "1 words a row for 70 columns, expected 2");
        tdm_bits_shape no_components = s;
        no_components.components = 0;
        expect_failure(tdm_bits_sums(backend, &no_components, bits, table, out),
                       TDM_ERR_INVALID_ARGUMENT, "cols and components must be > 0");
        expect_failure(tdm_bits_scores(backend, &s, (tdm_view){buffer, 1}, table, bias, out),
                       TDM_ERR_INVALID_ARGUMENT, "does not start on a word");
        expect_failure(tdm_bits_scores(backend, &s, bits, table, bias, (tdm_view){buffer, 4}),
                       TDM_ERR_INVALID_ARGUMENT, "output scores overlaps an input");
        expect_failure(tdm_bits_sums(backend, &s, bits, table, (tdm_view){buffer, 90}),
                       TDM_ERR_INVALID_ARGUMENT, "output sums overlaps an input");
        expect_failure(tdm_bits_scores(backend, &s, bits, (tdm_view){buffer, 7900}, bias, out),
                       TDM_ERR_INVALID_ARGUMENT, "table");
        expect_failure(tdm_leaky_relu(backend, 4, NAN, bits, out), TDM_ERR_INVALID_ARGUMENT,
                       "leaky_relu: the parameter nan is not finite");
        expect_failure(tdm_leaky_relu_backward(backend, 4, INFINITY, bits, table, out),
                       TDM_ERR_INVALID_ARGUMENT, "the parameter inf is not finite");
        tdm_buffer_free(buffer);
    }
    tdm_backend *cpu = NULL;
    expect_failure(tdm_cpu_backend_create_threads(TDM_CPU_MAX_THREADS + 1, &cpu),
                   TDM_ERR_INVALID_ARGUMENT, "threads is more than the 1024 allowed");
    assert_null(cpu);
    tdm_binary_data empty;
    expect_failure(tdm_binary_alloc(0, 5, &empty), TDM_ERR_INVALID_ARGUMENT,
                   "0 x 5 binary values cannot be stored");
    assert_null(empty.bits);
}

/* The few-tap weight gradient keeps TDM_CONV_COL_MAX_TAPS sums a channel
 * (cl/conv.cl's unrolled lanes): a backend refuses more, should a layer ever
 * pass them, instead of writing past its lanes. */
static void col_weight_gradient_refuses_too_many_taps(void **state)
{
    (void)state;
    /* 17 taps: 17 channels of 1 x 1 over 2 x 2 images */
    tdm_conv2d_shape s = {1, TDM_CONV_COL_MAX_TAPS + 1, 2, 2, 1, 1, 1, 1, 1, 0, 0};
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        tdm_buffer *buffer = NULL;
        assert_int_equal(tdm_buffer_alloc(backend, 256 * sizeof(float), &buffer), TDM_OK);
        expect_failure(backend->iface->conv_col_weight_gradient(backend, &s, (tdm_view){buffer, 0},
                                                                (tdm_view){buffer, 64},
                                                                (tdm_view){buffer, 192}),
                       TDM_ERR_INVALID_ARGUMENT, "17 taps a sample, at most 16");
        tdm_buffer_free(buffer);
    }
}

/* The linear layer without a GEMM takes at most TDM_SMALL_LINEAR_MAX_WEIGHTS
 * weights (the cpu backend keeps them transposed on its stack): a backend
 * refuses more, should a layer ever pass them. */
static void small_linear_refuses_too_many_weights(void **state)
{
    (void)state;
    tdm_linear_shape s = {1, TDM_SMALL_LINEAR_MAX_WEIGHTS / 2 + 1, 2, 0, false}; /* 4098 weights */
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        tdm_buffer *buffer = NULL;
        assert_int_equal(tdm_buffer_alloc(backend, 8192 * sizeof(float), &buffer), TDM_OK);
        tdm_view x = {buffer, 0}, w = {buffer, 2100}, y = {buffer, 6200};
        expect_failure(backend->iface->small_linear(backend, &s, x, w, (tdm_view){0}, y),
                       TDM_ERR_INVALID_ARGUMENT, "small_linear: 2 x 2049 weights, at most 4096");
        expect_failure(backend->iface->small_linear_backward(backend, &s, x, w, y, (tdm_view){0},
                                                             (tdm_view){0}, (tdm_view){0}),
                       TDM_ERR_INVALID_ARGUMENT, "small_linear_backward: 2 x 2049 weights");
        tdm_buffer_free(buffer);
    }
}

static void opencl_missing_device_is_named(void **state)
{
    (void)state;
    tdm_backend *backend = NULL;
    expect_failure(tdm_opencl_backend_create(0, 999, &backend), TDM_ERR_NOT_FOUND,
                   "has no device 999");
    assert_null(backend);
}

/* A kernel that does not compile: the message carries the driver's build log. */
static void kernel_build_failure_shows_the_log(void **state)
{
    (void)state;
    cl_platform_id platform;
    cl_device_id device;
    if (test_all_backends.opencl_count == 0)
        skip(); /* test_backends_open already failed the run in CI */
    assert_int_equal(tdm_cl_find_device(0, 0, &platform, &device), TDM_OK);
    cl_int err = CL_SUCCESS;
    cl_context context = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    const char *broken[] = {"__kernel void broken(__global float *x) { x[0] = undeclared_name; }"};
    cl_program program = NULL;
    expect_failure(tdm_cl_build_from_sources(context, device, "-cl-std=CL1.2", broken, 1, &program),
                   TDM_ERR_KERNEL_BUILD, "clBuildProgram failed: CL_BUILD_PROGRAM_FAILURE");
    assert_non_null(strstr(tdm_last_error(), "--- OpenCL build log ---"));
    assert_non_null(strstr(tdm_last_error(), "undeclared_name"));
    assert_null(program);
    clReleaseContext(context);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(opencl_errors_have_names),
        cmocka_unit_test(bad_buffers_are_refused),
        cmocka_unit_test(bad_views_are_refused),
        cmocka_unit_test(bad_gemm_shapes_are_refused),
        cmocka_unit_test(unknown_ops_are_unsupported),
        cmocka_unit_test(support_comes_from_the_table),
        cmocka_unit_test(bits_leaky_relu_and_threads_arguments),
        cmocka_unit_test(counts_follow_launches_and_waits),
        cmocka_unit_test(col_weight_gradient_refuses_too_many_taps),
        cmocka_unit_test(small_linear_refuses_too_many_weights),
        cmocka_unit_test(opencl_missing_device_is_named),
        cmocka_unit_test(kernel_build_failure_shows_the_log),
    };
    return cmocka_run_group_tests(tests, test_open_all_backends, test_close_all_backends);
}

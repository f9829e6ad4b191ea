/* tandem devices and tandem selftest: what OpenCL devices there are, which
 * one the config picks, and whether its SGEMM agrees with the cpu backend. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "cli/errors.h"
#include "core/clock.h"

static void print_opencl_device(size_t number, const tdm_opencl_device_info *info, bool chosen)
{
    printf("%c [%zu] opencl %zu:%zu  %s\n", chosen ? '*' : ' ', number, info->platform_index,
           info->device_index, info->device_name);
    printf("        platform %s (%s), vendor %s\n", info->platform_name, info->platform_vendor,
           info->device_vendor);
    const double gib = 1024.0 * 1024 * 1024;
    printf("        %s, %s, %.1f GiB global memory (%.1f GiB a buffer), %u compute units, driver "
           "%s\n",
           info->type, info->opencl_c_version, (double)info->global_memory_bytes / gib,
           (double)info->max_alloc_bytes / gib, info->compute_units, info->driver_version);
    char tuning[512];
    tdm_opencl_tuning_status(info, tuning, sizeof tuning);
    printf("        %s\n", tuning);
}

int cmd_devices(const cli_options *options)
{
    cli_config config;
    tdm_device_choice choice = {0};
    tdm_opencl_device_info *devices = NULL;
    size_t count = 0;
    if (cli_load_config(options, &config) != TDM_OK)
        return cli_fail();
    if (tdm_opencl_list_devices(&devices, &count) != TDM_OK)
        printf("  (no OpenCL devices: %s)\n", tdm_last_error());
    tdm_status chosen = tdm_device_choose(&config.device, devices, count, &choice);
    for (size_t i = 0; i < count; i++)
        print_opencl_device(i, &devices[i],
                            chosen == TDM_OK && choice.use_opencl && choice.device == i);
    tdm_backend *cpu = NULL;
    tdm_status cpu_status = tdm_cpu_backend_create_threads(config.device.threads, &cpu);
    printf("%c [%zu] cpu     %s\n", chosen == TDM_OK && !choice.use_opencl ? '*' : ' ', count,
           cpu_status == TDM_OK ? tdm_backend_description(cpu) : tdm_last_error());
    tdm_backend_free(cpu);
    free(devices);
    if (chosen != TDM_OK) {
        printf("  none is marked: %s\n", tdm_last_error());
        return 1;
    }
    if (choice.fell_back)
        printf("  cpu is marked because %s (fallback = cpu)\n", choice.why);
    return 0;
}

/* ---------- tune ---------- */

static void tune_progress(void *user, size_t done, size_t total, double gflops, double best)
{
    const cli_options *options = user;
    if (!options->quiet)
        fprintf(stderr, "tandem: tune: candidate %zu of %zu: %s (best %.1f GFLOP/s)\n", done, total,
                gflops > 0 ? "ok" : "failed or wrong results", best);
}

int cmd_tune(const cli_options *options)
{
    cli_config config;
    tdm_backend *backend = NULL;
    tdm_tune_report report;
    const char *limit = getenv("TANDEM_TUNE_CANDIDATES");
    tdm_tune_options tune = {.max_candidates = limit ? strtoul(limit, NULL, 10) : 0,
                             .progress = tune_progress,
                             .user = (void *)options};
    if (cli_load_config(options, &config) != TDM_OK ||
        cli_open_backend(options, &config, &backend) != TDM_OK ||
        tdm_opencl_tune(backend, &tune, &report) != TDM_OK) {
        tdm_backend_free(backend);
        return cli_fail();
    }
    printf("CLBlast SGEMM on tandem's GEMM shapes: %.1f GFLOP/s with its defaults, %.1f tuned "
           "(%zu of %zu candidates valid)\nsaved to %s; the backend applies it from now on\n",
           report.default_gflops, report.tuned_gflops, report.valid, report.tried, report.path);
    tdm_backend_free(backend);
    return 0;
}

/* ---------- selftest ---------- */

/* Large enough that a GEMM library runs its main kernel at full speed. */
enum { SELFTEST_SIZE = 512 };

typedef struct selftest_matrices {
    tdm_buffer *a, *b, *c;
} selftest_matrices;

/* C = A B for square random matrices on one backend; returns C in host memory. */
static tdm_status run_square_gemm(tdm_backend *backend, const float *a, const float *b, float *c,
                                  double *seconds)
{
    const size_t n = SELFTEST_SIZE, bytes = n * n * sizeof(float);
    selftest_matrices m = {0};
    tdm_status status = tdm_buffer_alloc(backend, bytes, &m.a);
    if (status == TDM_OK)
        status = tdm_buffer_alloc(backend, bytes, &m.b);
    if (status == TDM_OK)
        status = tdm_buffer_alloc(backend, bytes, &m.c);
    if (status == TDM_OK)
        status = tdm_buffer_upload(m.a, 0, a, bytes);
    if (status == TDM_OK)
        status = tdm_buffer_upload(m.b, 0, b, bytes);
    tdm_sgemm_args args = {.m = n,
                           .n = n,
                           .k = n,
                           .alpha = 1.0f,
                           .a = {m.a, 0},
                           .lda = n,
                           .b = {m.b, 0},
                           .ldb = n,
                           .beta = 0.0f,
                           .c = {m.c, 0},
                           .ldc = n};
    /* The first call compiles kernels; time the second. */
    for (int round = 0; round < 2 && status == TDM_OK; round++) {
        double start = tdm_monotonic_seconds();
        status = tdm_sgemm(backend, &args);
        if (status == TDM_OK)
            status = tdm_backend_synchronize(backend);
        *seconds = tdm_monotonic_seconds() - start;
    }
    if (status == TDM_OK)
        status = tdm_buffer_download(m.c, 0, c, bytes);
    tdm_buffer_free(m.a);
    tdm_buffer_free(m.b);
    tdm_buffer_free(m.c);
    return status;
}

static double max_relative_difference(const float *x, const float *reference, size_t count)
{
    double worst = 0.0, scale = 0.0;
    for (size_t i = 0; i < count; i++)
        scale = fmax(scale, fabs(reference[i]));
    for (size_t i = 0; i < count; i++)
        worst = fmax(worst, fabs((double)x[i] - reference[i]) / fmax(scale, 1e-30));
    return worst;
}

int cmd_selftest(const cli_options *options)
{
    const size_t n = SELFTEST_SIZE;
    tdm_backend *device = NULL, *cpu = NULL;
    float *a = malloc(n * n * sizeof *a), *b = malloc(n * n * sizeof *b);
    float *c = malloc(n * n * sizeof *c), *c_ref = malloc(n * n * sizeof *c_ref);
    double device_seconds = 0, cpu_seconds = 0;
    int exit_code = 1;
    if (!a || !b || !c || !c_ref) {
        fputs("tandem: error: out of memory\n", stderr);
        goto done;
    }
    srand(12345);
    for (size_t i = 0; i < n * n; i++) {
        a[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        b[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    }
    cli_config config;
    if (cli_load_config(options, &config) != TDM_OK ||
        cli_open_backend(options, &config, &device) != TDM_OK ||
        tdm_cpu_backend_create_threads(config.device.threads, &cpu) != TDM_OK ||
        run_square_gemm(device, a, b, c, &device_seconds) != TDM_OK ||
        run_square_gemm(cpu, a, b, c_ref, &cpu_seconds) != TDM_OK) {
        exit_code = cli_fail();
        goto done;
    }
    double error = max_relative_difference(c, c_ref, n * n);
    double flops = 2.0 * (double)n * (double)n * (double)n;
    printf("sgemm %zux%zux%zu on %s: %.2f ms (%.1f GFLOP/s)\n", n, n, n,
           tdm_backend_description(device), device_seconds * 1e3, flops / device_seconds * 1e-9);
    printf("sgemm %zux%zux%zu on %s: %.2f ms (%.1f GFLOP/s)\n", n, n, n,
           tdm_backend_description(cpu), cpu_seconds * 1e3, flops / cpu_seconds * 1e-9);
    /* 512-term float32 dot products: rounding is ~1e-6 of the largest entry. */
    const double tolerance = 1e-4;
    printf("max difference from the cpu backend: %.2e of the largest entry (tolerance %.0e): %s\n",
           error, tolerance, error <= tolerance ? "ok" : "FAILED");
    exit_code = error <= tolerance ? 0 : 1;
done:
    tdm_backend_free(device);
    tdm_backend_free(cpu);
    free(a);
    free(b);
    free(c);
    free(c_ref);
    return exit_code;
}

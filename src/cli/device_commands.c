/* tandem devices and tandem tune: what OpenCL devices there are, which one
 * the config picks, and CLBlast tuned for it. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "cli/errors.h"

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

/* ms per epoch of the source's protocol (ResNet(C) on the digits, SGD batch
 * 128, lr 0.1, then evaluation of both sets in eval mode) for each C on each
 * backend: the cpu backend and every OpenCL device, each C on every backend
 * in turn (so that a ratio compares runs close in time). One line per run:
 *   tandem <backend> <C> <ms per epoch> <final train error> <final test error>
 *          <kernel launches per epoch> <waits for the device per epoch>
 * (an epoch: 13 training steps of 128 digits, then both sets evaluated; the
 * cpu backend launches no kernels and never waits: 0 0)
 * Usage: bench_train DATA_CSV EPOCHS [C ...]   (default C: 1 2 4 64)
 * bench/run.sh runs it beside the PyTorch reference and writes the table. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_threads.h"
#include "tandem/tandem.h"
#include "core/clock.h"

static tdm_status keep_last(void *user, tdm_trainer *trainer, const tdm_metrics *m)
{
    (void)trainer;
    *(tdm_metrics *)user = *m;
    return TDM_OK;
}

/* One warm-up epoch (kernel compilation, first allocations), then the timed run. */
static int time_one(tdm_backend *backend, const char *name, size_t channels, size_t epochs,
                    const tdm_dataset *train, const tdm_dataset *test)
{
    tdm_model_spec spec;
    tdm_train_options options;
    tdm_train_options_init(&options);
    tdm_trainer *trainer = NULL;
    tdm_metrics last = {0};
    if (tdm_model_spec_resnet(channels, (tdm_sample_shape){1, 8, 8}, 10, &spec) != TDM_OK)
        return 1;
    options.epochs = 1;
    if (tdm_trainer_create(backend, &spec, train, test, &options, &trainer) != TDM_OK ||
        tdm_trainer_run(trainer, keep_last, &last) != TDM_OK)
        return 1;
    tdm_trainer_free(trainer);
    options.epochs = epochs;
    if (tdm_trainer_create(backend, &spec, train, test, &options, &trainer) != TDM_OK)
        return 1;
    tdm_backend_counts before = tdm_backend_get_counts(backend);
    double start = tdm_monotonic_seconds();
    tdm_status status = tdm_trainer_run(trainer, keep_last, &last);
    double seconds = tdm_monotonic_seconds() - start;
    tdm_backend_counts after = tdm_backend_get_counts(backend);
    tdm_trainer_free(trainer);
    if (status != TDM_OK)
        return 1;
    printf("tandem %s %zu %.3f %.4f %.4f %.0f %.0f\n", name, channels,
           1e3 * seconds / (double)epochs, last.train_error, last.test_error,
           (double)(after.launches - before.launches) / (double)epochs,
           (double)(after.waits - before.waits) / (double)epochs);
    fflush(stdout);
    return 0;
}

enum { MAX_BACKENDS = 17 };

/* The cpu backend, then every OpenCL device, each with its name for the
 * output, into backends[*count]; non-zero when one fails to open. */
static int open_backends(tdm_backend **backends, char names[][64], size_t *count)
{
    *count = 0;
    if (bench_cpu_backend(&backends[0]) != TDM_OK)
        return 1;
    snprintf(names[(*count)++], 64, "cpu");
    tdm_opencl_device_info *devices = NULL;
    size_t device_count = 0;
    int failed = 0;
    if (tdm_opencl_list_devices(&devices, &device_count) == TDM_OK)
        for (size_t d = 0; d < device_count && *count < MAX_BACKENDS && !failed; d++) {
            failed = tdm_opencl_backend_create(devices[d].platform_index, devices[d].device_index,
                                               &backends[*count]) != TDM_OK;
            if (!failed)
                snprintf(names[(*count)++], 64, "opencl:%zu:%zu", devices[d].platform_index,
                         devices[d].device_index);
        }
    free(devices);
    return failed;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fputs("usage: bench_train DATA_CSV EPOCHS [C ...]\n", stderr);
        return 2;
    }
    size_t channels[16] = {1, 2, 4, 64}, count = 4, epochs = strtoul(argv[2], NULL, 10);
    if (argc > 3)
        for (count = 0; count < 16 && (int)count + 3 < argc; count++)
            channels[count] = strtoul(argv[count + 3], NULL, 10);
    tdm_data_config data;
    tdm_data_config_init(&data);
    snprintf(data.path, sizeof data.path, "%s", argv[1]);
    tdm_dataset train, test;
    tdm_backend *backends[MAX_BACKENDS] = {NULL};
    char names[MAX_BACKENDS][64];
    size_t backend_count = 0;
    int failed = tdm_data_config_load(&data, &train, &test) != TDM_OK ||
                 open_backends(backends, names, &backend_count) != 0;
    for (size_t b = 0; b < backend_count; b++)
        fprintf(stderr, "bench: %s\n", tdm_backend_description(backends[b]));
    /* Each C on every backend in turn: a ratio between backends compares
       runs minutes apart at most, not the whole sweep apart (the machine's
       speed drifts). */
    for (size_t i = 0; i < count && !failed; i++)
        for (size_t b = 0; b < backend_count && !failed; b++)
            failed = time_one(backends[b], names[b], channels[i], epochs, &train, &test) != 0;
    for (size_t b = 0; b < backend_count; b++)
        tdm_backend_free(backends[b]);
    if (failed)
        fprintf(stderr, "bench: %s\n", tdm_last_error());
    tdm_dataset_free(&train);
    tdm_dataset_free(&test);
    return failed;
}

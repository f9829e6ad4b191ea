/* How far two runs of ResNet(4) on the digits drift apart over EPOCHS
 * epochs from the same seed: the cpu backend against every OpenCL device,
 * and, as the control, the cpu backend against itself with one initial
 * weight moved by one ulp. Prints, per pair, the first epoch whose losses
 * differ by more than 1e-4 relative, the largest relative loss difference,
 * and the final errors.
 * Usage: bench_agreement DATA_CSV EPOCHS */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tandem/tandem.h"

enum { MAX_EPOCHS = 4001 };

typedef struct curve {
    tdm_metrics rows[MAX_EPOCHS];
    size_t count;
} curve;

static tdm_status record(void *user, tdm_trainer *trainer, const tdm_metrics *m)
{
    (void)trainer;
    curve *c = user;
    if (c->count < MAX_EPOCHS)
        c->rows[c->count++] = *m;
    return TDM_OK;
}

static int train(tdm_backend *backend, size_t epochs, bool nudge, const tdm_dataset *train_set,
                 const tdm_dataset *test_set, curve *out)
{
    tdm_model_spec spec;
    tdm_train_options options;
    tdm_train_options_init(&options);
    options.epochs = epochs;
    tdm_trainer *trainer = NULL;
    out->count = 0;
    if (tdm_model_spec_resnet(4, (tdm_sample_shape){1, 8, 8}, 10, &spec) != TDM_OK ||
        tdm_trainer_create(backend, &spec, train_set, test_set, &options, &trainer) != TDM_OK)
        return 1;
    if (nudge) { /* the first weight, one ulp up */
        tdm_model *model = tdm_trainer_model(trainer);
        float params[398];
        tdm_model_get_parameters(model, params);
        params[0] = nextafterf(params[0], INFINITY);
        tdm_model_set_parameters(model, params);
    }
    int failed = tdm_trainer_run(trainer, record, out) != TDM_OK;
    tdm_trainer_free(trainer);
    return failed;
}

static void compare(const char *what, const curve *a, const curve *b)
{
    size_t first = 0;
    double worst = 0.0;
    for (size_t e = 0; e < a->count && e < b->count; e++) {
        double d = fmax(fabs(a->rows[e].train_loss - b->rows[e].train_loss) / b->rows[e].train_loss,
                        fabs(a->rows[e].test_loss - b->rows[e].test_loss) / b->rows[e].test_loss);
        if (d > 1e-4 && first == 0)
            first = e;
        worst = fmax(worst, d);
    }
    const tdm_metrics *x = &a->rows[a->count - 1], *y = &b->rows[b->count - 1];
    printf("%-40s first epoch > 1e-4: %4zu  largest loss difference %6.1f%%  final train error "
           "%.2f%% vs %.2f%%, test error %.2f%% vs %.2f%%\n",
           what, first, 100 * worst, 100 * x->train_error, 100 * y->train_error,
           100 * x->test_error, 100 * y->test_error);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return fputs("usage: bench_agreement DATA_CSV EPOCHS\n", stderr), 2;
    size_t epochs = strtoul(argv[2], NULL, 10);
    static curve cpu, other;
    tdm_data_config data;
    tdm_data_config_init(&data);
    snprintf(data.path, sizeof data.path, "%s", argv[1]);
    tdm_dataset train_set, test_set;
    tdm_backend *backend = NULL;
    if (epochs == 0 || epochs >= MAX_EPOCHS ||
        tdm_data_config_load(&data, &train_set, &test_set) != TDM_OK ||
        tdm_cpu_backend_create(&backend) != TDM_OK ||
        train(backend, epochs, false, &train_set, &test_set, &cpu) != 0 ||
        train(backend, epochs, true, &train_set, &test_set, &other) != 0)
        return fprintf(stderr, "bench: %s\n", tdm_last_error()), 1;
    compare("cpu vs cpu with one weight +1 ulp", &other, &cpu);
    tdm_backend_free(backend);
    tdm_opencl_device_info *devices = NULL;
    size_t count = 0;
    if (tdm_opencl_list_devices(&devices, &count) != TDM_OK)
        count = 0;
    for (size_t d = 0; d < count; d++) {
        if (tdm_opencl_backend_create(devices[d].platform_index, devices[d].device_index,
                                      &backend) != TDM_OK ||
            train(backend, epochs, false, &train_set, &test_set, &other) != 0)
            return fprintf(stderr, "bench: %s\n", tdm_last_error()), 1;
        char what[200];
        snprintf(what, sizeof what, "%.24s vs cpu", devices[d].device_name);
        compare(what, &other, &cpu);
        tdm_backend_free(backend);
    }
    free(devices);
    tdm_dataset_free(&train_set);
    tdm_dataset_free(&test_set);
    return 0;
}

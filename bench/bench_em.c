/* ms per EM iteration on synthetic data (n x D binary rows drawn from a
 * random K-component mixture) on the cpu backend and every OpenCL device,
 * from a given start: the time between the first and the last of ITERS + 1
 * iteration callbacks, so loading, the first upload and the final scoring
 * pass are not counted. One line per backend:
 * `tandem <backend> <n> <D> <K> <ms per iteration>`.
 * Usage: bench_em N D K ITERS */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/rng.h"
#include "tandem/tandem.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct clock_marks {
    double first, last;
    size_t count;
} clock_marks;

static void mark(void *user, size_t restart, size_t iteration, double mean_ll)
{
    (void)restart;
    (void)iteration;
    (void)mean_ll;
    clock_marks *m = user;
    m->last = now();
    if (m->count++ == 0)
        m->first = m->last;
}

static void run(tdm_backend *backend, const char *name, const tdm_binary_data *data,
                tdm_em_options *o, size_t iterations)
{
    clock_marks marks = {0};
    tdm_em_result r;
    o->max_iter = iterations + 1;
    o->on_iteration = mark;
    o->user = &marks;
    if (tdm_em_fit(backend, data, o, &r) != TDM_OK) {
        fprintf(stderr, "bench: %s\n", tdm_last_error());
        return;
    }
    tdm_em_result_free(&r);
    printf("tandem %s %zu %zu %zu %.2f\n", name, data->rows, data->cols, o->components,
           1e3 * (marks.last - marks.first) / (double)(marks.count - 1));
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc != 5)
        return fputs("usage: bench_em N D K ITERS\n", stderr), 2;
    size_t n = strtoul(argv[1], NULL, 10), d = strtoul(argv[2], NULL, 10);
    size_t k = strtoul(argv[3], NULL, 10), iterations = strtoul(argv[4], NULL, 10);
    tdm_rng rng = {42};
    float *p = malloc(k * d * sizeof(float)), *pi = malloc(k * sizeof(float));
    tdm_binary_data data;
    if (tdm_binary_alloc(n, d, &data) != TDM_OK)
        return fprintf(stderr, "bench_em: %s\n", tdm_last_error()), 1;
    for (size_t i = 0; i < k * d; i++)
        p[i] = tdm_rng_uniform(&rng, 0.05f, 0.95f);
    for (size_t c = 0; c < k; c++)
        pi[c] = 1.0f / (float)k;
    for (size_t i = 0; i < n; i++) {
        size_t c = (size_t)(tdm_rng_next(&rng) % k);
        for (size_t j = 0; j < d; j++)
            tdm_binary_set(&data, i, j, tdm_rng_uniform(&rng, 0.0f, 1.0f) < p[c * d + j]);
    }
    for (size_t i = 0; i < k * d; i++) /* start near, not at, the truth */
        p[i] = 0.5f * p[i] + 0.25f;
    tdm_em_options o;
    tdm_em_options_init(&o);
    o.components = k;
    o.init = TDM_EM_INIT_GIVEN;
    o.initial_p = p;
    o.initial_pi = pi;
    o.tol = 0.0;
    tdm_backend *backend = NULL;
    if (tdm_cpu_backend_create(&backend) == TDM_OK)
        run(backend, "cpu", &data, &o, iterations);
    tdm_backend_free(backend);
    tdm_opencl_device_info *devices = NULL;
    size_t count = 0;
    if (tdm_opencl_list_devices(&devices, &count) != TDM_OK)
        count = 0;
    for (size_t i = 0; i < count; i++) {
        char name[64];
        snprintf(name, sizeof name, "opencl:%zu:%zu", devices[i].platform_index,
                 devices[i].device_index);
        if (tdm_opencl_backend_create(devices[i].platform_index, devices[i].device_index,
                                      &backend) == TDM_OK)
            run(backend, name, &data, &o, iterations);
        tdm_backend_free(backend);
    }
    free(devices);
    free(p);
    free(pi);
    tdm_binary_free(&data);
    return 0;
}

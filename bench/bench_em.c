/* ms per EM iteration on synthetic data (n x D binary rows drawn from a
 * random K-component mixture, generated straight into packed rows) on the
 * cpu backend and, unless told otherwise, every OpenCL device, from a given
 * start: the time between the first and the last of ITERS + 1 iteration
 * callbacks, so the first upload and the final scoring pass are not counted.
 * One line per backend:
 * `tandem <backend> <n> <D> <K> <ms per iteration> <method> <peak MB>`,
 * the peak resident memory of the process so far. With `mpi` (under
 * mpirun -np P, a build with -DTANDEM_MPI=ON) every process makes the same
 * data, keeps its share and fits it on the cpu backend; process 0 prints
 * `tandem mpi:P ...` and the bytes sent per iteration (its own peak memory).
 * Usage: bench_em N D K ITERS [auto|bits|gemm [cpu|all|mpi]] */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/rng.h"
#include "bench_threads.h"
#include "tandem/tandem.h"
#include "core/clock.h"

static double peak_megabytes(void)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)usage.ru_maxrss / 1024.0; /* kilobytes on Linux */
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
    m->last = tdm_monotonic_seconds();
    if (m->count++ == 0)
        m->first = m->last;
}

/* Bytes sent per iteration among `size` processes: the running total of
 * S, N and the log-likelihood (doubles) from each process to the next, then
 * from the last to every other. */
static double bytes_per_iteration(const tdm_binary_data *data, const tdm_em_options *o, int size)
{
    size_t stride = o->components * (data->cols + 1) + 1;
    return 2.0 * (double)(size - 1) * (double)stride * 8.0;
}

static void run(tdm_backend *backend, tdm_comm *comm, const char *name, const tdm_binary_data *data,
                tdm_em_options *o, size_t iterations, const char *method)
{
    clock_marks marks = {0};
    tdm_em_result r;
    o->max_iter = iterations + 1;
    o->on_iteration = mark;
    o->user = &marks;
    if (tdm_em_fit_distributed(backend, comm, data, o, &r) != TDM_OK) {
        fprintf(stderr, "bench: %s\n", tdm_last_error());
        return;
    }
    tdm_em_result_free(&r);
    if (comm->rank != 0)
        return;
    printf("tandem %s %zu %zu %zu %.2f %s %.0f", name, data->total_rows, data->cols, o->components,
           1e3 * (marks.last - marks.first) / (double)(marks.count - 1), method, peak_megabytes());
    if (comm->size > 1)
        printf(" %.0f", bytes_per_iteration(data, o, comm->size));
    putchar('\n');
    fflush(stdout);
}

/* Every process with its share of the data, on the cpu backend. */
static int run_distributed(tdm_binary_data *data, tdm_em_options *o, size_t iterations,
                           const char *method)
{
    tdm_comm *comm = NULL;
    tdm_backend *backend = NULL;
    if (tdm_comm_world(&comm) != TDM_OK)
        return fprintf(stderr, "bench_em: %s\n", tdm_last_error()), 1;
    tdm_row_share share = {o->shard_rows, comm->rank, comm->size};
    char name[32];
    snprintf(name, sizeof name, "mpi:%d", comm->size);
    if (tdm_binary_keep_share(data, &share) == TDM_OK && bench_cpu_backend(&backend) == TDM_OK)
        run(backend, comm, name, data, o, iterations, method);
    else
        fprintf(stderr, "bench_em: %s\n", tdm_last_error());
    tdm_backend_free(backend);
    tdm_comm_free(comm);
    return 0;
}

/* Row i from component i % K: each value 1 with probability p (in 1/256
 * steps), 8 random bits per value, 8 values per draw. */
static void generate(tdm_binary_data *data, const float *p, size_t k, tdm_rng *rng)
{
    size_t d = data->cols;
    unsigned *thresholds = malloc(k * d * sizeof(unsigned));
    for (size_t i = 0; i < k * d; i++)
        thresholds[i] = (unsigned)(p[i] * 256.0f);
    for (size_t i = 0; i < data->rows; i++) {
        const unsigned *t = thresholds + (i % k) * d;
        uint64_t *words = data->bits + i * data->row_words;
        uint64_t random = 0;
        for (size_t j = 0; j < d; j++) {
            if (j % 8 == 0)
                random = tdm_rng_next(rng);
            unsigned byte = (unsigned)(random >> (8 * (j % 8))) & 255u;
            words[j / 64] |= (uint64_t)(byte < t[j]) << (j % 64);
        }
    }
    free(thresholds);
}

int main(int argc, char **argv)
{
    const char *method = argc > 5 ? argv[5] : "auto", *which = argc > 6 ? argv[6] : "all";
    tdm_em_options o;
    tdm_em_options_init(&o);
    if (argc < 5 || argc > 7 || tdm_em_options_set(&o, "method", method) != TDM_OK ||
        (strcmp(which, "cpu") != 0 && strcmp(which, "all") != 0 && strcmp(which, "mpi") != 0))
        return fputs("usage: bench_em N D K ITERS [auto|bits|gemm [cpu|all|mpi]]\n", stderr), 2;
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
    generate(&data, p, k, &rng);
    for (size_t i = 0; i < k * d; i++) /* start near, not at, the truth */
        p[i] = 0.5f * p[i] + 0.25f;
    o.components = k;
    o.init = TDM_EM_INIT_GIVEN;
    o.initial_p = p;
    o.initial_pi = pi;
    o.tol = 0.0;
    if (strcmp(which, "mpi") == 0) {
        int status = run_distributed(&data, &o, iterations, method);
        free(p);
        free(pi);
        tdm_binary_free(&data);
        return status;
    }
    tdm_comm *single = NULL;
    tdm_backend *backend = NULL;
    if (tdm_comm_single(&single) != TDM_OK)
        return fprintf(stderr, "bench_em: %s\n", tdm_last_error()), 1;
    if (bench_cpu_backend(&backend) == TDM_OK)
        run(backend, single, "cpu", &data, &o, iterations, method);
    tdm_backend_free(backend);
    tdm_opencl_device_info *devices = NULL;
    size_t count = 0;
    if (strcmp(which, "cpu") == 0 || tdm_opencl_list_devices(&devices, &count) != TDM_OK)
        count = 0;
    for (size_t i = 0; i < count; i++) {
        char name[64];
        snprintf(name, sizeof name, "opencl:%zu:%zu", devices[i].platform_index,
                 devices[i].device_index);
        if (tdm_opencl_backend_create(devices[i].platform_index, devices[i].device_index,
                                      &backend) == TDM_OK)
            run(backend, single, name, &data, &o, iterations, method);
        tdm_backend_free(backend);
    }
    free(devices);
    tdm_comm_free(single);
    free(p);
    free(pi);
    tdm_binary_free(&data);
    return 0;
}

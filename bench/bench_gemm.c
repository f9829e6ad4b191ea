/* SGEMM GFLOP/s of the cpu backend (tdm_sgemm) on the shapes tandem runs,
 * beside dnnl_sgemm called directly with the same threads when the backend
 * is built on oneDNN: the cost of tandem's layer over the library. One line
 * per shape: `gemm <m>x<n>x<k> tandem <GFLOP/s> [onednn <GFLOP/s> <ratio>]`,
 * each the best of 5 rounds of at least 0.2 s, the two sides' rounds
 * alternating.
 * Usage: bench_gemm [THREADS]   (default: the cores this process may use) */
#define _POSIX_C_SOURCE 200809L
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "tandem/tandem.h"
#ifdef TANDEM_GEMM_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

typedef struct gemm_shape {
    size_t m, n, k;
    const char *what;
} gemm_shape;

typedef struct operands {
    float *a, *b, *c;
    tdm_buffer *ba, *bb, *bc;
} operands;

typedef int (*gemm_call)(const gemm_shape *s, operands *o, tdm_backend *backend, size_t threads);

static int tandem_gemm(const gemm_shape *s, operands *o, tdm_backend *backend, size_t threads)
{
    (void)threads;
    tdm_sgemm_args args = {TDM_NO_TRANS, TDM_NO_TRANS, s->m, s->n, s->k,       1.0f, {o->ba, 0},
                           s->k,         {o->bb, 0},   s->n, 0.0f, {o->bc, 0}, s->n};
    return tdm_sgemm(backend, &args) == TDM_OK ? 0 : -1;
}

#ifdef TANDEM_GEMM_ONEDNN
static int onednn_gemm(const gemm_shape *s, operands *o, tdm_backend *backend, size_t threads)
{
    (void)backend;
    omp_set_num_threads((int)threads);
    return dnnl_sgemm('N', 'N', (dnnl_dim_t)s->m, (dnnl_dim_t)s->n, (dnnl_dim_t)s->k, 1.0f, o->a,
                      (dnnl_dim_t)s->k, o->b, (dnnl_dim_t)s->n, 0.0f, o->c,
                      (dnnl_dim_t)s->n) == dnnl_success
               ? 0
               : -1;
}
static const gemm_call direct_gemm = onednn_gemm;
#else
static const gemm_call direct_gemm = NULL;
#endif

/* GFLOP/s of one round: the call repeated for at least 0.2 s. */
static double round_gflops(gemm_call call, const gemm_shape *s, operands *o, tdm_backend *backend,
                           size_t threads)
{
    double flops = 2.0 * (double)s->m * (double)s->n * (double)s->k;
    size_t calls = 0;
    double start = tdm_monotonic_seconds(), elapsed = 0.0;
    while (elapsed < 0.2) {
        if (call(s, o, backend, threads) != 0)
            return -1.0;
        calls++;
        elapsed = tdm_monotonic_seconds() - start;
    }
    return flops * (double)calls / elapsed * 1e-9;
}

/* The best of 5 rounds of each call, the rounds alternating so that a drift
 * of the machine's speed hits both alike; best[1] stays 0 without a second. */
static void best_gflops(gemm_call first, gemm_call second, const gemm_shape *s, operands *o,
                        tdm_backend *backend, size_t threads, double best[2])
{
    gemm_call calls[2] = {first, second};
    best[0] = best[1] = 0.0;
    for (int c = 0; c < 2; c++) /* warm-up: JIT, first touch */
        if (calls[c] && calls[c](s, o, backend, threads) != 0)
            best[c] = -1.0;
    for (int round = 0; round < 5; round++)
        for (int c = 0; c < 2; c++) {
            if (!calls[c] || best[c] < 0.0)
                continue;
            double gflops = round_gflops(calls[c], s, o, backend, threads);
            best[c] = gflops < 0.0 ? -1.0 : gflops > best[c] ? gflops : best[c];
        }
}

static int prepare(const gemm_shape *s, tdm_backend *backend, operands *o)
{
    size_t sizes[3] = {s->m * s->k, s->k * s->n, s->m * s->n};
    float **host[3] = {&o->a, &o->b, &o->c};
    tdm_buffer **device[3] = {&o->ba, &o->bb, &o->bc};
    for (int i = 0; i < 3; i++) {
        /* 64-byte aligned like the cpu backend's buffers, so both sides
         * read the same way (16-byte alignment costs oneDNN up to 10%). */
        *host[i] = aligned_alloc(64, (sizes[i] * sizeof(float) + 63) / 64 * 64);
        if (!*host[i] || tdm_buffer_alloc(backend, sizes[i] * sizeof(float), device[i]) != TDM_OK)
            return -1;
        for (size_t j = 0; j < sizes[i]; j++)
            (*host[i])[j] = (float)((j * 7919 + (size_t)i) % 1000) / 1000.0f - 0.5f;
        if (tdm_buffer_upload(*device[i], 0, *host[i], sizes[i] * sizeof(float)) != TDM_OK)
            return -1;
    }
    return 0;
}

static void release(operands *o)
{
    free(o->a);
    free(o->b);
    free(o->c);
    tdm_buffer_free(o->ba);
    tdm_buffer_free(o->bb);
    tdm_buffer_free(o->bc);
}

int main(int argc, char **argv)
{
    static const gemm_shape shapes[] = {{512, 512, 512, "square"},
                                        {512, 64, 576, "a ResNet convolution"},
                                        {100000, 20, 784, "EM's E step"}};
    size_t threads = argc > 1 ? strtoul(argv[1], NULL, 10) : 0;
    tdm_backend *backend = NULL;
    if (tdm_cpu_backend_create_threads(threads, &backend) != TDM_OK) {
        fprintf(stderr, "bench_gemm: %s\n", tdm_last_error());
        return 1;
    }
    threads = tdm_backend_host_threads(backend);
    fprintf(stderr, "bench_gemm: %s\n", tdm_backend_description(backend));
    int failed = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0] && !failed; i++) {
        const gemm_shape *s = &shapes[i];
        operands o = {0};
        failed = prepare(s, backend, &o);
        double best[2] = {-1.0, -1.0};
        if (!failed)
            best_gflops(tandem_gemm, direct_gemm, s, &o, backend, threads, best);
        printf("gemm %zux%zux%zu tandem %.1f", s->m, s->n, s->k, best[0]);
        if (direct_gemm)
            printf(" onednn %.1f %.3f", best[1], best[0] / best[1]);
        printf("\n");
        fflush(stdout);
        failed = failed || best[0] < 0.0;
        release(&o);
    }
    tdm_backend_free(backend);
    return failed;
}

/* EM for a mixture of Bernoullis, on every backend: the EM guarantee, closed
 * forms, recovery of a known mixture, degenerate data, determinism and the
 * backends agreeing. (The row softmax of the E step is in the parity
 * harness; bad files are in tests/cli/test_em_cli.sh.) */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.h"

static tdm_binary_data new_data(size_t rows, size_t cols)
{
    tdm_binary_data d;
    assert_int_equal(tdm_binary_alloc(rows, cols, &d), TDM_OK);
    return d;
}

/* n rows from a known mixture (p, pi), labels = the true component. */
static tdm_binary_data sample_mixture(size_t rows, size_t cols, size_t k_count, const double *p,
                                      const double *pi, uint64_t seed)
{
    tdm_binary_data d = new_data(rows, cols);
    d.labels = malloc(rows * sizeof(int32_t));
    test_rng rng = {seed};
    for (size_t i = 0; i < rows; i++) {
        double u = test_rng_uniform(&rng, 0.0f, 1.0f), cumulative = 0.0;
        size_t k = 0;
        while (k + 1 < k_count && u > (cumulative += pi[k]))
            k++;
        d.labels[i] = (int32_t)k;
        for (size_t j = 0; j < cols; j++)
            tdm_binary_set(&d, i, j, test_rng_uniform(&rng, 0.0f, 1.0f) < p[k * cols + j]);
    }
    return d;
}

static tdm_em_result fit(tdm_backend *backend, const tdm_binary_data *d, size_t k_count,
                         tdm_em_options *o)
{
    o->components = k_count;
    tdm_em_result r;
    if (tdm_em_fit(backend, d, o, &r) != TDM_OK)
        fail_msg("fit failed: %s", tdm_last_error());
    return r;
}

/* EM never decreases the MAP objective (log-likelihood + log prior). The
 * per-row log-likelihoods are float32 (~1e-6 relative each) summed in
 * double, so a step may seem to go down by ~1e-6 of the value at most; we
 * allow 1e-5 relative. */
static void expect_monotone(const tdm_em_result *r, const char *what, const char *device)
{
    for (size_t i = 1; i < r->iterations; i++) {
        double drop = r->objective[i - 1] - r->objective[i];
        if (drop > 1e-5 * fabs(r->objective[i]))
            fail_msg("%s on %s: the objective fell from %.9g to %.9g at iteration %zu", what,
                     device, r->objective[i - 1], r->objective[i], i + 1);
    }
}

static void test_objective_never_decreases(void **state)
{
    (void)state;
    double p[2 * 20], pi[2] = {0.5, 0.5};
    for (size_t i = 0; i < 40; i++)
        p[i] = 0.5; /* coin flips: no structure at all */
    double mixture_p[3 * 20];
    for (size_t i = 0; i < 60; i++)
        mixture_p[i] = 0.1 + 0.8 * (double)((i * 7) % 11) / 10.0;
    const double mixture_pi[3] = {0.5, 0.3, 0.2};
    tdm_binary_data sets[3] = {test_binary_digits(),
                               sample_mixture(3000, 20, 3, mixture_p, mixture_pi, 5),
                               sample_mixture(500, 20, 2, p, pi, 6)};
    const char *names[3] = {"digits K=10", "a 3-mixture K=4", "coin flips K=2"};
    size_t ks[3] = {10, 4, 2};
    for (size_t b = 0; b < test_all_backends.count; b++)
        for (size_t s = 0; s < 3; s++) {
            tdm_em_options o;
            tdm_em_options_init(&o);
            o.tol = 0.0; /* run all iterations */
            o.max_iter = 40;
            tdm_em_result r = fit(test_all_backends.all[b], &sets[s], ks[s], &o);
            assert_int_equal(r.iterations, 40);
            assert_int_equal(r.reseeded, 0);
            expect_monotone(&r, names[s], tdm_backend_name(test_all_backends.all[b]));
            tdm_em_result_free(&r);
        }
    for (size_t s = 0; s < 3; s++)
        tdm_binary_free(&sets[s]);
}

/* K = 1: one M step from any start gives the (smoothed) column means. */
static void test_one_component_is_the_column_means(void **state)
{
    (void)state;
    tdm_binary_data d = test_binary_digits();
    for (size_t b = 0; b < test_all_backends.count; b++)
        for (int prior = 0; prior < 2; prior++) {
            tdm_em_options o;
            tdm_em_options_init(&o);
            o.prior_a = o.prior_b = prior ? 2.0 : 1.0;
            tdm_em_result r = fit(test_all_backends.all[b], &d, 1, &o);
            assert_true(r.pi[0] == 1.0f);
            for (size_t j = 0; j < d.cols; j++) {
                double ones = 0.0;
                for (size_t i = 0; i < d.rows; i++)
                    ones += tdm_binary_get(&d, i, j);
                double expected = prior ? (ones + 1.0) / ((double)d.rows + 2.0)
                                        : fmin(fmax(ones / (double)d.rows, 1e-6), 1.0 - 1e-6);
                /* float32 sums of 1797 exact 0/1 products: exact; p is rounded once */
                assert_true(fabs(r.p[j] - expected) <= 1e-6 * fmax(expected, 1e-6) + 1e-12);
            }
            tdm_em_result_free(&r);
        }
    tdm_binary_free(&d);
}

/* n = 20000, D = 50, K = 3 drawn from a known mixture: each p is estimated
 * from >= 4000 rows, standard error <= sqrt(0.25 / 4000) = 0.008, so 0.05 is
 * 6 standard errors; pi from 20000 rows: 0.02 is 6 standard errors. */
static void test_recovers_a_known_mixture(void **state)
{
    (void)state;
    enum { ROWS = 20000, COLS = 50, K = 3 };
    double p[K * COLS];
    test_rng rng = {11};
    for (size_t i = 0; i < K * COLS; i++)
        p[i] = test_rng_uniform(&rng, 0.05f, 0.95f);
    const double pi[K] = {0.5, 0.3, 0.2};
    tdm_binary_data d = sample_mixture(ROWS, COLS, K, p, pi, 12);
    static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                    {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_em_options o;
        tdm_em_options_init(&o);
        o.n_init = 2;
        tdm_em_result r = fit(test_all_backends.all[b], &d, K, &o);
        double best = INFINITY, best_pi = INFINITY;
        for (size_t m = 0; m < 6; m++) { /* match fitted to true components */
            double worst = 0.0, worst_pi = 0.0;
            for (size_t k = 0; k < K; k++) {
                size_t t = (size_t)perms[m][k];
                worst_pi = fmax(worst_pi, fabs(r.pi[k] - pi[t]));
                for (size_t j = 0; j < COLS; j++)
                    worst = fmax(worst, fabs(r.p[k * COLS + j] - p[t * COLS + j]));
            }
            if (worst < best) {
                best = worst;
                best_pi = worst_pi;
            }
        }
        printf("recovery on %s: largest |p - p_true| %.4f, |pi - pi_true| %.4f\n",
               tdm_backend_name(test_all_backends.all[b]), best, best_pi);
        assert_true(best < 0.05 && best_pi < 0.02);
        int32_t *clusters = malloc(ROWS * sizeof(int32_t));
        assert_int_equal(tdm_em_predict(test_all_backends.all[b], &d, &r, clusters), TDM_OK);
        assert_true(tdm_adjusted_rand_index(clusters, d.labels, ROWS) > 0.9);
        free(clusters);
        tdm_em_result_free(&r);
    }
    tdm_binary_free(&d);
}

/* Rows of eta sum to 1; the weights sum to 1; score_samples matches the total. */
static void test_responsibilities_and_scores(void **state)
{
    (void)state;
    tdm_binary_data d = test_binary_digits();
    tdm_backend *backend = test_all_backends.all[test_all_backends.count - 1];
    tdm_em_options o;
    tdm_em_options_init(&o);
    tdm_em_result r = fit(backend, &d, 10, &o);
    float *eta = malloc(d.rows * 10 * sizeof(float));
    double *scores = malloc(d.rows * sizeof(double)), total = 0.0, weights = 0.0, mass = 0.0;
    assert_int_equal(tdm_em_predict_proba(backend, &d, &r, eta), TDM_OK);
    assert_int_equal(tdm_em_score_samples(backend, &d, &r, scores), TDM_OK);
    for (size_t i = 0; i < d.rows; i++) {
        double row = 0.0;
        for (size_t k = 0; k < 10; k++)
            row += eta[i * 10 + k];
        assert_true(fabs(row - 1.0) < 1e-5); /* ten float roundings */
        mass += row;
        total += scores[i];
    }
    for (size_t k = 0; k < 10; k++)
        weights += r.pi[k];
    assert_true(fabs(weights - 1.0) < 1e-6 && fabs(mass - (double)d.rows) < 1e-3);
    /* The result holds p and pi in float32: scoring with them moves the total
     * by ~1e-7 relative from the fit's own double parameters. */
    assert_true(fabs(total - r.log_likelihood) < 1e-6 * fabs(total));
    size_t free_parameters = 10 * 64 + 9;
    double ll = r.log_likelihood;
    assert_true(fabs(tdm_em_bic(&r, d.rows) - (-2 * ll + free_parameters * log(1797.0))) < 1e-6);
    assert_true(fabs(tdm_em_aic(&r, d.rows) - (-2 * ll + 2.0 * free_parameters)) < 1e-6);
    free(eta);
    free(scores);
    tdm_em_result_free(&r);
    tdm_binary_free(&d);
}

static void test_degenerate_data(void **state)
{
    (void)state;
    tdm_backend *backend = test_all_backends.all[0];
    tdm_em_options o;
    tdm_em_options_init(&o);
    /* All-zero and all-one columns, and duplicate rows. */
    tdm_binary_data d = new_data(60, 4);
    for (size_t i = 0; i < 60; i++) {
        tdm_binary_set(&d, i, 1, true);       /* all ones */
        tdm_binary_set(&d, i, 2, i % 3 == 0); /* rows repeat with period 3 */
        tdm_binary_set(&d, i, 3, i % 2);
    }
    tdm_em_result r = fit(backend, &d, 3, &o);
    assert_true(isfinite(r.log_likelihood));
    for (size_t k = 0; k < 3; k++)
        assert_true(r.p[k * 4] > 0.0f && r.p[k * 4 + 1] < 1.0f); /* never 0 or 1 */
    tdm_em_result_free(&r);
    /* K = n, and one row, and one column. */
    r = fit(backend, &d, 60, &o);
    assert_true(isfinite(r.log_likelihood));
    tdm_em_result_free(&r);
    tdm_binary_data one_row = new_data(1, 4), one_column = new_data(9, 1);
    for (size_t i = 0; i < 9; i++)
        tdm_binary_set(&one_column, i, 0, i < 3);
    r = fit(backend, &one_row, 1, &o);
    assert_true(isfinite(r.log_likelihood));
    tdm_em_result_free(&r);
    o.prior_a = o.prior_b = 1.0;
    r = fit(backend, &one_column, 1, &o);
    assert_true(fabs(r.p[0] - 3.0f / 9.0f) < 1e-6);
    tdm_em_result_free(&r);
    /* K > n is an error, K = 0 too. */
    o.components = 61;
    assert_int_equal(tdm_em_fit(backend, &d, &o, &r), TDM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(tdm_last_error(), "K must not exceed the rows"));
    o.components = 0;
    assert_int_equal(tdm_em_fit(backend, &d, &o, &r), TDM_ERR_INVALID_ARGUMENT);
    tdm_binary_free(&d);
    tdm_binary_free(&one_row);
    tdm_binary_free(&one_column);
}

/* A component that explains no row goes empty and is re-seeded on the row
 * the model explains worst; the fit stays finite. */
static void test_forced_empty_component(void **state)
{
    (void)state;
    tdm_binary_data d = new_data(100, 8);
    for (size_t i = 0; i < 100; i++)
        for (size_t j = 0; j < 8; j++)
            tdm_binary_set(&d, i, j, (i + j) % 5 == 0);
    float p[2 * 8], pi[2] = {0.999f, 0.001f};
    for (size_t j = 0; j < 8; j++) {
        p[j] = 0.2f;
        p[8 + j] = 1.0f; /* all ones: no row looks like it */
    }
    tdm_em_options o;
    tdm_em_options_init(&o);
    o.init = TDM_EM_INIT_GIVEN;
    o.initial_p = p;
    o.initial_pi = pi;
    o.prior_a = o.prior_b = 1.0;
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_em_result r = fit(test_all_backends.all[b], &d, 2, &o);
        assert_true(r.reseeded >= 1);
        assert_true(isfinite(r.log_likelihood) && r.pi[1] > 0.0f);
        tdm_em_result_free(&r);
    }
    tdm_binary_free(&d);
}

static bool same_result(const tdm_em_result *a, const tdm_em_result *b)
{
    return a->iterations == b->iterations && a->log_likelihood == b->log_likelihood &&
           memcmp(a->p, b->p, a->components * a->cols * sizeof(float)) == 0;
}

static void test_seeds_blocks_and_backends(void **state)
{
    (void)state;
    tdm_binary_data d = test_binary_digits();
    tdm_em_options o;
    tdm_em_options_init(&o);
    tdm_em_result cpu = fit(test_all_backends.all[0], &d, 10, &o),
                  again = fit(test_all_backends.all[0], &d, 10, &o);
    assert_true(same_result(&cpu, &again)); /* same seed, same bits */
    tdm_em_result_free(&again);
    o.seed = 2;
    again = fit(test_all_backends.all[0], &d, 10, &o);
    assert_false(same_result(&cpu, &again));
    tdm_em_result_free(&again);
    o.seed = 1;
    o.block_rows = 7; /* another blocking: the same fit up to rounding */
    again = fit(test_all_backends.all[0], &d, 10, &o);
    assert_true(fabs(again.log_likelihood - cpu.log_likelihood) < 1e-5 * fabs(cpu.log_likelihood));
    tdm_em_result_free(&again);
    o.block_rows = 0;
    o.n_init = 3; /* restart 0 is the run above: the best is at least as good */
    again = fit(test_all_backends.all[0], &d, 10, &o);
    assert_true(again.log_likelihood >= cpu.log_likelihood);
    tdm_em_result_free(&again);
    o.n_init = 1;
    /* Every OpenCL device from the same seed: the same fit within float32
     * rounding of the per-row log-likelihoods (1e-5 relative). */
    for (size_t b = 1; b < test_all_backends.count; b++) {
        tdm_em_result other = fit(test_all_backends.all[b], &d, 10, &o);
        printf("EM on %s: log-likelihood %.6f, cpu %.6f, %zu and %zu iterations\n",
               tdm_backend_name(test_all_backends.all[b]), other.log_likelihood, cpu.log_likelihood,
               other.iterations, cpu.iterations);
        assert_true(fabs(other.log_likelihood - cpu.log_likelihood) <
                    1e-5 * fabs(cpu.log_likelihood));
        for (size_t i = 0; i < 10 * 64; i++)
            assert_true(fabs(other.p[i] - cpu.p[i]) < 1e-3);
        o.cache_bytes = 0; /* stream the blocks instead of keeping them on the device */
        tdm_em_result streamed = fit(test_all_backends.all[b], &d, 10, &o);
        o.cache_bytes = (size_t)1 << 30;
        assert_true(fabs(streamed.log_likelihood - other.log_likelihood) <
                    1e-5 * fabs(other.log_likelihood));
        tdm_em_result_free(&streamed);
        tdm_em_result_free(&other);
    }
    tdm_em_result_free(&cpu);
    tdm_binary_free(&d);
}

/* The largest relative difference between two fits' mean log-likelihoods,
 * iteration by iteration (both ran the same number of iterations). */
static double history_gap(const tdm_em_result *a, const tdm_em_result *b)
{
    assert_int_equal(a->iterations, b->iterations);
    double worst = 0.0;
    for (size_t i = 0; i < a->iterations; i++)
        worst = fmax(worst, fabs(a->history[i] - b->history[i]) / fabs(b->history[i]));
    return worst;
}

/* The bits method against the GEMM path, from the same start, 12 iterations:
 * both compute X W^T and eta^T X in float32 (sums of up to D table entries
 * or D products, and of a block's rows), in different orders, so each
 * row's log-likelihood differs by ~1e-7 relative; EM does not amplify that
 * over a few iterations. Measured: at most 3e-7; allowed 1e-5. */
static void check_methods_agree(const tdm_binary_data *d, size_t k_count, const char *what)
{
    tdm_em_options o;
    tdm_em_options_init(&o);
    o.max_iter = 12;
    o.tol = 0.0;
    for (size_t b = 0; b < test_all_backends.count; b++) {
        tdm_backend *backend = test_all_backends.all[b];
        o.method = TDM_EM_METHOD_GEMM;
        tdm_em_result gemm = fit(backend, d, k_count, &o);
        o.method = TDM_EM_METHOD_BITS;
        tdm_em_result bits = fit(backend, d, k_count, &o);
        double gap = history_gap(&bits, &gemm);
        printf("%s, K = %zu, on %s: bits and gemm differ by %.2e at most\n", what, k_count,
               tdm_backend_name(backend), gap);
        if (!(gap <= 1e-5))
            fail_msg("%s, K = %zu, on %s: the methods differ by %.3g", what, k_count,
                     tdm_backend_description(backend), gap);
        tdm_em_result_free(&gemm);
        tdm_em_result_free(&bits);
    }
}

static void test_bits_and_gemm_agree(void **state)
{
    (void)state;
    tdm_binary_data d = test_binary_digits();
    check_methods_agree(&d, 10, "the digits");
    check_methods_agree(&d, 64, "the digits");
    check_methods_agree(&d, 1, "the digits");
    tdm_binary_free(&d);
    /* A 3-component mixture on 67 columns: not a multiple of 4, 8 or 64. */
    enum { COLS = 67 };
    static double p[3 * COLS];
    const double pi[3] = {0.5, 0.3, 0.2};
    for (size_t i = 0; i < 3 * COLS; i++)
        p[i] = 0.1 + 0.8 * (double)((i * 37) % 11) / 10.0;
    d = sample_mixture(3000, COLS, 3, p, pi, 99);
    check_methods_agree(&d, 3, "a mixture on 67 columns");
    tdm_binary_free(&d);
    d = sample_mixture(500, 1, 1, (const double[]){0.3}, (const double[]){1.0}, 5);
    check_methods_agree(&d, 2, "one column");
    tdm_binary_free(&d);
}

static void test_scores_of_labelings(void **state)
{
    (void)state;
    const int32_t a[6] = {0, 0, 1, 1, 2, 2}, b[6] = {1, 1, 0, 0, 2, 2}, c[6] = {0, 0, 0, 1, 1, 1};
    assert_true(fabs(tdm_adjusted_rand_index(a, b, 6) - 1.0) < 1e-12); /* a relabelling */
    assert_true(fabs(tdm_cluster_purity(a, b, 6) - 1.0) < 1e-12);
    /* sklearn.metrics.adjusted_rand_score([0,0,1,1,2,2], [0,0,0,1,1,1]) = 0.24242424... */
    assert_true(fabs(tdm_adjusted_rand_index(a, c, 6) - 0.2424242424242424) < 1e-12);
    assert_true(fabs(tdm_cluster_purity(a, c, 6) - 5.0 / 6.0) < 1e-12);
    /* Large label values cost nothing (a dense table of them took K x 2^31
     * counts, failed, and scored 0). */
    const int32_t big[6] = {100000000, 100000000, 2147483647, 2147483647, 7, 7};
    assert_true(fabs(tdm_cluster_purity(a, big, 6) - 1.0) < 1e-12);
    assert_true(fabs(tdm_adjusted_rand_index(a, big, 6) - 1.0) < 1e-12);
    assert_true(fabs(tdm_adjusted_rand_index(big, c, 6) - 0.2424242424242424) < 1e-12);
}

/* Opens every backend again with buffers capped at `bytes`
 * (TANDEM_OPENCL_MAX_BUFFER acts as a small CL_DEVICE_MAX_MEM_ALLOC_SIZE). */
static void open_capped(test_backends *capped, const char *bytes)
{
    const char *const settings[][2] = {{"TANDEM_OPENCL_MAX_BUFFER", bytes}};
    test_backends_open_with(capped, settings, 1);
    assert_int_equal(capped->count, test_all_backends.count);
}

/* The fits of the same data on a backend and on the same device with
 * small buffers, both methods, blocks of block_rows (0: the default). */
static void check_capped_fits(const tdm_binary_data *d, tdm_backend *backend, tdm_backend *capped,
                              size_t block_rows)
{
    tdm_em_options o;
    tdm_em_options_init(&o);
    o.max_iter = 8;
    o.tol = 0.0;
    o.block_rows = block_rows;
    for (int method = 0; method < 2; method++) {
        o.method = method ? TDM_EM_METHOD_BITS : TDM_EM_METHOD_GEMM;
        tdm_em_result kept = fit(backend, d, 2, &o), streamed = fit(capped, d, 2, &o);
        printf("EM (%s, blocks of %zu) on %s with small buffers: log-likelihood %.6f, %.6f kept "
               "on the device\n",
               method ? "bits" : "gemm", block_rows, tdm_backend_name(capped),
               streamed.log_likelihood, kept.log_likelihood);
        if (block_rows) /* the same blocks: the same products, in the same order */
            assert_true(same_result(&kept, &streamed));
        else /* smaller default blocks: sums of the rows rounded in another order */
            assert_true(history_gap(&streamed, &kept) < 1e-6);
        tdm_em_result_free(&kept);
        tdm_em_result_free(&streamed);
    }
}

/* Data larger than one buffer of the device, which otherwise stays there
 * (6000 rows of 200 values: 4.8 MB of floats, 192 KB of packed words,
 * against buffers of 128 KiB): EM streams the blocks instead of failing,
 * with the bits of the fit that kept the data, and shrinks its default
 * blocks to fit one buffer. What does not fit is named. */
static void test_data_larger_than_a_device_buffer(void **state)
{
    (void)state;
    enum { ROWS = 6000, COLS = 200, CAP = 131072 };
    assert_true(tdm_backend_max_buffer_bytes(test_all_backends.all[0]) == SIZE_MAX);
    static double p[2 * COLS];
    for (size_t i = 0; i < 2 * COLS; i++)
        p[i] = 0.1 + 0.8 * (double)((i * 37) % 11) / 10.0;
    tdm_binary_data d = sample_mixture(ROWS, COLS, 2, p, (const double[]){0.6, 0.4}, 7);
    test_backends capped;
    open_capped(&capped, "131072");
    for (size_t b = 1; b < capped.count; b++) {
        tdm_backend *device = test_all_backends.all[b];
        assert_true(tdm_backend_max_buffer_bytes(device) > (size_t)ROWS * COLS * sizeof(float));
        assert_true(tdm_backend_max_buffer_bytes(device) <= (size_t)1 << 33);
        assert_true(tdm_backend_max_buffer_bytes(capped.all[b]) == CAP);
        tdm_buffer *buffer = NULL;
        assert_int_equal(tdm_buffer_alloc(capped.all[b], CAP, &buffer), TDM_OK);
        tdm_buffer_free(buffer);
        assert_int_equal(tdm_buffer_alloc(capped.all[b], CAP + 4, &buffer), TDM_ERR_OUT_OF_MEMORY);
        assert_null(buffer);
        assert_non_null(strstr(tdm_last_error(), "a buffer of 131076 bytes is more than"));
        assert_non_null(strstr(tdm_last_error(), "at most 131072 bytes (capped by "
                                                 "TANDEM_OPENCL_MAX_BUFFER)"));
        check_capped_fits(&d, device, capped.all[b], 128);
        check_capped_fits(&d, device, capped.all[b], 0);
    }
    test_backends_close(&capped);
    tdm_binary_free(&d);
}

/* A binary CSV's fields: bare 0s and 1s (read without strtol), and the
 * forms strtol reads (+1, 01, spaces around, a CR before the newline), and
 * labels of one digit and more; every value where it belongs. */
static void test_csv_values(void **state)
{
    (void)state;
    const char *path = "test_em_values.csv";
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    fputs("0,1,1,0,1\n1,0,+1,01,7\r\n 0, 1,1 ,0,12\n1,1,1,1,0\n", file);
    fclose(file);
    static const bool expected[4][4] = {{0, 1, 1, 0}, {1, 0, 1, 1}, {0, 1, 1, 0}, {1, 1, 1, 1}};
    static const int32_t labels[4] = {1, 7, 12, 0};
    tdm_binary_data d;
    assert_int_equal(tdm_binary_load_csv(path, true, &d), TDM_OK);
    assert_int_equal(d.rows, 4);
    assert_int_equal(d.cols, 4);
    for (size_t r = 0; r < 4; r++) {
        for (size_t c = 0; c < 4; c++)
            assert_int_equal(tdm_binary_get(&d, r, c), expected[r][c]);
        assert_int_equal(d.labels[r], labels[r]);
    }
    tdm_binary_free(&d);
    remove(path);
}

/* The mean log-likelihood of d under (p, pi), K components, in double. */
static double mean_log_likelihood(const tdm_binary_data *d, const double *p, const double *pi,
                                  size_t k_count)
{
    double total = 0.0, terms[2];
    assert_true(k_count <= 2);
    for (size_t i = 0; i < d->rows; i++) {
        for (size_t k = 0; k < k_count; k++) {
            terms[k] = log(pi[k]);
            for (size_t c = 0; c < d->cols; c++)
                terms[k] +=
                    tdm_binary_get(d, i, c) ? log(p[k * d->cols + c]) : log1p(-p[k * d->cols + c]);
        }
        double top = k_count == 2 ? fmax(terms[0], terms[1]) : terms[0];
        double sum = exp(terms[0] - top) + (k_count == 2 ? exp(terms[1] - top) : 0.0);
        total += top + log(sum);
    }
    return total / (double)d->rows;
}

/* The first E step scores the start: with one component it is the column
 * counts of all rows (p = (S + 1) / (n + 2) under the default prior), on
 * 150 columns (three words) of random rows; with two components of two
 * distinct rows, k-means++ picks one of each and every row goes to its
 * own, so p = (n_k x + 1) / (n_k + 2) and pi = n_k / n. The first
 * iteration's log-likelihood is compared with these starts', within 1e-5
 * relative (float32 scores of about 100 a row, summed in double) plus 2e-4:
 * the two rows' scores are near 0, sums of 150 float32 terms of up to
 * |log p - log(1 - p)| = 9.3, each row's rounded by up to 150 x 9.3 x 2^-24
 * = 8e-5. */
static void test_the_start_is_the_hard_assignment(void **state)
{
    (void)state;
    enum { ROWS = 10000, COLS = 150 };
    static double column_p[COLS], start[2 * COLS];
    for (size_t c = 0; c < COLS; c++)
        column_p[c] = 0.05 + 0.9 * (double)((c * 37) % 11) / 10.0;
    tdm_binary_data d = sample_mixture(ROWS, COLS, 1, column_p, (const double[]){1.0}, 31);
    for (size_t c = 0; c < COLS; c++) {
        double ones = 0.0;
        for (size_t i = 0; i < ROWS; i++)
            ones += tdm_binary_get(&d, i, c);
        start[c] = (ones + 1.0) / (ROWS + 2.0);
    }
    double expected[2] = {mean_log_likelihood(&d, start, (const double[]){1.0}, 1)};
    tdm_binary_data two = new_data(ROWS, COLS);
    for (size_t i = 0; i < ROWS; i++)
        for (size_t c = 0; c < COLS; c++)
            tdm_binary_set(&two, i, c, (i % 3 == 0) == (c % 2 == 0 || c % 7 == 3));
    double n_b = (ROWS + 2) / 3, n_a = ROWS - n_b;
    for (size_t c = 0; c < COLS; c++) {
        bool b_bit = c % 2 == 0 || c % 7 == 3;
        start[c] = ((b_bit ? 0.0 : n_a) + 1.0) / (n_a + 2.0);
        start[COLS + c] = ((b_bit ? n_b : 0.0) + 1.0) / (n_b + 2.0);
    }
    expected[1] = mean_log_likelihood(&two, start, (const double[]){n_a / ROWS, n_b / ROWS}, 2);
    tdm_em_options o;
    tdm_em_options_init(&o);
    o.max_iter = 1;
    for (size_t b = 0; b < test_all_backends.count; b++)
        for (size_t k_count = 1; k_count <= 2; k_count++) {
            tdm_em_result r = fit(test_all_backends.all[b], k_count == 1 ? &d : &two, k_count, &o);
            printf("EM start, K = %zu, on %s: %.9f, expected %.9f\n", k_count,
                   tdm_backend_name(test_all_backends.all[b]), r.history[0], expected[k_count - 1]);
            assert_true(fabs(r.history[0] - expected[k_count - 1]) <
                        1e-5 * fabs(expected[k_count - 1]) + 2e-4);
            tdm_em_result_free(&r);
        }
    tdm_binary_free(&two);
    tdm_binary_free(&d);
}

/* k-means++ and the hard assignment after it share their rows among the
 * host's threads (4096 rows a thread at least) and add integers; random
 * responsibilities share the shards (4 here), each summed in row order:
 * the same bits on 1, 2 and 3 threads for every initialisation (the
 * iterations after them too: tandem's loops give the same bits on any
 * thread count), and random responsibilities within rounding the fit in
 * one shard. */
static void test_initialisation_on_any_thread_count(void **state)
{
    (void)state;
    enum { ROWS = 20000, COLS = 150, K = 6 };
    static double p[K * COLS];
    for (size_t i = 0; i < K * COLS; i++)
        p[i] = 0.05 + 0.9 * (double)((i * 29 + i / COLS) % 13) / 12.0;
    const double pi[K] = {0.3, 0.2, 0.2, 0.1, 0.1, 0.1};
    tdm_binary_data d = sample_mixture(ROWS, COLS, K, p, pi, 23);
    tdm_em_options o;
    tdm_em_options_init(&o);
    o.max_iter = 2;
    o.shard_rows = ROWS / 4;
    static const tdm_em_init inits[3] = {TDM_EM_INIT_KMEANS_PLUS_PLUS, TDM_EM_INIT_RANDOM_ROWS,
                                         TDM_EM_INIT_RANDOM_RESPONSIBILITIES};
    static const char *const names[3] = {"k-means++", "random rows", "random responsibilities"};
    for (int init = 0; init < 3; init++) {
        o.init = inits[init];
        tdm_em_result first = {0};
        for (size_t threads = 1; threads <= 3; threads++) {
            tdm_backend *cpu = NULL;
            assert_int_equal(tdm_cpu_backend_create_threads(threads, &cpu), TDM_OK);
            tdm_em_result r = fit(cpu, &d, K, &o);
            printf("EM (%s) on %zu threads: log-likelihood %.9f\n", names[init], threads,
                   r.log_likelihood);
            if (threads == 1)
                first = r;
            else {
                assert_true(same_result(&r, &first));
                tdm_em_result_free(&r);
            }
            tdm_backend_free(cpu);
        }
        /* Each row's uniforms come from the RNG moved to its row, so one
         * shard gives the same start; the fits differ by the float32 sums
         * of other blocks (blocks end at shard ends): 1e-6. */
        if (inits[init] == TDM_EM_INIT_RANDOM_RESPONSIBILITIES) {
            o.shard_rows = ROWS;
            tdm_em_result whole = fit(test_all_backends.all[0], &d, K, &o);
            o.shard_rows = ROWS / 4;
            printf("EM (%s) in one shard: log-likelihood %.9f\n", names[init],
                   whole.log_likelihood);
            assert_true(fabs(whole.log_likelihood - first.log_likelihood) <
                        1e-6 * fabs(first.log_likelihood));
            tdm_em_result_free(&whole);
        }
        tdm_em_result_free(&first);
    }
    tdm_binary_free(&d);
}

/* The default blocks of the bits method and, given `settings`, the fits of
 * every OpenCL device reopened with them. */
typedef struct gpu_blocks_case {
    const char *what;
    size_t rows, cols, k_count, shard_rows, expected_block;
} gpu_blocks_case;

/* On a device reopened with TANDEM_OPENCL_PARALLEL_ROWS (a GPU's rows on
 * PoCL and rusticl), the bits method's default block is expected_block: the
 * fit equals, bit for bit, the one with block_rows = expected_block, and
 * agrees with the cpu backend's (1e-5, as test_seeds_blocks_and_backends). */
static void check_gpu_blocks(const gpu_blocks_case *c, const char *const settings[][2],
                             size_t count)
{
    static double p[512 * 64];
    assert_true(c->k_count * c->cols <= 512 * 64);
    double *pi = malloc(c->k_count * sizeof(double));
    for (size_t i = 0; i < c->k_count * c->cols; i++)
        p[i] = 0.1 + 0.8 * (double)((i * 37 + i / c->cols) % 11) / 10.0;
    for (size_t k = 0; k < c->k_count; k++)
        pi[k] = 1.0 / (double)c->k_count;
    tdm_binary_data d = sample_mixture(c->rows, c->cols, c->k_count, p, pi, 11);
    test_backends wide;
    test_backends_open_with(&wide, settings, count);
    tdm_em_options o;
    tdm_em_options_init(&o);
    o.max_iter = 3;
    o.tol = 0.0;
    o.method = TDM_EM_METHOD_BITS;
    o.shard_rows = c->shard_rows;
    tdm_em_result cpu = fit(test_all_backends.all[0], &d, c->k_count, &o);
    for (size_t b = 1; b < wide.count; b++) {
        o.block_rows = 0;
        tdm_em_result automatic = fit(wide.all[b], &d, c->k_count, &o);
        o.block_rows = c->expected_block;
        tdm_em_result given = fit(wide.all[b], &d, c->k_count, &o);
        printf("EM (bits, %s) on %s: log-likelihood %.6f, %.6f in blocks of %zu, cpu %.6f\n",
               c->what, tdm_backend_name(wide.all[b]), automatic.log_likelihood,
               given.log_likelihood, c->expected_block, cpu.log_likelihood);
        assert_true(same_result(&automatic, &given));
        assert_true(history_gap(&automatic, &cpu) < 1e-5);
        tdm_em_result_free(&automatic);
        tdm_em_result_free(&given);
    }
    tdm_em_result_free(&cpu);
    test_backends_close(&wide);
    tdm_binary_free(&d);
    free(pi);
}

/* A GPU's EM blocks fill it (tdm_backend_parallel_rows): two work-groups of
 * its largest size a compute unit, within a shard and 64 MiB of scores; 0
 * (BITS_BLOCK, 8192 rows) on the cpu backend and CPU devices. bits_sums
 * then splits a block into parts of 128 rows, as many as 64 MiB of partial
 * sums and one buffer hold. */
static void test_blocks_that_fill_a_gpu(void **state)
{
    (void)state;
    assert_int_equal(tdm_backend_parallel_rows(test_all_backends.all[0]), 0);
    tdm_opencl_device_info *devices = NULL;
    size_t count = 0;
    if (test_all_backends.count > 1)
        assert_int_equal(tdm_opencl_list_devices(&devices, &count), TDM_OK);
    for (size_t b = 1; b < test_all_backends.count; b++) {
        size_t rows = tdm_backend_parallel_rows(test_all_backends.all[b]);
        if (devices[b - 1].is_gpu_or_accelerator)
            assert_true(rows >= 2 * (size_t)devices[b - 1].compute_units);
        else
            assert_int_equal(rows, 0);
    }
    free(devices);
    /* rows past the 8192 of a CPU's block, in two blocks; bits_sums in parts */
    const char *const wide[][2] = {{"TANDEM_OPENCL_PARALLEL_ROWS", "20000"},
                                   {"TANDEM_OPENCL_BITS_PARTS", "64"}};
    check_gpu_blocks(&(gpu_blocks_case){"a GPU's blocks", 30000, 70, 3, 131072, 20000}, wide, 2);
    /* a block never spans two shards */
    check_gpu_blocks(&(gpu_blocks_case){"blocks within shards", 30000, 70, 3, 12000, 12000}, wide,
                     2);
    /* K = 300: 64 MiB of scores hold 55924 rows */
    const char *const many[][2] = {{"TANDEM_OPENCL_PARALLEL_ROWS", "100000"}};
    check_gpu_blocks(&(gpu_blocks_case){"scores within 64 MiB", 60000, 20, 300, 131072, 55924},
                     many, 1);
    /* 128 KiB buffers: blocks of 4096 rows (8 floats of words a row), and
     * 81 parts of 402 floats, not 1000 */
    const char *const small[][2] = {{"TANDEM_OPENCL_PARALLEL_ROWS", "20000"},
                                    {"TANDEM_OPENCL_BITS_PARTS", "1000"},
                                    {"TANDEM_OPENCL_MAX_BUFFER", "131072"}};
    check_gpu_blocks(
        &(gpu_blocks_case){"partial sums within one buffer", 6000, 200, 2, 131072, 4096}, small, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_objective_never_decreases),
        cmocka_unit_test(test_one_component_is_the_column_means),
        cmocka_unit_test(test_recovers_a_known_mixture),
        cmocka_unit_test(test_responsibilities_and_scores),
        cmocka_unit_test(test_degenerate_data),
        cmocka_unit_test(test_forced_empty_component),
        cmocka_unit_test(test_seeds_blocks_and_backends),
        cmocka_unit_test(test_bits_and_gemm_agree),
        cmocka_unit_test(test_scores_of_labelings),
        cmocka_unit_test(test_data_larger_than_a_device_buffer),
        cmocka_unit_test(test_blocks_that_fill_a_gpu),
        cmocka_unit_test(test_initialisation_on_any_thread_count),
        cmocka_unit_test(test_the_start_is_the_hard_assignment),
        cmocka_unit_test(test_csv_values),
    };
    return cmocka_run_group_tests(tests, test_open_all_backends, test_close_all_backends);
}

/* EM and training across processes without MPI: N "processes" as threads
 * of this test, each with its own cpu backend and its share of the rows (or
 * of every batch), talking through a communicator made of a barrier, shared
 * slots and mailboxes. Their EM fit must equal tdm_em_fit's on all the rows
 * bit for bit, for every initialisation, with re-seeded components, uneven
 * shares and processes with no rows; shares and the part loaders are checked
 * against whole loads. Their training must follow one process's within the
 * backends' agreement, every process with the same bits. (mpirun with the
 * real MPI communicator: tests/mpi/test_mpi.sh.) */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.h"

enum { MAX_THREADS = 4 };

/* ---------- a communicator of threads ---------- */

typedef struct thread_group {
    int size;
    pthread_barrier_t barrier;
    const void *slots[MAX_THREADS];
    void *root_data;
    pthread_mutex_t lock; /* the mailboxes of send and receive */
    pthread_cond_t changed;
    void *mail[MAX_THREADS][MAX_THREADS]; /* [from][to]: a copy, or NULL */
} thread_group;

typedef struct thread_comm {
    tdm_comm public; /* first */
    thread_group *group;
} thread_comm;

static thread_group *group_of(tdm_comm *comm)
{
    return ((thread_comm *)comm)->group;
}

static void wait_all(tdm_comm *comm)
{
    pthread_barrier_wait(&group_of(comm)->barrier);
}

static tdm_status threads_allgather(tdm_comm *comm, const void *mine, size_t bytes, void *all)
{
    thread_group *g = group_of(comm);
    g->slots[comm->rank] = mine;
    wait_all(comm);
    for (int r = 0; r < g->size; r++)
        memcpy((char *)all + (size_t)r * bytes, g->slots[r], bytes);
    wait_all(comm);
    return TDM_OK;
}

static tdm_status threads_gather(tdm_comm *comm, const void *mine, const size_t *counts, void *all)
{
    thread_group *g = group_of(comm);
    g->slots[comm->rank] = mine;
    wait_all(comm);
    for (int r = 0, offset = 0; comm->rank == 0 && r < g->size; offset += (int)counts[r], r++)
        memcpy((char *)all + offset, g->slots[r], counts[r]);
    wait_all(comm);
    return TDM_OK;
}

static tdm_status threads_send(tdm_comm *comm, const void *data, size_t bytes, int to)
{
    thread_group *g = group_of(comm);
    void *copy = malloc(bytes + 1);
    memcpy(copy, data, bytes);
    pthread_mutex_lock(&g->lock);
    while (g->mail[comm->rank][to])
        pthread_cond_wait(&g->changed, &g->lock);
    g->mail[comm->rank][to] = copy;
    pthread_cond_broadcast(&g->changed);
    pthread_mutex_unlock(&g->lock);
    return TDM_OK;
}

static tdm_status threads_receive(tdm_comm *comm, void *data, size_t bytes, int from)
{
    thread_group *g = group_of(comm);
    pthread_mutex_lock(&g->lock);
    while (!g->mail[from][comm->rank])
        pthread_cond_wait(&g->changed, &g->lock);
    memcpy(data, g->mail[from][comm->rank], bytes);
    free(g->mail[from][comm->rank]);
    g->mail[from][comm->rank] = NULL;
    pthread_cond_broadcast(&g->changed);
    pthread_mutex_unlock(&g->lock);
    return TDM_OK;
}

static tdm_status threads_broadcast(tdm_comm *comm, void *data, size_t bytes, int root)
{
    thread_group *g = group_of(comm);
    if (comm->rank == root)
        g->root_data = data;
    wait_all(comm);
    if (comm->rank != root)
        memcpy(data, g->root_data, bytes);
    wait_all(comm);
    return TDM_OK;
}

/* In the reverse rank order, unlike one process: only exact sums may use it. */
static tdm_status threads_allreduce(tdm_comm *comm, double *data, size_t count)
{
    thread_group *g = group_of(comm);
    double *sum = calloc(count + 1, sizeof(double));
    g->slots[comm->rank] = data;
    wait_all(comm);
    for (int r = g->size - 1; r >= 0; r--)
        for (size_t i = 0; i < count; i++)
            sum[i] += ((const double *)g->slots[r])[i];
    wait_all(comm);
    memcpy(data, sum, count * sizeof(double));
    free(sum);
    return TDM_OK;
}

static void threads_abort(tdm_comm *comm, int code)
{
    (void)comm;
    fail_msg("abort(%d) called", code);
}

static void threads_free(tdm_comm *comm)
{
    (void)comm;
}

static const tdm_comm_ops thread_ops = {.allgather = threads_allgather,
                                        .gather = threads_gather,
                                        .send = threads_send,
                                        .receive = threads_receive,
                                        .broadcast = threads_broadcast,
                                        .allreduce_sum_double = threads_allreduce,
                                        .abort = threads_abort,
                                        .free = threads_free};

/* ---------- N processes fitting one data set ---------- */

typedef struct process {
    thread_comm comm; /* first: run_processes sets it */
    const tdm_binary_data *whole;
    const tdm_em_options *options;
    tdm_em_result result;
    tdm_status status;
    char message[512]; /* the failure's, from this thread */
} process;

static void *run_process(void *arg)
{
    process *p = arg;
    tdm_comm *comm = &p->comm.public;
    tdm_row_share share = {p->options->shard_rows, comm->rank, comm->size};
    tdm_binary_data part = *p->whole;
    part.bits = malloc(p->whole->rows * p->whole->row_words * sizeof(uint64_t));
    part.labels = NULL;
    memcpy(part.bits, p->whole->bits, p->whole->rows * p->whole->row_words * sizeof(uint64_t));
    tdm_backend *backend = NULL;
    p->status = tdm_binary_keep_share(&part, &share);
    if (p->status == TDM_OK)
        p->status = tdm_cpu_backend_create_threads(1, &backend);
    if (p->status == TDM_OK)
        p->status = tdm_em_fit_distributed(backend, comm, &part, p->options, &p->result);
    snprintf(p->message, sizeof p->message, "%s", p->status == TDM_OK ? "" : tdm_last_error());
    tdm_backend_free(backend);
    tdm_binary_free(&part);
    return NULL;
}

/* body on `size` threads, thread r with record r of procs (records of
 * `stride` bytes, each starting with its thread_comm, set here). */
static void run_processes(int size, void *procs, size_t stride, void *(*body)(void *))
{
    thread_group group = {.size = size};
    pthread_t threads[MAX_THREADS];
    pthread_barrier_init(&group.barrier, NULL, (unsigned)size);
    pthread_mutex_init(&group.lock, NULL);
    pthread_cond_init(&group.changed, NULL);
    for (int r = 0; r < size; r++) {
        thread_comm *comm = (thread_comm *)((char *)procs + (size_t)r * stride);
        *comm = (thread_comm){{&thread_ops, r, size, r}, &group};
        pthread_create(&threads[r], NULL, body, comm);
    }
    for (int r = 0; r < size; r++)
        pthread_join(threads[r], NULL);
    pthread_barrier_destroy(&group.barrier);
    pthread_mutex_destroy(&group.lock);
    pthread_cond_destroy(&group.changed);
}

/* The fit of `size` threads; every one's result must be the same: the first is returned. */
static tdm_em_result fit_in_threads(const tdm_binary_data *whole, const tdm_em_options *o, int size)
{
    process procs[MAX_THREADS];
    for (int r = 0; r < size; r++)
        procs[r] = (process){.whole = whole, .options = o};
    run_processes(size, procs, sizeof procs[0], run_process);
    for (int r = 0; r < size; r++) {
        assert_int_equal(procs[r].status, TDM_OK);
        const tdm_em_result *a = &procs[0].result, *b = &procs[r].result;
        assert_int_equal(a->iterations, b->iterations);
        assert_memory_equal(a->p, b->p, a->components * a->cols * sizeof(float));
        assert_memory_equal(a->history, b->history, a->iterations * sizeof(double));
    }
    for (int r = 1; r < size; r++)
        tdm_em_result_free(&procs[r].result);
    return procs[0].result;
}

static void assert_same_fit(const tdm_em_result *a, const tdm_em_result *b)
{
    assert_int_equal(a->iterations, b->iterations);
    assert_int_equal(a->reseeded, b->reseeded);
    assert_int_equal(a->best_init, b->best_init);
    assert_memory_equal(a->history, b->history, a->iterations * sizeof(double));
    assert_memory_equal(a->objective, b->objective, a->iterations * sizeof(double));
    assert_memory_equal(&a->log_likelihood, &b->log_likelihood, sizeof(double));
    assert_memory_equal(a->p, b->p, a->components * a->cols * sizeof(float));
    assert_memory_equal(a->pi, b->pi, a->components * sizeof(float));
}

/* One process on all rows, then 2, 3 and 4 threads: the same bits. */
static void check_any_process_count(const tdm_binary_data *d, const tdm_em_options *o)
{
    tdm_backend *cpu = NULL;
    assert_int_equal(tdm_cpu_backend_create_threads(1, &cpu), TDM_OK);
    tdm_em_result one;
    assert_int_equal(tdm_em_fit(cpu, d, o, &one), TDM_OK);
    for (int size = 2; size <= MAX_THREADS; size++) {
        tdm_em_result many = fit_in_threads(d, o, size);
        assert_same_fit(&one, &many);
        tdm_em_result_free(&many);
    }
    tdm_em_result_free(&one);
    tdm_backend_free(cpu);
}

/* Shards of 300 rows and blocks of 128 (a block ends where a shard does):
 * 6 shards, shared 3/3, 2/2/2 and 1/2/1/2. */
static void test_every_init_on_the_digits(void **state)
{
    (void)state;
    tdm_binary_data d = test_binary_digits();
    tdm_em_options o;
    tdm_em_options_init(&o);
    o.components = 10;
    o.n_init = 2;
    o.max_iter = 30;
    o.shard_rows = 300;
    o.block_rows = 128;
    tdm_em_init inits[] = {TDM_EM_INIT_KMEANS_PLUS_PLUS, TDM_EM_INIT_RANDOM_ROWS,
                           TDM_EM_INIT_RANDOM_RESPONSIBILITIES};
    for (size_t i = 0; i < 3; i++) {
        o.init = inits[i];
        check_any_process_count(&d, &o);
    }
    tdm_binary_free(&d);
}

/* 5 shards of 2 rows for 4 processes, and a component that goes empty and is
 * re-seeded on the worst-explained row, which another process may hold. */
static void test_reseeding_and_small_shares(void **state)
{
    (void)state;
    tdm_binary_data d;
    assert_int_equal(tdm_binary_alloc(10, 8, &d), TDM_OK);
    for (size_t i = 0; i < 10; i++)
        for (size_t j = 0; j < 8; j++)
            tdm_binary_set(&d, i, j, (i + j) % 5 == 0);
    float p[3 * 8], pi[3] = {0.998f, 0.001f, 0.001f};
    for (size_t j = 0; j < 8; j++) {
        p[j] = 0.2f;
        p[8 + j] = 1.0f; /* all ones, and all zeros: no row looks like them */
        p[16 + j] = 0.0f;
    }
    tdm_em_options o;
    tdm_em_options_init(&o);
    o.components = 3;
    o.init = TDM_EM_INIT_GIVEN;
    o.initial_p = p;
    o.initial_pi = pi;
    o.prior_a = o.prior_b = 1.0;
    o.shard_rows = 2;
    tdm_backend *cpu = NULL;
    assert_int_equal(tdm_cpu_backend_create_threads(1, &cpu), TDM_OK);
    tdm_em_result one;
    assert_int_equal(tdm_em_fit(cpu, &d, &o, &one), TDM_OK);
    assert_true(one.reseeded >= 2);
    tdm_em_result_free(&one);
    tdm_backend_free(cpu);
    check_any_process_count(&d, &o);
    o.init = TDM_EM_INIT_KMEANS_PLUS_PLUS;
    check_any_process_count(&d, &o);
    tdm_binary_free(&d);
}

/* Shards go out in order and whole; every row is held once. */
static void test_shares_cover_every_row_once(void **state)
{
    (void)state;
    size_t totals[] = {1, 7, 100, 1000, 1001};
    for (size_t t = 0; t < 5; t++)
        for (int size = 1; size <= 5; size++) {
            size_t next = 0;
            for (int rank = 0; rank < size; rank++) {
                size_t first = 0, count = 0;
                tdm_em_share(totals[t], 100, rank, size, &first, &count);
                assert_int_equal(first, next);
                assert_true(first % 100 == 0 || count == 0);
                next = first + count;
            }
            assert_int_equal(next, totals[t]);
        }
    size_t first = 0, count = 0; /* 5 shards of 2 among 3: 1, 2, 2 */
    tdm_em_share(10, 2, 0, 3, &first, &count);
    assert_true(first == 0 && count == 2);
    tdm_em_share(10, 2, 2, 3, &first, &count);
    assert_true(first == 6 && count == 4);
}

/* A process whose rows are not its share is refused on every process. */
static void test_wrong_share_is_refused(void **state)
{
    (void)state;
    tdm_binary_data d;
    assert_int_equal(tdm_binary_alloc(6, 3, &d), TDM_OK);
    tdm_binary_set(&d, 0, 0, true);
    tdm_comm *single = NULL;
    assert_int_equal(tdm_comm_single(&single), TDM_OK);
    tdm_backend *cpu = NULL;
    assert_int_equal(tdm_cpu_backend_create_threads(1, &cpu), TDM_OK);
    tdm_em_options o;
    tdm_em_options_init(&o);
    o.components = 2;
    d.total_rows = 12; /* a single process must hold all 12 */
    tdm_em_result r;
    assert_int_equal(tdm_em_fit_distributed(cpu, single, &d, &o, &r), TDM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(tdm_last_error(), "process 0 holds rows 0..6, but its share is 0..12"));
    d.total_rows = 6;
    assert_int_equal(tdm_em_fit_distributed(cpu, single, &d, &o, &r), TDM_OK);
    tdm_em_result_free(&r);
    tdm_backend_free(cpu);
    tdm_comm_free(single);
    tdm_binary_free(&d);
}

/* Processes that disagree on K fail alike, naming the one that differs. */
static void test_processes_must_agree(void **state)
{
    (void)state;
    tdm_binary_data d = test_binary_digits();
    tdm_em_options two, three;
    tdm_em_options_init(&two);
    two.components = 2;
    two.shard_rows = 300;
    three = two;
    three.components = 3;
    process procs[2] = {{.whole = &d, .options = &two}, {.whole = &d, .options = &three}};
    run_processes(2, procs, sizeof procs[0], run_process);
    for (int r = 0; r < 2; r++) {
        assert_int_equal(procs[r].status, TDM_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(procs[r].message, "process 1 fits 1797 rows of 64 columns in shards "
                                                 "of 300 with K = 3, process 0 1797 rows of 64 in "
                                                 "300 with K = 2"));
    }
    tdm_binary_free(&d);
}

/* Shares: a bad one, and a part cut again, are refused. */
static void test_bad_shares(void **state)
{
    (void)state;
    tdm_binary_data d;
    assert_int_equal(tdm_binary_alloc(10, 3, &d), TDM_OK);
    tdm_row_share past = {2, 2, 2};
    assert_int_equal(tdm_binary_keep_share(&d, &past), TDM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(tdm_last_error(), "0 <= rank < size, got 2, 2, 2"));
    tdm_row_share second = {2, 1, 2};
    assert_int_equal(tdm_binary_keep_share(&d, &second), TDM_OK);
    assert_true(d.first_row == 4 && d.rows == 6 && d.total_rows == 10); /* shards 2..4 of 5 */
    assert_int_equal(tdm_binary_keep_share(&d, &second), TDM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(tdm_last_error(), "the data is already a part"));
    tdm_binary_free(&d);
}

static void write_text(const char *path, const char *text)
{
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    fputs(text, file);
    fclose(file);
}

/* The parts of a CSV (blank lines skipped) put together are the whole; a
 * bad line is reported by the process that holds it, with its line number. */
static void test_csv_parts(void **state)
{
    (void)state;
    const char *path = "test_distributed_parts.csv";
    write_text(path, "1,0,1,7\n0,0,1,8\n\n1,1,1,9\n0,1,0,1\n1,0,0,2\n");
    tdm_binary_data whole, part;
    assert_int_equal(tdm_binary_load_csv(path, true, &whole), TDM_OK);
    for (int rank = 0; rank < 3; rank++) {
        tdm_row_share share = {2, rank, 3}; /* shards of 2: rows 0-1, 2-3, 4 */
        assert_int_equal(tdm_binary_load_csv_part(path, true, &share, &part), TDM_OK);
        assert_int_equal(part.total_rows, 5);
        assert_int_equal(part.first_row, 2 * (size_t)rank);
        assert_int_equal(part.rows, rank < 2 ? 2 : 1);
        assert_int_equal(part.cols, 3);
        assert_memory_equal(part.bits, whole.bits + part.first_row * whole.row_words,
                            part.rows * whole.row_words * sizeof(uint64_t));
        assert_memory_equal(part.labels, whole.labels + part.first_row,
                            part.rows * sizeof(int32_t));
        tdm_binary_free(&part);
    }
    tdm_binary_free(&whole);
    write_text(path, "1,0,1\n0,0,1\n1,2,1\n0,1,0\n");
    tdm_row_share first = {2, 0, 2}, second = {2, 1, 2};
    assert_int_equal(tdm_binary_load_csv_part(path, false, &first, &part), TDM_OK);
    tdm_binary_free(&part);
    assert_int_equal(tdm_binary_load_csv_part(path, false, &second, &part), TDM_ERR_DATA);
    assert_non_null(strstr(tdm_last_error(), "test_distributed_parts.csv:3: value 2"));
    tdm_row_share bad = {0, 0, 2};
    assert_int_equal(tdm_binary_load_csv_part(path, false, &bad, &part), TDM_ERR_INVALID_ARGUMENT);
    remove(path);
}

/* A .npy of bytes and a packed one: parts read from where they start. */
static void test_npy_parts(void **state)
{
    (void)state;
    const char *path = "test_distributed_parts.npy";
    static const char header[] = "{'descr': '|u1', 'fortran_order': False, 'shape': (5, 3), }";
    FILE *file = fopen(path, "wb");
    assert_non_null(file);
    unsigned char prefix[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, sizeof header - 1, 0};
    fwrite(prefix, 1, 10, file);
    fwrite(header, 1, sizeof header - 1, file);
    unsigned char values[15] = {1, 0, 1, 0, 0, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0};
    fwrite(values, 1, 15, file);
    fclose(file);
    tdm_binary_data whole, part;
    assert_int_equal(tdm_binary_load_npy(path, 0, &whole), TDM_OK);
    for (int rank = 0; rank < 4; rank++) {
        tdm_row_share share = {2, rank, 4}; /* 3 shards among 4: one process has none */
        assert_int_equal(tdm_binary_load_npy_part(path, 0, &share, &part), TDM_OK);
        size_t first = 0, count = 0;
        tdm_em_share(5, 2, rank, 4, &first, &count);
        assert_true(part.first_row == first && part.rows == count && part.total_rows == 5);
        assert_int_equal(part.cols, 3);
        if (count)
            assert_memory_equal(part.bits, whole.bits + first * whole.row_words,
                                count * whole.row_words * sizeof(uint64_t));
        tdm_binary_free(&part);
    }
    tdm_binary_free(&whole);
    remove(path);
}

/* ---------- data-parallel training ---------- */

typedef struct history {
    tdm_metrics rows[8];
    size_t count;
} history;

static tdm_status record(void *user, tdm_trainer *trainer, const tdm_metrics *m)
{
    (void)trainer;
    history *h = user;
    h->rows[h->count++] = *m;
    return TDM_OK;
}

typedef struct trainer_process {
    thread_comm comm; /* first: run_processes sets it */
    const tdm_dataset *train, *test;
    const tdm_train_options *options;
    history metrics;
    tdm_status status;
} trainer_process;

static void *run_trainer(void *arg)
{
    trainer_process *p = arg;
    tdm_backend *backend = NULL;
    tdm_trainer *t = NULL;
    tdm_model_spec spec;
    p->status = tdm_model_spec_resnet(4, (tdm_sample_shape){1, 8, 8}, 10, &spec);
    if (p->status == TDM_OK)
        p->status = tdm_cpu_backend_create_threads(1, &backend);
    if (p->status == TDM_OK)
        p->status = tdm_trainer_create_shared(backend, &p->comm.public, &spec, p->train, p->test,
                                              p->options, &t);
    if (p->status == TDM_OK)
        p->status = tdm_trainer_run(t, record, &p->metrics);
    tdm_trainer_free(t);
    tdm_backend_free(backend);
    return NULL;
}

/* The metrics of `size` threads training together: every one the same bits. */
static history train_in_threads(const tdm_dataset *train, const tdm_dataset *test,
                                const tdm_train_options *o, int size)
{
    trainer_process procs[MAX_THREADS];
    for (int r = 0; r < size; r++)
        procs[r] = (trainer_process){.train = train, .test = test, .options = o};
    run_processes(size, procs, sizeof procs[0], run_trainer);
    for (int r = 0; r < size; r++) {
        assert_int_equal(procs[r].status, TDM_OK);
        assert_int_equal(procs[r].metrics.count, procs[0].metrics.count);
        for (size_t e = 0; e < procs[0].metrics.count; e++) {
            tdm_metrics a = procs[0].metrics.rows[e], b = procs[r].metrics.rows[e];
            a.seconds = b.seconds = 0.0;
            assert_memory_equal(&a, &b, sizeof a);
        }
    }
    return procs[0].metrics;
}

/* The backends' agreement over training (tests/test_training.c): losses
 * within 1e-4 relative, error rates within 0.5 points. */
static void assert_same_training(const history *one, const history *many, int size)
{
    double worst = 0.0, error_gap = 0.0;
    assert_int_equal(one->count, many->count);
    for (size_t e = 0; e < one->count; e++) {
        const tdm_metrics *x = &many->rows[e], *y = &one->rows[e];
        worst = fmax(worst, fabs(x->train_loss - y->train_loss) / y->train_loss);
        worst = fmax(worst, fabs(x->test_loss - y->test_loss) / y->test_loss);
        error_gap = fmax(error_gap, fabs(x->train_error - y->train_error));
        error_gap = fmax(error_gap, fabs(x->test_error - y->test_error));
    }
    printf("%d processes against 1 over %zu evaluations: loss %.2e relative, error %.2f points\n",
           size, one->count, worst, 100 * error_gap);
    if (worst > 1e-4 || error_gap > 0.005)
        fail_msg("%d processes disagree with 1: loss %.3g (max 1e-4), error %.3g (max 0.005)", size,
                 worst, error_gap);
    assert_true(many->rows[one->count - 1].train_loss < 0.7 * many->rows[0].train_loss);
}

/* ResNet(4) on the digits (1437 training samples: the last batch of 29 is
 * shared 14/15 and 9/10/10), in data order, then shuffled with momentum. */
static void test_training_shares_every_batch(void **state)
{
    (void)state;
    tdm_dataset train, test;
    test_load_digits(&train, &test);
    tdm_train_options o;
    tdm_train_options_init(&o);
    for (int variant = 0; variant < 2; variant++) {
        o.epochs = variant ? 2 : 4;
        o.shuffle = variant == 1;
        o.sgd.momentum = variant ? 0.9f : 0.0f;
        history one = train_in_threads(&train, &test, &o, 1);
        for (int size = 2; size <= 3; size++) {
            history many = train_in_threads(&train, &test, &o, size);
            assert_same_training(&one, &many, size);
        }
    }
    tdm_dataset_free(&train);
    tdm_dataset_free(&test);
}

/* A batch too small to give every process a sample is refused up front. */
static void test_training_batch_too_small(void **state)
{
    (void)state;
    tdm_dataset train, test;
    test_load_digits(&train, &test);
    tdm_train_options o;
    tdm_train_options_init(&o);
    o.batch = 2;
    thread_group group = {.size = 3};
    thread_comm comm = {{&thread_ops, 0, 3, 0}, &group};
    tdm_backend *cpu = NULL;
    assert_int_equal(tdm_cpu_backend_create_threads(1, &cpu), TDM_OK);
    tdm_model_spec spec;
    assert_int_equal(tdm_model_spec_resnet(4, (tdm_sample_shape){1, 8, 8}, 10, &spec), TDM_OK);
    tdm_trainer *t = NULL;
    assert_int_equal(tdm_trainer_create_shared(cpu, &comm.public, &spec, &train, &test, &o, &t),
                     TDM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(tdm_last_error(), "a batch of 2 samples among 3 processes"));
    tdm_backend_free(cpu);
    tdm_dataset_free(&train);
    tdm_dataset_free(&test);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shares_cover_every_row_once),
        cmocka_unit_test(test_every_init_on_the_digits),
        cmocka_unit_test(test_reseeding_and_small_shares),
        cmocka_unit_test(test_wrong_share_is_refused),
        cmocka_unit_test(test_processes_must_agree),
        cmocka_unit_test(test_bad_shares),
        cmocka_unit_test(test_csv_parts),
        cmocka_unit_test(test_npy_parts),
        cmocka_unit_test(test_training_shares_every_batch),
        cmocka_unit_test(test_training_batch_too_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

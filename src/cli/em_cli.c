/* tandem em: fits a mixture of Bernoullis and writes params.csv,
 * assignments.csv, history.csv and the picture of the cluster means; with
 * --k-sweep, k-sweep.csv and its BIC/AIC picture. Data and options are
 * checked, and the model fitted, before any file is created. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/errors.h"
#include "cli/plot.h"
#include "cli/run_output.h"
#include "core/error.h"

static bool is_npy(const char *path)
{
    size_t length = strlen(path);
    return length >= 4 && strcmp(path + length - 4, ".npy") == 0;
}

/* This process's share of the configured data: a 0/1 CSV or .npy file (only
 * the share's rows are read), or every [data] image binarised (for IDX data,
 * the training images; every process reads them all and keeps its share). */
static tdm_status load_binary(const cli_config *config, const tdm_row_share *share,
                              tdm_binary_data *out)
{
    const cli_em_config *em = &config->em;
    if (em->path[0] && is_npy(em->path)) {
        if (em->labels)
            return cli_error(TDM_ERR_CONFIG, "%s: a .npy file holds no labels (labels = false)",
                             em->path);
        return tdm_binary_load_npy_part(em->path, em->packed_cols, share, out);
    }
    if (em->packed_cols)
        return cli_error(TDM_ERR_CONFIG, "packed_cols is for .npy files made by numpy.packbits");
    if (em->path[0])
        return tdm_binary_load_csv_part(em->path, em->labels, share, out);
    const tdm_data_config *d = &config->data;
    tdm_dataset images = {0}, unused = {0};
    tdm_status status = strcmp(d->format, "idx") == 0
                            ? tdm_data_config_load(d, &images, &unused)
                            : tdm_dataset_load_csv_capped(d->path, d->shape, d->max_pixel,
                                                          d->classes, d->max_mb << 20, &images);
    if (status == TDM_OK)
        status = tdm_binary_from_dataset(&images, config->em.threshold, out);
    if (status == TDM_OK)
        status = tdm_binary_keep_share(out, share);
    tdm_dataset_free(&images);
    tdm_dataset_free(&unused);
    return status;
}

/* ---------- files ---------- */

static void write_params(FILE *file, const tdm_em_result *r)
{
    fputs("component,pi", file);
    for (size_t d = 0; d < r->cols; d++)
        fprintf(file, ",p%zu", d);
    fputc('\n', file);
    for (size_t k = 0; k < r->components; k++) {
        fprintf(file, "%zu,%.9g", k, (double)r->pi[k]);
        for (size_t d = 0; d < r->cols; d++)
            fprintf(file, ",%.9g", (double)r->p[k * r->cols + d]);
        fputc('\n', file);
    }
}

static void write_history(FILE *file, const tdm_em_result *r)
{
    fputs("iteration,mean_log_likelihood,mean_objective\n", file);
    for (size_t i = 0; i < r->iterations; i++)
        fprintf(file, "%zu,%.12g,%.12g\n", i + 1, r->history[i], r->objective[i]);
}

/* Every process's rows, gathered on process 0. */
typedef struct all_rows {
    size_t rows;
    int32_t *clusters;
    int32_t *labels; /* NULL without labels */
} all_rows;

static void write_assignments(FILE *file, const all_rows *all)
{
    fputs(all->labels ? "row,cluster,label\n" : "row,cluster\n", file);
    for (size_t i = 0; i < all->rows; i++) {
        fprintf(file, "%zu,%d", i, all->clusters[i]);
        if (all->labels)
            fprintf(file, ",%d", all->labels[i]);
        fputc('\n', file);
    }
}

/* K blocks of an H x W matrix, for gnuplot's `matrix with image`. */
static void write_means(FILE *file, const tdm_em_result *r, size_t height, size_t width)
{
    for (size_t k = 0; k < r->components; k++) {
        for (size_t h = 0; h < height; h++) {
            for (size_t w = 0; w < width; w++)
                fprintf(file, "%s%.6f", w ? " " : "", (double)r->p[k * r->cols + h * width + w]);
            fputc('\n', file);
        }
        fputs("\n\n", file);
    }
}

/* A fit's outputs, all or none: each written to its temporary and closed,
 * then all renamed into place. */
typedef struct fit_outputs {
    const tdm_em_result *result;
    const all_rows *all;
    size_t height, width; /* of the means' picture; 0: none */
} fit_outputs;

enum { PARAMS, HISTORY, ASSIGNMENTS, MEANS, OUTPUT_COUNT };

static void write_output(int which, FILE *file, const fit_outputs *o)
{
    switch (which) {
    case PARAMS: write_params(file, o->result); break;
    case HISTORY: write_history(file, o->result); break;
    case ASSIGNMENTS: write_assignments(file, o->all); break;
    case MEANS: write_means(file, o->result, o->height, o->width); break;
    }
}

static tdm_status write_outputs(const char *dir, const fit_outputs *o)
{
    static const char *const names[OUTPUT_COUNT] = {"params.csv", "history.csv", "assignments.csv",
                                                    "means.dat"};
    cli_file files[OUTPUT_COUNT] = {{0}};
    int count = o->height ? OUTPUT_COUNT : MEANS;
    tdm_status status = TDM_OK;
    for (int i = 0; i < count && status == TDM_OK; i++) {
        status = cli_file_open(&files[i], dir, names[i]);
        if (status == TDM_OK) {
            write_output(i, files[i].file, o);
            status = cli_file_finish(&files[i]);
        }
    }
    for (int i = 0; i < count && status == TDM_OK; i++)
        status = cli_file_rename(&files[i]);
    for (int i = 0; i < count; i++)
        cli_file_discard(&files[i]);
    return status;
}

/* ---------- one fit ---------- */

/* The log-likelihood per iteration: a live line on a terminal, else a line
 * per iteration; nothing with -q. */
typedef struct em_progress {
    bool terminal, quiet;
} em_progress;

static void on_iteration(void *user, size_t restart, size_t iteration, double mean_ll)
{
    const em_progress *p = user;
    if (p->quiet)
        return;
    fprintf(stderr, "%srestart %zu, iteration %zu: log-likelihood per sample %.6f%s",
            p->terminal ? "\r\033[K" : "", restart + 1, iteration, mean_ll,
            p->terminal ? "" : "\n");
    fflush(stderr);
}

static void print_fit(const all_rows *all, const tdm_em_result *r)
{
    printf("K = %zu: %zu iterations (%s), log-likelihood %.3f (%.4f per sample), BIC %.1f, "
           "AIC %.1f%s\n",
           r->components, r->iterations, r->converged ? "converged" : "max_iter reached",
           r->log_likelihood, r->log_likelihood / (double)all->rows, tdm_em_bic(r, all->rows),
           tdm_em_aic(r, all->rows), r->reseeded ? ", empty components re-seeded" : "");
    if (all->labels)
        printf("purity %.4f, adjusted Rand index %.4f\n",
               tdm_cluster_purity(all->clusters, all->labels, all->rows),
               tdm_adjusted_rand_index(all->clusters, all->labels, all->rows));
}

static void picture_shape(const cli_config *config, size_t cols, size_t *height, size_t *width)
{
    *height = config->em.image_height;
    *width = config->em.image_width;
    if (!*height && !config->em.path[0]) {
        *height = config->data.shape.height;
        *width = config->data.shape.width * config->data.shape.channels;
    }
    if (*height * *width != cols)
        *height = *width = 0;
}

/* mine: one value per row of this process; *out: every process's, in row
 * order, on process 0 (NULL elsewhere). */
static tdm_status gather_rows(tdm_comm *comm, const tdm_binary_data *data, size_t shard_rows,
                              const int32_t *mine, int32_t **out)
{
    size_t *counts = malloc((size_t)comm->size * sizeof(size_t)), first = 0, count = 0;
    *out = comm->rank == 0 ? malloc(data->total_rows * sizeof(int32_t) + 1) : NULL;
    tdm_status status = counts && (comm->rank != 0 || *out)
                            ? TDM_OK
                            : cli_error(TDM_ERR_OUT_OF_MEMORY, "out of memory");
    for (int r = 0; status == TDM_OK && r < comm->size; r++) {
        tdm_em_share(data->total_rows, shard_rows, r, comm->size, &first, &count);
        counts[r] = count * sizeof(int32_t);
    }
    if (status == TDM_OK)
        status = comm->ops->gather(comm, mine, counts, *out);
    free(counts);
    return status;
}

/* Each process's clusters (and labels), on process 0. */
static tdm_status gather_all(tdm_comm *comm, const tdm_binary_data *data, size_t shard_rows,
                             const int32_t *clusters, all_rows *all)
{
    *all = (all_rows){.rows = data->total_rows};
    TDM_TRY(gather_rows(comm, data, shard_rows, clusters, &all->clusters));
    return data->labels ? gather_rows(comm, data, shard_rows, data->labels, &all->labels) : TDM_OK;
}

/* Process 0's part: the files, the summary and the picture. */
static tdm_status write_fit(const cli_options *options, const cli_config *config,
                            const tdm_em_result *r, const all_rows *all, const char *dir)
{
    size_t height, width;
    picture_shape(config, r->cols, &height, &width);
    TDM_TRY(cli_make_dir(dir));
    fit_outputs outputs = {.result = r, .all = all, .height = height, .width = width};
    TDM_TRY(write_outputs(dir, &outputs));
    print_fit(all, r);
    if (height)
        TDM_TRY(cli_plot_em(dir, r->components, height, width, r->pi, false, options->quiet));
    else
        printf("no picture of the means: set [em] image = HxW for %zu columns\n", r->cols);
    printf("results in %s\n", dir);
    return TDM_OK;
}

static tdm_status fit_and_write(const cli_options *options, const cli_config *config,
                                tdm_backend *backend, const tdm_binary_data *data, const char *dir)
{
    tdm_comm *comm = options->comm;
    tdm_em_result r;
    int32_t *clusters = malloc(data->rows * sizeof(int32_t) + 1);
    if (!clusters)
        return cli_error(TDM_ERR_OUT_OF_MEMORY, "out of memory");
    em_progress progress = {isatty(STDERR_FILENO) == 1, options->quiet || comm->rank != 0};
    tdm_em_options fit_options = config->em.options;
    fit_options.on_iteration = on_iteration;
    fit_options.user = &progress;
    tdm_status status = tdm_em_fit_distributed(backend, comm, data, &fit_options, &r);
    if (progress.terminal && !progress.quiet)
        fputc('\n', stderr);
    if (status == TDM_OK)
        status = tdm_em_predict(backend, data, &r, clusters);
    all_rows all = {0};
    if (status == TDM_OK)
        status = gather_all(comm, data, fit_options.shard_rows, clusters, &all);
    if (status == TDM_OK && comm->rank == 0)
        status = write_fit(options, config, &r, &all, dir);
    tdm_em_result_free(&r);
    free(all.clusters);
    free(all.labels);
    free(clusters);
    return status;
}

/* ---------- --k-sweep ---------- */

static tdm_status parse_range(const char *text, size_t *from, size_t *to)
{
    char extra;
    if (sscanf(text, "%zu..%zu%c", from, to, &extra) != 2 || *from == 0 || *to < *from ||
        *to - *from > 1000)
        return cli_error(TDM_ERR_CONFIG, "--k-sweep must be A..B with 1 <= A <= B, got '%s'", text);
    return TDM_OK;
}

/* k-sweep.csv and its picture, on process 0. */
static tdm_status write_sweep(const cli_options *options, const double *scores, size_t from,
                              size_t to, const char *dir)
{
    TDM_TRY(cli_make_dir(dir));
    cli_file table = {0};
    tdm_status status = cli_file_open(&table, dir, "k-sweep.csv");
    if (status == TDM_OK) {
        fputs("components,log_likelihood,bic,aic\n", table.file);
        for (size_t k = from; k <= to; k++)
            fprintf(table.file, "%zu,%.9g,%.9g,%.9g\n", k, scores[3 * (k - from)],
                    scores[3 * (k - from) + 1], scores[3 * (k - from) + 2]);
        status = cli_file_commit(&table);
    }
    cli_file_discard(&table);
    if (status == TDM_OK)
        status = cli_plot_em(dir, 0, 0, 0, NULL, true, options->quiet);
    return status;
}

static tdm_status k_sweep(const cli_options *options, cli_config *config, tdm_backend *backend,
                          const tdm_binary_data *data, const char *dir)
{
    size_t from, to, rows = data->total_rows;
    bool leader = options->comm->rank == 0;
    tdm_status status = parse_range(options->k_sweep, &from, &to);
    if (status == TDM_OK && to > rows)
        status =
            cli_error(TDM_ERR_CONFIG, "--k-sweep up to %zu but the data has %zu rows", to, rows);
    double *scores = status == TDM_OK ? malloc(3 * (to - from + 1) * sizeof(double)) : NULL;
    if (status == TDM_OK && !scores)
        status = cli_error(TDM_ERR_OUT_OF_MEMORY, "out of memory");
    if (status == TDM_OK && leader)
        printf("%6s %16s %14s %14s\n", "K", "log-likelihood", "BIC", "AIC");
    for (size_t k = from; status == TDM_OK && k <= to; k++) {
        tdm_em_result r;
        config->em.options.components = k;
        status = tdm_em_fit_distributed(backend, options->comm, data, &config->em.options, &r);
        if (status != TDM_OK)
            break;
        double *row = scores + 3 * (k - from);
        row[0] = r.log_likelihood;
        row[1] = tdm_em_bic(&r, rows);
        row[2] = tdm_em_aic(&r, rows);
        if (leader)
            printf("%6zu %16.3f %14.1f %14.1f\n", k, row[0], row[1], row[2]);
        fflush(stdout);
        tdm_em_result_free(&r);
    }
    if (status == TDM_OK && leader)
        status = write_sweep(options, scores, from, to, dir);
    free(scores);
    return status;
}

int cmd_em(const cli_options *options)
{
    tdm_comm *comm = options->comm;
    cli_config config;
    tdm_binary_data data = {0};
    tdm_backend *backend = NULL;
    tdm_status status = cli_load_config(options, &config);
    tdm_row_share share = {config.em.options.shard_rows, comm->rank, comm->size};
    if (status == TDM_OK)
        status = load_binary(&config, comm->size > 1 ? &share : NULL, &data);
    if (status == TDM_OK)
        status = cli_open_backend(options, &config, &backend);
    status = cli_agree(comm, status);
    bool agreed = status == TDM_OK;
    char dir[CLI_PATH_CAPACITY];
    cli_run_folder(&config.run, options->k_sweep ? "em-k-sweep" : "em", dir, sizeof dir);
    if (status == TDM_OK && !options->quiet && comm->rank == 0)
        fprintf(stderr, "tandem: %zu rows of %zu binary values%s\n", data.total_rows, data.cols,
                comm->size > 1 ? ", shared out among the processes" : "");
    if (status == TDM_OK)
        status = options->k_sweep ? k_sweep(options, &config, backend, &data, dir)
                                  : fit_and_write(options, &config, backend, &data, dir);
    tdm_binary_free(&data);
    tdm_backend_free(backend);
    return status == TDM_OK ? 0 : cli_fail_processes(comm, agreed);
}

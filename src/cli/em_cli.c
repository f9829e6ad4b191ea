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

#include "cli/cli.h"
#include "tandem/config.h"

void cli_em_config_init(cli_em_config *em)
{
    memset(em, 0, sizeof *em);
    tdm_em_options_init(&em->options);
    em->threshold = 8.0f;
}

tdm_status cli_em_config_set(void *target, const char *key, const char *value)
{
    cli_em_config *em = target;
    if (strcmp(key, "path") == 0) {
        if (!value[0] || strlen(value) >= sizeof em->path)
            return tdm_config_error("path must be 1 to %zu characters", sizeof em->path - 1);
        strcpy(em->path, value);
        return TDM_OK;
    }
    if (strcmp(key, "labels") == 0)
        return tdm_parse_bool(key, value, &em->labels);
    if (strcmp(key, "threshold") == 0)
        return tdm_parse_float(key, value, -1e30, 1e30, &em->threshold);
    if (strcmp(key, "packed_cols") == 0)
        return tdm_parse_size(key, value, 0, SIZE_MAX, &em->packed_cols);
    if (strcmp(key, "image") == 0) {
        char extra;
        if (sscanf(value, "%zux%zu%c", &em->image_height, &em->image_width, &extra) != 2 ||
            em->image_height == 0 || em->image_width == 0)
            return tdm_config_error("image must be HxW, got '%s'", value);
        return TDM_OK;
    }
    return tdm_em_options_set(&em->options, key, value);
}

static bool is_npy(const char *path)
{
    size_t length = strlen(path);
    return length >= 4 && strcmp(path + length - 4, ".npy") == 0;
}

/* The configured data: a 0/1 CSV or .npy file, or every [data] image binarised (for IDX
 * data, the training images). */
static tdm_status load_binary(const cli_config *config, tdm_binary_data *out)
{
    const cli_em_config *em = &config->em;
    if (em->path[0] && is_npy(em->path)) {
        if (em->labels)
            return cli_error(TDM_ERR_CONFIG, "%s: a .npy file holds no labels (labels = false)",
                             em->path);
        return tdm_binary_load_npy(em->path, em->packed_cols, out);
    }
    if (em->packed_cols)
        return cli_error(TDM_ERR_CONFIG, "packed_cols is for .npy files made by numpy.packbits");
    if (em->path[0])
        return tdm_binary_load_csv(em->path, em->labels, out);
    const tdm_data_config *d = &config->data;
    tdm_dataset images = {0}, unused = {0};
    tdm_status status =
        strcmp(d->format, "idx") == 0
            ? tdm_data_config_load(d, &images, &unused)
            : tdm_dataset_load_csv(d->path, d->shape, d->max_pixel, d->classes, &images);
    if (status == TDM_OK)
        status = tdm_binary_from_dataset(&images, config->em.threshold, out);
    tdm_dataset_free(&images);
    tdm_dataset_free(&unused);
    return status;
}

/* ---------- files ---------- */

static FILE *open_output(const char *dir, const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", dir, name);
    FILE *file = fopen(path, "w");
    if (!file)
        cli_error(TDM_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return file;
}

static tdm_status close_output(FILE *file, const char *path)
{
    return fclose(file) == 0 ? TDM_OK : cli_error(TDM_ERR_IO, "cannot write %s", path);
}

static tdm_status write_params(const char *dir, const tdm_em_result *r)
{
    char path[2100];
    FILE *file = open_output(dir, "params.csv", path, sizeof path);
    if (!file)
        return TDM_ERR_IO;
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
    return close_output(file, path);
}

static tdm_status write_history(const char *dir, const tdm_em_result *r)
{
    char path[2100];
    FILE *file = open_output(dir, "history.csv", path, sizeof path);
    if (!file)
        return TDM_ERR_IO;
    fputs("iteration,mean_log_likelihood,mean_objective\n", file);
    for (size_t i = 0; i < r->iterations; i++)
        fprintf(file, "%zu,%.12g,%.12g\n", i + 1, r->history[i], r->objective[i]);
    return close_output(file, path);
}

static tdm_status write_assignments(const char *dir, const tdm_binary_data *data,
                                    const int32_t *clusters)
{
    char path[2100];
    FILE *file = open_output(dir, "assignments.csv", path, sizeof path);
    if (!file)
        return TDM_ERR_IO;
    fputs(data->labels ? "row,cluster,label\n" : "row,cluster\n", file);
    for (size_t i = 0; i < data->rows; i++) {
        fprintf(file, "%zu,%d", i, clusters[i]);
        if (data->labels)
            fprintf(file, ",%d", data->labels[i]);
        fputc('\n', file);
    }
    return close_output(file, path);
}

/* K blocks of an H x W matrix, for gnuplot's `matrix with image`. */
static tdm_status write_means(const char *dir, const tdm_em_result *r, size_t height, size_t width)
{
    char path[2100];
    FILE *file = open_output(dir, "means.dat", path, sizeof path);
    if (!file)
        return TDM_ERR_IO;
    for (size_t k = 0; k < r->components; k++) {
        for (size_t h = 0; h < height; h++) {
            for (size_t w = 0; w < width; w++)
                fprintf(file, "%s%.6f", w ? " " : "", (double)r->p[k * r->cols + h * width + w]);
            fputc('\n', file);
        }
        fputs("\n\n", file);
    }
    return close_output(file, path);
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

static void print_fit(const tdm_binary_data *data, const tdm_em_result *r, const int32_t *clusters)
{
    printf("K = %zu: %zu iterations (%s), log-likelihood %.3f (%.4f per sample), BIC %.1f, "
           "AIC %.1f%s\n",
           r->components, r->iterations, r->converged ? "converged" : "max_iter reached",
           r->log_likelihood, r->log_likelihood / (double)data->rows, tdm_em_bic(r, data->rows),
           tdm_em_aic(r, data->rows), r->reseeded ? ", empty components re-seeded" : "");
    if (data->labels && clusters)
        printf("purity %.4f, adjusted Rand index %.4f\n",
               tdm_cluster_purity(clusters, data->labels, data->rows),
               tdm_adjusted_rand_index(clusters, data->labels, data->rows));
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

static tdm_status fit_and_write(const cli_options *options, const cli_config *config,
                                tdm_backend *backend, const tdm_binary_data *data, const char *dir)
{
    tdm_em_result r;
    int32_t *clusters = malloc(data->rows * sizeof(int32_t));
    if (!clusters)
        return cli_error(TDM_ERR_OUT_OF_MEMORY, "out of memory");
    em_progress progress = {isatty(STDERR_FILENO) == 1, options->quiet};
    tdm_em_options fit_options = config->em.options;
    fit_options.on_iteration = on_iteration;
    fit_options.user = &progress;
    tdm_status status = tdm_em_fit(backend, data, &fit_options, &r);
    if (progress.terminal && !progress.quiet)
        fputc('\n', stderr);
    if (status == TDM_OK)
        status = tdm_em_predict(backend, data, &r, clusters);
    size_t height, width;
    picture_shape(config, data->cols, &height, &width);
    if (status == TDM_OK)
        status = cli_make_dir(dir);
    if (status == TDM_OK)
        status = write_params(dir, &r);
    if (status == TDM_OK)
        status = write_history(dir, &r);
    if (status == TDM_OK)
        status = write_assignments(dir, data, clusters);
    if (status == TDM_OK && height)
        status = write_means(dir, &r, height, width);
    if (status == TDM_OK)
        print_fit(data, &r, clusters);
    if (status == TDM_OK && height)
        status = cli_plot_em(dir, r.components, height, width, r.pi, false, options->quiet);
    else if (status == TDM_OK)
        printf("no picture of the means: set [em] image = HxW for %zu columns\n", data->cols);
    if (status == TDM_OK)
        printf("results in %s\n", dir);
    tdm_em_result_free(&r);
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

static tdm_status k_sweep(const cli_options *options, cli_config *config, tdm_backend *backend,
                          const tdm_binary_data *data, const char *dir)
{
    size_t from, to;
    tdm_status status = parse_range(options->k_sweep, &from, &to);
    if (status == TDM_OK && to > data->rows)
        status = cli_error(TDM_ERR_CONFIG, "--k-sweep up to %zu but the data has %zu rows", to,
                           data->rows);
    double *scores = status == TDM_OK ? malloc(3 * (to - from + 1) * sizeof(double)) : NULL;
    if (status == TDM_OK && !scores)
        status = cli_error(TDM_ERR_OUT_OF_MEMORY, "out of memory");
    printf("%6s %16s %14s %14s\n", "K", "log-likelihood", "BIC", "AIC");
    for (size_t k = from; status == TDM_OK && k <= to; k++) {
        tdm_em_result r;
        config->em.options.components = k;
        status = tdm_em_fit(backend, data, &config->em.options, &r);
        if (status != TDM_OK)
            break;
        double *row = scores + 3 * (k - from);
        row[0] = r.log_likelihood;
        row[1] = tdm_em_bic(&r, data->rows);
        row[2] = tdm_em_aic(&r, data->rows);
        printf("%6zu %16.3f %14.1f %14.1f\n", k, row[0], row[1], row[2]);
        fflush(stdout);
        tdm_em_result_free(&r);
    }
    if (status == TDM_OK)
        status = cli_make_dir(dir);
    char path[2100];
    FILE *file = status == TDM_OK ? open_output(dir, "k-sweep.csv", path, sizeof path) : NULL;
    if (status == TDM_OK && !file)
        status = TDM_ERR_IO;
    if (file) {
        fputs("components,log_likelihood,bic,aic\n", file);
        for (size_t k = from; k <= to; k++)
            fprintf(file, "%zu,%.9g,%.9g,%.9g\n", k, scores[3 * (k - from)],
                    scores[3 * (k - from) + 1], scores[3 * (k - from) + 2]);
        status = close_output(file, path);
    }
    if (status == TDM_OK)
        status = cli_plot_em(dir, 0, 0, 0, NULL, true, options->quiet);
    free(scores);
    return status;
}

int cmd_em(const cli_options *options)
{
    cli_config config;
    tdm_binary_data data = {0};
    tdm_backend *backend = NULL;
    tdm_status status = cli_load_config(options, &config);
    if (status == TDM_OK && !config.run.name_set)
        strcpy(config.run.name, options->k_sweep ? "em-k-sweep" : "em");
    if (status == TDM_OK)
        status = load_binary(&config, &data);
    if (status == TDM_OK)
        status = cli_open_backend(options, &config, &backend);
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/%s", config.run.out, config.run.name);
    if (status == TDM_OK && !options->quiet)
        fprintf(stderr, "tandem: %zu rows of %zu binary values\n", data.rows, data.cols);
    if (status == TDM_OK)
        status = options->k_sweep ? k_sweep(options, &config, backend, &data, dir)
                                  : fit_and_write(options, &config, backend, &data, dir);
    tdm_binary_free(&data);
    tdm_backend_free(backend);
    return status == TDM_OK ? 0 : cli_fail();
}

/* tandem train and tandem sweep: runs of the training loop that write
 * metrics.csv and checkpoints into a run folder, and for the sweep the
 * pictures and summary.md. Everything is checked (config, data, device,
 * model) before the first file is created. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "cli/errors.h"
#include "cli/plot.h"
#include "cli/progress.h"
#include "cli/run_output.h"
#include "core/error.h"

static const char metrics_header[] = "epoch,train_loss,train_err,test_loss,test_err,seconds\n";

/* On --resume: keeps the rows up to the checkpoint's epoch, so the file goes
 * on exactly as an uninterrupted run's would. */
static tdm_status truncate_metrics(const char *dir, size_t last_epoch)
{
    char path[CLI_PATH_CAPACITY + 64], line[512];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    FILE *in = fopen(path, "r");
    if (!in)
        return cli_error(TDM_ERR_IO, "cannot read %s for --resume: %s", path, strerror(errno));
    cli_file out;
    tdm_status status = cli_file_open(&out, dir, "metrics.csv");
    if (status == TDM_OK) {
        fputs(metrics_header, out.file);
        while (fgets(line, sizeof line, in)) {
            char *end = NULL;
            unsigned long long epoch = strtoull(line, &end, 10);
            if (end != line && *end == ',' && epoch <= last_epoch)
                fputs(line, out.file);
        }
        status = cli_file_commit(&out);
    }
    fclose(in);
    return status;
}

/* ---------- one run ---------- */

typedef struct run_state {
    const cli_options *options;
    const cli_config *config;
    char dir[CLI_PATH_CAPACITY], checkpoint[CLI_PATH_CAPACITY + 64],
        metrics_path[CLI_PATH_CAPACITY + 64];
    FILE *metrics;
    size_t last_checkpoint;
    cli_progress progress;
    tdm_metrics final;
    size_t rows_written; /* metrics rows this run flushed to metrics.csv */
    bool new_metrics;    /* metrics.csv was created by this run, not resumed */
    bool leader;         /* process 0 (of mpirun's), the one that writes and prints */
} run_state;

static tdm_status save_checkpoint(run_state *run, tdm_trainer *trainer)
{
    tdm_status status = tdm_trainer_save(trainer, run->checkpoint);
    if (status == TDM_OK)
        run->last_checkpoint = tdm_trainer_epoch(trainer);
    return status;
}

static tdm_status on_metrics(void *user, tdm_trainer *trainer, const tdm_metrics *m)
{
    run_state *run = user;
    run->final = *m;
    if (!run->leader)
        return TDM_OK;
    fprintf(run->metrics, "%zu,%.9g,%.9g,%.9g,%.9g,%.3f\n", m->epoch, m->train_loss, m->train_error,
            m->test_loss, m->test_error, m->seconds);
    if (fflush(run->metrics) != 0)
        return cli_error(TDM_ERR_IO, "cannot write %s: %s", run->metrics_path, strerror(errno));
    run->rows_written++;
    cli_progress_update(&run->progress, m);
    bool due = m->epoch - run->last_checkpoint >= run->config->run.checkpoint_every ||
               m->epoch == run->config->train.epochs;
    return due && m->epoch > 0 ? save_checkpoint(run, trainer) : TDM_OK;
}

/* Resumes from the run folder's checkpoint when asked and present. */
static tdm_status open_outputs(run_state *run, tdm_trainer *trainer)
{
    FILE *existing = run->options->resume ? fopen(run->checkpoint, "rb") : NULL;
    if (run->options->resume && !existing && !run->options->quiet)
        fprintf(stderr, "tandem: --resume: no checkpoint in %s yet, starting at epoch 0\n",
                run->dir);
    if (existing) {
        fclose(existing);
        tdm_status status = tdm_trainer_load(trainer, run->checkpoint);
        if (status != TDM_OK)
            return status;
        run->last_checkpoint = tdm_trainer_epoch(trainer);
        status = run->leader ? truncate_metrics(run->dir, run->last_checkpoint) : TDM_OK;
        if (status != TDM_OK)
            return status;
    }
    if (!run->leader)
        return TDM_OK;
    run->metrics = fopen(run->metrics_path, existing ? "a" : "w");
    if (!run->metrics)
        return cli_error(TDM_ERR_IO, "cannot write %s: %s", run->metrics_path, strerror(errno));
    run->new_metrics = !existing;
    if (!existing)
        fputs(metrics_header, run->metrics);
    return TDM_OK;
}

/* Trains one model in dir; run->final holds the last metrics. */
static tdm_status train_one(run_state *run, tdm_backend *backend, const tdm_model_spec *spec,
                            const tdm_dataset *train, const tdm_dataset *test, const char *label)
{
    tdm_trainer *trainer = NULL;
    tdm_status status = tdm_trainer_create_shared(backend, run->options->comm, spec, train, test,
                                                  &run->config->train, &trainer);
    if (status == TDM_OK && run->leader)
        status = cli_make_dir(run->dir);
    snprintf(run->checkpoint, sizeof run->checkpoint, "%s/checkpoint.bin", run->dir);
    snprintf(run->metrics_path, sizeof run->metrics_path, "%s/metrics.csv", run->dir);
    if (status == TDM_OK)
        status = open_outputs(run, trainer);
    if (status == TDM_OK) {
        cli_progress_start(&run->progress, run->options->quiet || !run->leader, label,
                           tdm_trainer_epoch(trainer), run->config->train.epochs);
        status = tdm_trainer_run(trainer, on_metrics, run);
        cli_progress_finish(&run->progress);
    }
    /* A resumed run that was already complete: report where it stands. */
    if (status == TDM_OK && run->final.epoch != tdm_trainer_epoch(trainer))
        status = tdm_trainer_evaluate(trainer, &run->final);
    if (run->metrics && fclose(run->metrics) != 0 && status == TDM_OK)
        status = cli_error(TDM_ERR_IO, "cannot write %s: %s", run->metrics_path, strerror(errno));
    /* A new run that failed before its first row (a full disk, say) leaves
     * no empty metrics.csv behind. */
    if (run->metrics && status != TDM_OK && run->new_metrics && run->rows_written == 0)
        remove(run->metrics_path);
    run->metrics = NULL;
    tdm_trainer_free(trainer);
    return status;
}

/* Config, data and device: everything that can be wrong before any file. */
typedef struct run_setup {
    cli_config config;
    tdm_dataset train, test;
    tdm_backend *backend;
} run_setup;

static tdm_status prepare(const cli_options *options, run_setup *setup)
{
    memset(setup, 0, sizeof *setup);
    tdm_status status = cli_load_config(options, &setup->config);
    if (status == TDM_OK)
        status = tdm_data_config_load(&setup->config.data, &setup->train, &setup->test);
    if (status == TDM_OK)
        status = cli_open_backend(options, &setup->config, &setup->backend);
    return status;
}

static void release(run_setup *setup)
{
    tdm_dataset_free(&setup->train);
    tdm_dataset_free(&setup->test);
    tdm_backend_free(setup->backend);
}

static void print_final(const char *label, const tdm_metrics *m)
{
    printf("%s: epoch %zu: train error %.2f%%, test error %.2f%% (train loss %.4f, test loss "
           "%.4f), %.1f s\n",
           label, m->epoch, 100 * m->train_error, 100 * m->test_error, m->train_loss, m->test_loss,
           m->seconds);
}

/* Across mpirun's processes, each trains on its share of every batch;
 * process 0 writes and prints. */
int cmd_train(const cli_options *options)
{
    run_setup setup;
    run_state run = {.options = options, .leader = options->comm->rank == 0};
    tdm_status status = cli_agree(options->comm, prepare(options, &setup));
    bool agreed = status == TDM_OK;
    if (status == TDM_OK) {
        run.config = &setup.config;
        cli_run_folder(&setup.config.run, "resnet", run.dir, sizeof run.dir);
        status = train_one(&run, setup.backend, &setup.config.model, &setup.train, &setup.test,
                           strrchr(run.dir, '/') + 1);
    }
    if (status == TDM_OK && run.leader)
        print_final(run.dir, &run.final);
    release(&setup);
    return status == TDM_OK ? 0 : cli_fail_processes(options->comm, agreed);
}

/* ---------- the sweep ---------- */

static tdm_status write_summary(const char *dir, const cli_curve *curves, const tdm_metrics *finals,
                                size_t count)
{
    cli_file summary;
    TDM_TRY(cli_file_open(&summary, dir, "summary.md"));
    fprintf(summary.file,
            "# ResNet(C) on the digits\n\n"
            "Final errors after %zu epochs (misclassified fraction, evaluation mode).\n\n"
            "| C | train error | test error | gap (test - train) | train loss | test loss |"
            " seconds |\n| --- | --- | --- | --- | --- | --- | --- |\n",
            finals[0].epoch);
    for (size_t i = 0; i < count; i++) {
        const tdm_metrics *m = &finals[i];
        fprintf(summary.file, "| %zu | %.2f%% | %.2f%% | %.2f points | %.4f | %.4f | %.1f |\n",
                curves[i].channels, 100 * m->train_error, 100 * m->test_error,
                100 * (m->test_error - m->train_error), m->train_loss, m->test_loss, m->seconds);
    }
    return cli_file_commit(&summary);
}

static void print_sweep_summary(const cli_curve *curves, const tdm_metrics *finals, size_t count)
{
    printf("%6s %12s %12s %12s\n", "C", "train error", "test error", "gap");
    for (size_t i = 0; i < count; i++)
        printf("%6zu %11.2f%% %11.2f%% %9.2f pts\n", curves[i].channels,
               100 * finals[i].train_error, 100 * finals[i].test_error,
               100 * (finals[i].test_error - finals[i].train_error));
}

static tdm_status run_sweep(const cli_options *options, run_setup *setup, char *dir,
                            size_t dir_size)
{
    const cli_run_config *cfg = &setup->config.run;
    cli_curve curves[CLI_MAX_SWEEP];
    tdm_metrics finals[CLI_MAX_SWEEP] = {{0}};
    cli_run_folder(cfg, "sweep", dir, dir_size);
    for (size_t i = 0; i < cfg->sweep_count; i++) {
        tdm_model_spec spec;
        tdm_status status = tdm_model_spec_resnet(cfg->sweep[i], setup->train.shape,
                                                  setup->config.data.classes, &spec);
        curves[i] = (cli_curve){.channels = cfg->sweep[i], .group = cfg->sweep_group[i]};
        snprintf(curves[i].folder, sizeof curves[i].folder, "c%zu", cfg->sweep[i]);
        run_state run = {.options = options, .config = &setup->config, .leader = true};
        snprintf(run.dir, sizeof run.dir, "%s/%s", dir, curves[i].folder);
        char label[32];
        snprintf(label, sizeof label, "C=%zu", cfg->sweep[i]);
        if (status == TDM_OK)
            status = train_one(&run, setup->backend, &spec, &setup->train, &setup->test, label);
        if (status != TDM_OK)
            return status;
        finals[i] = run.final;
        if (!options->quiet)
            print_final(label, &run.final);
    }
    tdm_status written = write_summary(dir, curves, finals, cfg->sweep_count);
    if (written != TDM_OK)
        return written;
    print_sweep_summary(curves, finals, cfg->sweep_count);
    return cli_plot_sweep(dir, curves, cfg->sweep_count, options->quiet);
}

int cmd_sweep(const cli_options *options)
{
    run_setup setup;
    char dir[CLI_PATH_CAPACITY] = "";
    tdm_status status = prepare(options, &setup);
    if (status == TDM_OK)
        status = run_sweep(options, &setup, dir, sizeof dir);
    if (status == TDM_OK)
        printf("results in %s: summary.md, c*/metrics.csv, the pictures\n", dir);
    release(&setup);
    return status == TDM_OK ? 0 : cli_fail();
}

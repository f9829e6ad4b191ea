/* The command-line tool: the only place that prints and exits. */
#ifndef TANDEM_CLI_H
#define TANDEM_CLI_H

#include <stdbool.h>

#include "tandem/tandem.h"

/* Flags that override a [train] or [run] key: --epochs 10 is `epochs = 10`. */
typedef struct cli_override {
    const char *flag, *key, *value;
} cli_override;

enum { CLI_MAX_OVERRIDES = 8 };

typedef struct cli_options {
    const char *config_path;    /* --config, or NULL for the built-in defaults */
    const char *device_string;  /* --device */
    const char *threads_string; /* --threads */
    size_t channels;            /* --channels: ResNet(C) instead of the config's model; 0 unset */
    bool quiet;                 /* -q */
    bool resume;                /* --resume */
    cli_override overrides[CLI_MAX_OVERRIDES];
    size_t override_count;
    const char *k_sweep; /* --k-sweep A..B */
} cli_options;

enum { CLI_MAX_SWEEP = 16 };

/* The [run] section: where results go and how often to checkpoint. */
typedef struct cli_run_config {
    char out[1024];                    /* results directory: runs */
    char name[256];                    /* a run's folder under out: resnet (train), sweep (sweep) */
    size_t checkpoint_every;           /* epochs between checkpoints: 100 */
    size_t sweep[CLI_MAX_SWEEP];       /* the channels of tandem sweep: 1 2 4 | 64 */
    size_t sweep_group[CLI_MAX_SWEEP]; /* which figure each belongs to */
    size_t sweep_count;
    bool name_set;
} cli_run_config;

/* The [em] keys of the CLI (the fitting options go to tdm_em_options). */
typedef struct cli_em_config {
    tdm_em_options options;
    char path[1024];    /* a CSV or .npy of 0/1 rows; empty: the [data] images, binarised */
    size_t packed_cols; /* a .npy of numpy.packbits(X, axis=1): X's columns; 0: not packed */
    bool labels;        /* the CSV's last column is a label */
    float threshold;    /* images: pixel >= threshold is 1 (8 for the digits) */
    size_t image_height, image_width; /* how to draw a mean; 0: from [data] */
} cli_em_config;

/* Everything a config file holds, after the command-line overrides. */
typedef struct cli_config {
    tdm_device_config device;
    tdm_model_spec model; /* ResNet(4) on 1x8x8 digits unless [model] says otherwise */
    tdm_data_config data;
    tdm_train_options train;
    cli_run_config run;
    cli_em_config em;
} cli_config;

/* Prints "tandem: error: <message>" and returns the exit status 1: the
 * message of cli_error if one was recorded, else the library's. */
int cli_fail(void);
tdm_status cli_error(tdm_status status, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
const char *cli_library_error(void); /* without its "(at src/...)" */

/* mkdir -p, then a probe file, so an unwritable folder fails before any work. */
tdm_status cli_make_dir(const char *path);

/* Defaults, then the config file, then TANDEM_DEVICE, TANDEM_THREADS and the
 * flags. */
tdm_status cli_load_config(const cli_options *options, cli_config *config);

/* Creates the backend of a loaded config and says once, on stderr (unless
 * -q), which it is. */
tdm_status cli_open_backend(const cli_options *options, const cli_config *config,
                            tdm_backend **backend);

int cmd_devices(const cli_options *options);
int cmd_selftest(const cli_options *options);
int cmd_summary(const cli_options *options);
int cmd_train(const cli_options *options);
int cmd_sweep(const cli_options *options);
int cmd_em(const cli_options *options);

void cli_em_config_init(cli_em_config *em);
tdm_status cli_em_config_set(void *em, const char *key, const char *value);

/* Draws dir/means.png from dir/means.dat (K images) with gnuplot, and
 * dir/bic.png from dir/k-sweep.csv when sweep is set. */
tdm_status cli_plot_em(const char *dir, size_t components, size_t height, size_t width,
                       const float *pi, bool sweep, bool quiet);

/* [run] keys: out, name, checkpoint_every, sweep. */
void cli_run_config_init(cli_run_config *run);
tdm_status cli_run_config_set(void *run, const char *key, const char *value);

/* Live progress: a rewritten line on a terminal, a line every 10 s
 * otherwise, nothing with -q. */
typedef struct cli_progress {
    bool terminal, quiet;
    char label[64];
    size_t total_epochs, first_epoch;
    double started, last_line;
} cli_progress;

void cli_progress_start(cli_progress *p, bool quiet, const char *label, size_t first_epoch,
                        size_t total_epochs);
void cli_progress_update(cli_progress *p, const tdm_metrics *m);
void cli_progress_finish(cli_progress *p);

/* One training curve per run folder, for the pictures of a sweep. */
typedef struct cli_curve {
    size_t channels, group;
    char folder[64]; /* relative to the sweep folder, e.g. "c4" */
} cli_curve;

/* Writes dir/plot.gp (error and loss figures, one per group) and runs
 * gnuplot on it; without gnuplot, says how to make them later. */
tdm_status cli_plot_sweep(const char *dir, const cli_curve *curves, size_t count, bool quiet);

#endif

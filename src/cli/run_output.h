/* Where a command's results go: the [run] section, the run folder and the
 * files in it, written to a temporary name and renamed into place only when
 * complete, so a failure leaves no partial file. tandem train, sweep and em
 * all write through it. */
#ifndef TANDEM_CLI_RUN_OUTPUT_H
#define TANDEM_CLI_RUN_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>

#include "tandem/tandem.h"

enum { CLI_MAX_SWEEP = 16, CLI_PATH_CAPACITY = 2048 };

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

/* [run] keys: out, name, checkpoint_every, sweep. */
void cli_run_config_init(cli_run_config *run);
tdm_status cli_run_config_set(void *run, const char *key, const char *value);

/* out/name, with name the default when the config did not set one. */
void cli_run_folder(const cli_run_config *run, const char *default_name, char *out, size_t size);

/* mkdir -p, then a probe file, so an unwritable folder fails before any work. */
tdm_status cli_make_dir(const char *path);

/* A file being written as dir/name.tmp; committed (renamed to dir/name) or
 * discarded. Zero-initialise one that may be discarded before it is opened. */
typedef struct cli_file {
    FILE *file;
    char path[CLI_PATH_CAPACITY + 64], temporary[CLI_PATH_CAPACITY + 72];
} cli_file;

tdm_status cli_file_open(cli_file *f, const char *dir, const char *name);
/* Closes the file, reporting any write error (a full disk) with its reason;
 * the temporary is removed on failure. */
tdm_status cli_file_finish(cli_file *f);
/* Renames a finished file into place. */
tdm_status cli_file_rename(cli_file *f);
/* Both: finish, then rename. */
tdm_status cli_file_commit(cli_file *f);
/* Closes and removes the temporary; safe on a file never opened. */
void cli_file_discard(cli_file *f);

#endif

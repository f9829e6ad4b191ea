/* What a command runs with: the flags of the command line, and the config
 * file's sections with the flags and environment applied over them. */
#ifndef TANDEM_CLI_CONFIG_H
#define TANDEM_CLI_CONFIG_H

#include <stdbool.h>

#include "cli/em_config.h"
#include "cli/run_output.h"
#include "tandem/tandem.h"

/* A flag that sets a config key: --epochs 10 is `epochs = 10` in [train].
 * A NULL section is the command's own ([em] for tandem em, else [train]). */
typedef struct cli_override {
    const char *flag, *section, *key, *value;
} cli_override;

enum { CLI_MAX_OVERRIDES = 16 };

typedef struct cli_options {
    const char *config_path;     /* --config, or NULL for the built-in defaults */
    const char *device_string;   /* --device */
    const char *threads_string;  /* --threads */
    const char *command_section; /* the section of the flags that name none */
    size_t channels;             /* --channels: ResNet(C) instead of the config's model; 0 unset */
    bool quiet;                  /* -q */
    bool resume;                 /* --resume */
    cli_override overrides[CLI_MAX_OVERRIDES];
    size_t override_count;
    const char *k_sweep; /* --k-sweep A..B */
    tdm_comm *comm;      /* the processes of this run (one, unless started by mpirun) */
} cli_options;

/* Everything a config file holds, after the command-line overrides. */
typedef struct cli_config {
    tdm_device_config device;
    tdm_model_spec model; /* ResNet(4) on 1x8x8 digits unless [model] says otherwise */
    tdm_data_config data;
    tdm_train_options train;
    cli_run_config run;
    cli_em_config em;
} cli_config;

/* Defaults, then the config file, then the flags that set keys, then
 * TANDEM_DEVICE and --device, TANDEM_THREADS and --threads, then
 * --channels. */
tdm_status cli_load_config(const cli_options *options, cli_config *config);

/* Creates the backend of a loaded config and says once, on stderr (unless
 * -q), which it is. */
tdm_status cli_open_backend(const cli_options *options, const cli_config *config,
                            tdm_backend **backend);

#endif

/* The command-line tool: the only place that prints and exits. */
#ifndef TANDEM_CLI_H
#define TANDEM_CLI_H

#include <stdbool.h>

#include "tandem/tandem.h"

typedef struct cli_options {
    const char *config_path;   /* --config, or NULL for the built-in defaults */
    const char *device_string; /* --device */
    size_t channels;           /* --channels: ResNet(C) instead of the config's model; 0 unset */
    bool quiet;                /* -q */
} cli_options;

/* Everything a config file holds, after the command-line overrides. */
typedef struct cli_config {
    tdm_device_config device;
    tdm_model_spec model; /* ResNet(4) on 1x8x8 digits unless [model] says otherwise */
} cli_config;

/* Prints "tandem: error: <last error>" and returns the exit status 1. */
int cli_fail(void);

/* Defaults, then the config file, then TANDEM_DEVICE and the flags. */
tdm_status cli_load_config(const cli_options *options, cli_config *config);

/* Creates the configured backend and says once, on stderr, which it is. */
tdm_status cli_open_backend(const cli_options *options, tdm_backend **backend);

int cmd_devices(const cli_options *options);
int cmd_selftest(const cli_options *options);
int cmd_summary(const cli_options *options);

#endif

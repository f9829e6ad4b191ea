/* The command-line tool: the only place that prints and exits. */
#ifndef TANDEM_CLI_H
#define TANDEM_CLI_H

#include <stdbool.h>

#include "tandem/tandem.h"

typedef struct cli_options {
    const char *config_path;   /* --config, or NULL for the built-in defaults */
    const char *device_string; /* --device */
    bool quiet;                /* -q */
} cli_options;

/* Prints "tandem: error: <last error>" and returns the exit status 1. */
int cli_fail(void);

/* Defaults, then the config file, then TANDEM_DEVICE, then --device. */
tdm_status cli_device_config(const cli_options *options, tdm_device_config *config);

/* Creates the configured backend and says once, on stderr, which it is. */
tdm_status cli_open_backend(const cli_options *options, tdm_backend **backend);

int cmd_devices(const cli_options *options);
int cmd_selftest(const cli_options *options);

#endif

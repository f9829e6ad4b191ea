/* The commands of tandem, each a main of its own: 0 on success, else the
 * error printed and 1. */
#ifndef TANDEM_CLI_COMMANDS_H
#define TANDEM_CLI_COMMANDS_H

#include "cli/config.h"

int cmd_devices(const cli_options *options);  /* device_commands.c */
int cmd_selftest(const cli_options *options); /* selftest.c */
int cmd_tune(const cli_options *options);     /* device_commands.c */
int cmd_summary(const cli_options *options);  /* summary.c */
int cmd_train(const cli_options *options);    /* train_cli.c */
int cmd_sweep(const cli_options *options);    /* train_cli.c */
int cmd_em(const cli_options *options);       /* em_cli.c */

#endif

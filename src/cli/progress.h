/* Live progress of a training run on stderr: a rewritten line on a
 * terminal, a line every 10 s otherwise, nothing with -q. */
#ifndef TANDEM_CLI_PROGRESS_H
#define TANDEM_CLI_PROGRESS_H

#include <stdbool.h>

#include "tandem/tandem.h"

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

#endif

/* Progress of a training run on stderr. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <unistd.h>

#include "cli/progress.h"
#include "core/clock.h"

enum { PLAIN_LINE_SECONDS = 10 };

void cli_progress_start(cli_progress *p, bool quiet, const char *label, size_t first_epoch,
                        size_t total_epochs)
{
    *p = (cli_progress){.terminal = isatty(STDERR_FILENO) == 1,
                        .quiet = quiet,
                        .total_epochs = total_epochs,
                        .first_epoch = first_epoch,
                        .started = tdm_monotonic_seconds()};
    snprintf(p->label, sizeof p->label, "%s", label);
    p->last_line = p->started;
}

/* "1m05s" */
static void format_duration(double seconds, char *out, size_t size)
{
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(out, size, "%ldh%02ldm", s / 3600, s / 60 % 60);
    else if (s >= 60)
        snprintf(out, size, "%ldm%02lds", s / 60, s % 60);
    else
        snprintf(out, size, "%lds", s);
}

void cli_progress_update(cli_progress *p, const tdm_metrics *m)
{
    double t = tdm_monotonic_seconds(), elapsed = t - p->started;
    bool last = m->epoch == p->total_epochs;
    if (p->quiet || (!p->terminal && !last && t - p->last_line < PLAIN_LINE_SECONDS))
        return;
    p->last_line = t;
    size_t done = m->epoch - p->first_epoch, left = p->total_epochs - m->epoch;
    char spent[32], eta[32] = "?";
    format_duration(elapsed, spent, sizeof spent);
    if (done > 0)
        format_duration(elapsed / (double)done * (double)left, eta, sizeof eta);
    fprintf(stderr,
            "%s%s epoch %zu/%zu  loss %.4f/%.4f  error %.2f%%/%.2f%% (train/test)  %s  ETA %s%s",
            p->terminal ? "\r\033[K" : "", p->label, m->epoch, p->total_epochs, m->train_loss,
            m->test_loss, 100 * m->train_error, 100 * m->test_error, spent, eta,
            p->terminal ? "" : "\n");
    fflush(stderr);
}

void cli_progress_finish(cli_progress *p)
{
    if (p->terminal && !p->quiet)
        fputc('\n', stderr);
}

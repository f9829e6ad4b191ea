/* The pictures, drawn by gnuplot from the CSVs through a script left beside
 * them; without gnuplot the CSVs stay and the tool says how to draw them. */
#ifndef TANDEM_CLI_PLOT_H
#define TANDEM_CLI_PLOT_H

#include <stdbool.h>
#include <stddef.h>

#include "tandem/tandem.h"

/* One training curve per run folder, for the pictures of a sweep. */
typedef struct cli_curve {
    size_t channels, group;
    char folder[64]; /* relative to the sweep folder, e.g. "c4" */
} cli_curve;

/* Writes dir/plot.gp (error and loss figures, one per group) and runs
 * gnuplot on it. */
tdm_status cli_plot_sweep(const char *dir, const cli_curve *curves, size_t count, bool quiet);

/* Draws dir/means.png from dir/means.dat (K images) with gnuplot, and
 * dir/bic.png from dir/k-sweep.csv when sweep is set. */
tdm_status cli_plot_em(const char *dir, size_t components, size_t height, size_t width,
                       const float *pi, bool sweep, bool quiet);

#endif

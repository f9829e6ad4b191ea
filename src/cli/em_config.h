/* The [em] section as the command line reads it: the fitting options of
 * tdm_em_options, and where the data come from and how to draw them. */
#ifndef TANDEM_CLI_EM_CONFIG_H
#define TANDEM_CLI_EM_CONFIG_H

#include <stdbool.h>

#include "tandem/tandem.h"

typedef struct cli_em_config {
    tdm_em_options options;
    char path[1024];    /* a CSV or .npy of 0/1 rows; empty: the [data] images, binarised */
    size_t packed_cols; /* a .npy of numpy.packbits(X, axis=1): X's columns; 0: not packed */
    bool labels;        /* the CSV's last column is a label */
    float threshold;    /* images: pixel >= threshold is 1 (8 for the digits) */
    size_t image_height, image_width; /* how to draw a mean; 0: from [data] */
} cli_em_config;

void cli_em_config_init(cli_em_config *em);
/* The keys above, then tdm_em_options_set's. */
tdm_status cli_em_config_set(void *em, const char *key, const char *value);

#endif

/* Reading text data files line by line, plain or gzipped (zlib). */
#ifndef TANDEM_DATA_TEXT_LINES_H
#define TANDEM_DATA_TEXT_LINES_H

#include <stddef.h>

#include <zlib.h>

#include "tandem/status.h"

/* Called for each line that is not blank, with its 1-based number. */
typedef tdm_status (*tdm_line_handler)(void *user, char *line, size_t number);

/* Calls on_line for every non-blank line of path until one fails. Fails
 * itself, naming the file (and line), when the file cannot be opened, a line
 * is longer than 1 MiB, or the data is corrupt; *count is the lines handed
 * to on_line. */
tdm_status tdm_read_lines(const char *path, tdm_line_handler on_line, void *user, size_t *count);

/* gzopen with an error naming the file. */
tdm_status tdm_open_data_file(const char *path, gzFile *out);

#endif

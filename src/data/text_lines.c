#include "data/text_lines.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

enum { MAX_LINE = 1 << 20 };

tdm_status tdm_open_data_file(const char *path, gzFile *out)
{
    errno = 0;
    *out = gzopen(path, "rb");
    if (!*out)
        return TDM_FAIL(TDM_ERR_DATA, "cannot open data file %s: %s", path,
                        errno ? strerror(errno) : "out of memory");
    return TDM_OK;
}

static tdm_status each_line(gzFile file, const char *path, char *line, tdm_line_handler on_line,
                            void *user, size_t *count)
{
    size_t number = 0;
    while (gzgets(file, line, MAX_LINE)) {
        number++;
        size_t length = strlen(line);
        if (length == MAX_LINE - 1 && line[length - 1] != '\n')
            return TDM_FAIL(TDM_ERR_DATA, "%s:%zu: line longer than %d bytes", path, number,
                            MAX_LINE - 2);
        if (line[strspn(line, " \t\r\n")] == '\0')
            continue;
        TDM_TRY(on_line(user, line, number));
        (*count)++;
    }
    int code = Z_OK;
    const char *message = gzerror(file, &code);
    if (code != Z_OK && code != Z_STREAM_END)
        return TDM_FAIL(TDM_ERR_DATA, "%s: cannot read (corrupt or truncated?): %s", path, message);
    return TDM_OK;
}

tdm_status tdm_read_lines(const char *path, tdm_line_handler on_line, void *user, size_t *count)
{
    *count = 0;
    char *line = malloc(MAX_LINE);
    if (!line)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "out of memory reading %s", path);
    gzFile file = NULL;
    tdm_status status = tdm_open_data_file(path, &file);
    if (status == TDM_OK)
        status = each_line(file, path, line, on_line, user, count);
    if (file)
        gzclose(file);
    free(line);
    return status;
}

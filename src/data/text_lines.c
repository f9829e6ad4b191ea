/* Lines from a plain or gzipped file, read a megabyte at a time: a run of
 * empty lines is skipped at the speed of a byte loop (gzgets cost 80 ns a
 * line: 8 GB of blank lines took 11 minutes before "no samples"). */
#include "data/text_lines.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

enum { MAX_LINE = 1 << 20, CHUNK = 1 << 20 };

tdm_status tdm_open_data_file(const char *path, gzFile *out)
{
    errno = 0;
    *out = gzopen(path, "rb");
    if (!*out)
        return TDM_FAIL(TDM_ERR_DATA, "cannot open data file %s: %s", path,
                        errno ? strerror(errno) : "out of memory");
    return TDM_OK;
}

typedef struct line_reader {
    gzFile file;
    const char *path;
    char *chunk, *line; /* CHUNK bytes read, MAX_LINE + 1 for the line being built */
    size_t start, end;  /* the unread bytes of chunk */
    size_t number;      /* lines ended so far */
} line_reader;

/* Reads the next chunk; *more is false at the end of the file. */
static tdm_status refill(line_reader *r, bool *more)
{
    int got = gzread(r->file, r->chunk, CHUNK);
    int code = Z_OK;
    const char *message = gzerror(r->file, &code);
    if (got < 0 || (code != Z_OK && code != Z_STREAM_END))
        return TDM_FAIL(TDM_ERR_DATA, "%s: cannot read (corrupt or truncated?): %s", r->path,
                        message);
    r->start = 0;
    r->end = (size_t)got;
    *more = got > 0;
    return TDM_OK;
}

static bool is_blank(const char *text, size_t length)
{
    for (size_t i = 0; i < length; i++)
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r' && text[i] != '\n')
            return false;
    return true;
}

/* Appends chunk bytes [start, start + n) to the line of `length` bytes. */
static tdm_status append(line_reader *r, size_t *length, size_t n)
{
    if (*length + n > MAX_LINE)
        return TDM_FAIL(TDM_ERR_DATA, "%s:%zu: line longer than %d bytes", r->path, r->number + 1,
                        MAX_LINE - 1);
    if (memchr(r->chunk + r->start, '\0', n))
        return TDM_FAIL(TDM_ERR_DATA, "%s:%zu: a NUL byte in the line", r->path, r->number + 1);
    memcpy(r->line + *length, r->chunk + r->start, n);
    *length += n;
    r->start += n;
    return TDM_OK;
}

/* The next line (its newline kept) into r->line; *length 0 at the end of
 * the file. Empty lines before it are only counted. */
static tdm_status next_line(line_reader *r, size_t *length)
{
    *length = 0;
    bool more = true;
    for (;;) {
        if (r->start == r->end)
            TDM_TRY(refill(r, &more));
        if (!more)
            break;
        if (*length == 0)
            while (r->start < r->end && r->chunk[r->start] == '\n') {
                r->start++;
                r->number++;
            }
        if (r->start == r->end)
            continue;
        const char *newline = memchr(r->chunk + r->start, '\n', r->end - r->start);
        size_t n = newline ? (size_t)(newline - (r->chunk + r->start)) + 1 : r->end - r->start;
        TDM_TRY(append(r, length, n));
        if (newline)
            break;
    }
    if (*length > 0)
        r->number++;
    r->line[*length] = '\0';
    return TDM_OK;
}

static tdm_status each_line(line_reader *r, tdm_line_handler on_line, void *user, size_t *count)
{
    for (;;) {
        size_t length = 0;
        TDM_TRY(next_line(r, &length));
        if (length == 0)
            return TDM_OK;
        if (is_blank(r->line, length))
            continue;
        TDM_TRY(on_line(user, r->line, r->number));
        (*count)++;
    }
}

tdm_status tdm_read_lines(const char *path, tdm_line_handler on_line, void *user, size_t *count)
{
    *count = 0;
    line_reader r = {.path = path, .chunk = malloc(CHUNK), .line = malloc(MAX_LINE + 1)};
    tdm_status status = r.chunk && r.line
                            ? TDM_OK
                            : TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "out of memory reading %s", path);
    if (status == TDM_OK)
        status = tdm_open_data_file(path, &r.file);
    if (status == TDM_OK)
        status = each_line(&r, on_line, user, count);
    if (r.file)
        gzclose(r.file);
    free(r.chunk);
    free(r.line);
    return status;
}

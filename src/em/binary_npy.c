/* numpy's .npy files for EM: a 2-D C-order array of uint8 or bool holding
 * 0/1, or the output of numpy.packbits(X, axis=1) with its column count.
 * The format: "\x93NUMPY", a version, a little-endian header length, then a
 * Python dict literal giving descr, fortran_order and shape, then the data. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "em/em_internal.h"

/* A header longer than this is not one numpy writes (it pads to 64 bytes). */
enum { MAX_HEADER = 65536, CHUNK_ROWS = 4096 };

typedef struct npy_header {
    size_t rows, cols;  /* the shape */
    size_t data_offset; /* bytes before the data */
} npy_header;

/* The text after 'key': in the header dict, or NULL. */
static const char *find_value(const char *header, const char *key)
{
    const char *at = strstr(header, key);
    if (!at)
        return NULL;
    at += strlen(key);
    while (*at == ' ')
        at++;
    return *at == ':' ? at + 1 : NULL;
}

static const char *skip_spaces(const char *text)
{
    while (*text == ' ')
        text++;
    return text;
}

static tdm_status check_descr(const char *path, const char *header)
{
    const char *descr = find_value(header, "'descr'");
    if (!descr)
        return TDM_FAIL(TDM_ERR_DATA, "%s: the .npy header has no 'descr'", path);
    descr = skip_spaces(descr);
    if (strncmp(descr, "'|u1'", 5) == 0 || strncmp(descr, "'|b1'", 5) == 0)
        return TDM_OK;
    const char *end = *descr ? strchr(descr + 1, '\'') : NULL; /* the header may end here */
    int length = end ? (int)(end - descr + 1) : 8;
    return TDM_FAIL(TDM_ERR_DATA,
                    "%s: dtype %.*s is not uint8 or bool (save X.astype(numpy.uint8), or "
                    "numpy.packbits(X, axis=1))",
                    path, length, descr);
}

static tdm_status check_order(const char *path, const char *header)
{
    const char *order = find_value(header, "'fortran_order'");
    order = order ? skip_spaces(order) : NULL;
    if (order && strncmp(order, "False", 5) == 0)
        return TDM_OK;
    if (order && strncmp(order, "True", 4) == 0)
        return TDM_FAIL(TDM_ERR_DATA,
                        "%s: the array is in Fortran order (save numpy.ascontiguousarray(X))",
                        path);
    return TDM_FAIL(TDM_ERR_DATA, "%s: the .npy header has no valid 'fortran_order'", path);
}

/* One dimension of the shape tuple: digits, then ',' or ')'. */
static bool parse_dimension(const char **text, size_t *out)
{
    const char *at = skip_spaces(*text);
    if (*at < '0' || *at > '9')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(at, &end, 10);
    if (errno == ERANGE || value > SIZE_MAX)
        return false;
    *out = (size_t)value;
    *text = skip_spaces(end);
    if (**text == ',')
        *text = skip_spaces(*text + 1);
    return true;
}

static tdm_status parse_shape(const char *path, const char *header, npy_header *h)
{
    const char *shape = find_value(header, "'shape'");
    shape = shape ? skip_spaces(shape) : NULL;
    if (!shape || *shape != '(')
        return TDM_FAIL(TDM_ERR_DATA, "%s: the .npy header has no valid 'shape'", path);
    const char *at = shape + 1;
    size_t dims[8], count = 0;
    while (count < 8 && *skip_spaces(at) != ')' && parse_dimension(&at, &dims[count]))
        count++;
    if (*skip_spaces(at) != ')')
        return TDM_FAIL(TDM_ERR_DATA, "%s: the .npy header's 'shape' is malformed", path);
    if (count != 2)
        return TDM_FAIL(TDM_ERR_DATA, "%s: a %zu-D array, expected 2-D (rows, columns)", path,
                        count);
    if (dims[0] == 0 || dims[1] == 0)
        return TDM_FAIL(TDM_ERR_DATA, "%s: the array is empty (shape %zu x %zu)", path, dims[0],
                        dims[1]);
    h->rows = dims[0];
    h->cols = dims[1];
    return TDM_OK;
}

static tdm_status read_header(const char *path, FILE *file, npy_header *h)
{
    unsigned char start[12];
    if (fread(start, 1, 10, file) != 10 || memcmp(start, "\x93NUMPY", 6) != 0)
        return TDM_FAIL(TDM_ERR_DATA, "%s: not a .npy file (no \\x93NUMPY magic)", path);
    if (start[6] < 1 || start[6] > 3)
        return TDM_FAIL(TDM_ERR_DATA, "%s: .npy format version %d.%d is not 1, 2 or 3", path,
                        start[6], start[7]);
    size_t length = start[8] | (size_t)start[9] << 8, prefix = 10;
    if (start[6] > 1) { /* a 4-byte length */
        if (fread(start + 10, 1, 2, file) != 2)
            return TDM_FAIL(TDM_ERR_DATA, "%s: the .npy header is truncated", path);
        length |= (size_t)start[10] << 16 | (size_t)start[11] << 24;
        prefix = 12;
    }
    if (length == 0 || length > MAX_HEADER)
        return TDM_FAIL(TDM_ERR_DATA, "%s: a .npy header of %zu bytes", path, length);
    char *header = malloc(length + 1);
    if (!header)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    tdm_status status = fread(header, 1, length, file) == length
                            ? TDM_OK
                            : TDM_FAIL(TDM_ERR_DATA, "%s: the .npy header is truncated", path);
    header[length] = '\0';
    if (status == TDM_OK && strlen(header) != length)
        status = TDM_FAIL(TDM_ERR_DATA, "%s: the .npy header holds a NUL byte", path);
    if (status == TDM_OK)
        status = check_descr(path, header);
    if (status == TDM_OK)
        status = check_order(path, header);
    if (status == TDM_OK)
        status = parse_shape(path, header, h);
    h->data_offset = prefix + length;
    free(header);
    return status;
}

/* The file holds exactly rows x bytes_per_row bytes of data after the header. */
static tdm_status check_size(const char *path, FILE *file, const npy_header *h,
                             size_t bytes_per_row)
{
    struct stat info;
    if (fstat(fileno(file), &info) != 0 || !S_ISREG(info.st_mode))
        return TDM_FAIL(TDM_ERR_IO, "%s: not a regular file", path);
    size_t data = (size_t)info.st_size - h->data_offset;
    if ((size_t)info.st_size < h->data_offset || h->rows > SIZE_MAX / bytes_per_row ||
        data != h->rows * bytes_per_row)
        return TDM_FAIL(TDM_ERR_DATA,
                        "%s: the header says %zu x %zu, but the file holds %lld bytes of data "
                        "(truncated, or not what the header says)",
                        path, h->rows, h->cols,
                        (long long)info.st_size - (long long)h->data_offset);
    return TDM_OK;
}

/* A row of 0/1 bytes into its (zeroed) words; false if a byte is not 0 or 1. */
static bool pack_row(const uint8_t *values, size_t cols, uint64_t *words)
{
    uint8_t any = 0;
    for (size_t c = 0; c < cols; c++) {
        any |= values[c];
        words[c / 64] |= (uint64_t)(values[c] & 1u) << (c % 64);
    }
    return any <= 1;
}

/* 0/1 bytes, packed as they are read, a chunk of rows at a time; the file
 * is at out's first row. */
static tdm_status read_values(const char *path, FILE *file, const npy_header *h,
                              tdm_binary_data *out)
{
    uint8_t *chunk = malloc(CHUNK_ROWS * h->cols);
    if (!chunk)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    tdm_status status = TDM_OK;
    for (size_t first = 0; first < out->rows && status == TDM_OK; first += CHUNK_ROWS) {
        size_t rows = out->rows - first < CHUNK_ROWS ? out->rows - first : CHUNK_ROWS;
        if (fread(chunk, h->cols, rows, file) != rows) {
            status = TDM_FAIL(TDM_ERR_IO, "%s: read error", path);
            break;
        }
        for (size_t r = 0; r < rows && status == TDM_OK; r++) {
            const uint8_t *values = chunk + r * h->cols;
            if (pack_row(values, h->cols, out->bits + (first + r) * out->row_words))
                continue;
            size_t c = 0;
            while (values[c] <= 1)
                c++;
            status = TDM_FAIL(TDM_ERR_DATA, "%s: row %zu, column %zu: value %d is not 0 or 1", path,
                              out->first_row + first + r + 1, c + 1, values[c]);
        }
    }
    free(chunk);
    return status;
}

/* A packbits byte (the first of its 8 columns in the high bit) in tandem's
 * order (the first in bit 0). */
static uint64_t reversed_byte(uint8_t byte)
{
    unsigned b = byte;
    b = (b & 0xF0u) >> 4 | (b & 0x0Fu) << 4;
    b = (b & 0xCCu) >> 2 | (b & 0x33u) << 2;
    return (b & 0xAAu) >> 1 | (b & 0x55u) << 1;
}

/* numpy.packbits(X, axis=1) bytes, 8 columns at a time: the first column in
 * the high bit; the padding bits of each row's last byte must be 0, as
 * packbits writes them. */
static tdm_status unpack_values(const char *path, FILE *file, const npy_header *h,
                                tdm_binary_data *out)
{
    uint8_t *row = malloc(h->cols);
    if (!row)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    tdm_status status = TDM_OK;
    size_t cols = out->cols;
    for (size_t r = 0; r < out->rows && status == TDM_OK; r++) {
        if (fread(row, 1, h->cols, file) != h->cols) {
            status = TDM_FAIL(TDM_ERR_IO, "%s: read error", path);
            break;
        }
        uint64_t *words = out->bits + r * out->row_words;
        for (size_t j = 0; j < h->cols; j++)
            words[j / 8] |= reversed_byte(row[j]) << (8 * (j % 8));
        if (cols % 8 && (row[h->cols - 1] & (0xFFu >> (cols % 8))))
            status = TDM_FAIL(TDM_ERR_DATA,
                              "%s: row %zu has bits set beyond column %zu (is packed_cols right?)",
                              path, out->first_row + r + 1, cols);
    }
    free(row);
    return status;
}

/* A part's rows: allocated, and the file moved to the first of them. */
static tdm_status start_part(const char *path, FILE *file, const npy_header *h, size_t cols,
                             const tdm_row_share *share, tdm_binary_data *out)
{
    size_t first = 0, count = 0;
    tdm_share_range(share, h->rows, &first, &count);
    if (count == 0) {
        *out = (tdm_binary_data){.cols = cols, .row_words = tdm_bits_row_words(cols)};
    } else {
        TDM_TRY(tdm_binary_alloc(count, cols, out));
    }
    out->first_row = first;
    out->total_rows = h->rows;
    /* check_size bounds the offset by the file's size, which fits an off_t */
    if (fseeko(file, (off_t)(h->data_offset + first * h->cols), SEEK_SET) != 0)
        return TDM_FAIL(TDM_ERR_IO, "%s: cannot seek to row %zu: %s", path, first + 1,
                        strerror(errno));
    return TDM_OK;
}

static tdm_status load(const char *path, FILE *file, size_t packed_cols, const tdm_row_share *share,
                       tdm_binary_data *out)
{
    npy_header h = {0};
    TDM_TRY(read_header(path, file, &h));
    size_t cols = packed_cols ? packed_cols : h.cols;
    if (packed_cols && h.cols != packed_cols / 8 + (packed_cols % 8 != 0))
        return TDM_FAIL(TDM_ERR_DATA,
                        "%s: %zu packed bytes per row, but %zu columns need %zu "
                        "(numpy.packbits(X, axis=1) of X with %zu columns)",
                        path, h.cols, packed_cols, packed_cols / 8 + (packed_cols % 8 != 0),
                        packed_cols);
    TDM_TRY(check_size(path, file, &h, h.cols));
    tdm_status status = start_part(path, file, &h, cols, share, out);
    if (status == TDM_OK)
        status =
            packed_cols ? unpack_values(path, file, &h, out) : read_values(path, file, &h, out);
    if (status != TDM_OK)
        tdm_binary_free(out);
    return status;
}

tdm_status tdm_binary_load_npy_part(const char *path, size_t packed_cols,
                                    const tdm_row_share *share, tdm_binary_data *out)
{
    memset(out, 0, sizeof *out);
    TDM_TRY(tdm_check_share(share));
    FILE *file = fopen(path, "rb");
    if (!file)
        return TDM_FAIL(TDM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    tdm_status status = load(path, file, packed_cols, share, out);
    fclose(file);
    return status;
}

tdm_status tdm_binary_load_npy(const char *path, size_t packed_cols, tdm_binary_data *out)
{
    return tdm_binary_load_npy_part(path, packed_cols, NULL, out);
}

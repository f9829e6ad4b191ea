/* Data sets from CSV and IDX files through zlib, which reads gzipped and
 * plain files alike. Every value is checked; an error names file and line
 * (CSV) or file and field (IDX). */
#include "tandem/data.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "core/error.h"
#include "data/text_lines.h"

enum { INITIAL_ROWS = 1024 };

void tdm_dataset_free(tdm_dataset *dataset)
{
    if (!dataset)
        return;
    free(dataset->pixels);
    free(dataset->labels);
    memset(dataset, 0, sizeof *dataset);
}

static size_t sample_size(tdm_sample_shape shape)
{
    return shape.channels * shape.height * shape.width;
}

/* Bytes a sample takes: its pixels as floats and its label. */
static size_t sample_bytes(tdm_sample_shape shape)
{
    return sample_size(shape) * sizeof(float) + sizeof(int32_t);
}

/* The most samples max_bytes holds (SIZE_MAX for no cap, max_bytes 0). */
static size_t rows_within(tdm_sample_shape shape, size_t max_bytes)
{
    return max_bytes ? max_bytes / sample_bytes(shape) : SIZE_MAX;
}

static double mebibytes(size_t bytes)
{
    return (double)bytes / (1 << 20);
}

/* Room for `rows` samples. */
static tdm_status reserve(tdm_dataset *d, size_t rows)
{
    size_t size = sample_size(d->shape);
    if (rows > SIZE_MAX / sizeof(float) / (size ? size : 1))
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "data set of %zu samples is too large", rows);
    float *pixels = realloc(d->pixels, rows * size * sizeof(float));
    if (pixels)
        d->pixels = pixels;
    int32_t *labels = realloc(d->labels, rows * sizeof(int32_t));
    if (labels)
        d->labels = labels;
    if (!pixels || !labels)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "out of memory for %zu samples", rows);
    return TDM_OK;
}

/* ---------- CSV ---------- */

typedef struct csv_reader {
    const char *path;
    size_t line;
    size_t values_per_row; /* pixels + 1 */
    float max_pixel;
    size_t classes;
} csv_reader;

/* One comma-separated whole number; *text moves past it and its comma. */
static tdm_status parse_value(const csv_reader *r, size_t column, char **text, long *out)
{
    char *end = NULL;
    errno = 0;
    long value = strtol(*text, &end, 10);
    bool converted = end != *text; /* before the spaces after it: a blank field is no value */
    while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
        end++;
    if (!converted || errno == ERANGE || (*end != ',' && *end != '\0'))
        return TDM_FAIL(TDM_ERR_DATA, "%s:%zu: value %zu is not a whole number", r->path, r->line,
                        column + 1);
    *text = *end == ',' ? end + 1 : end;
    *out = value;
    return TDM_OK;
}

static tdm_status check_range(const csv_reader *r, size_t column, long value)
{
    bool is_label = column == r->values_per_row - 1;
    long high = is_label ? (long)r->classes - 1 : (long)r->max_pixel;
    if (value < 0 || value > high)
        return TDM_FAIL(TDM_ERR_DATA, "%s:%zu: %s %ld out of range [0, %ld]", r->path, r->line,
                        is_label ? "label" : "pixel", value, high);
    return TDM_OK;
}

static size_t count_values(const char *line)
{
    size_t count = 1;
    for (const char *p = line; *p; p++)
        count += *p == ',';
    return count;
}

static tdm_status parse_row(const csv_reader *r, char *line, float *pixels, int32_t *label)
{
    size_t found = count_values(line);
    if (found != r->values_per_row)
        return TDM_FAIL(TDM_ERR_DATA, "%s:%zu: %zu values, expected %zu (%zu pixels and a label)",
                        r->path, r->line, found, r->values_per_row, r->values_per_row - 1);
    for (size_t column = 0; column < r->values_per_row; column++) {
        long value = 0;
        TDM_TRY(parse_value(r, column, &line, &value));
        TDM_TRY(check_range(r, column, value));
        if (column + 1 < r->values_per_row)
            pixels[column] = (float)value;
        else
            *label = (int32_t)value;
    }
    return TDM_OK;
}

typedef struct csv_target {
    csv_reader reader;
    tdm_dataset *dataset;
    size_t capacity;
    size_t max_bytes, max_rows; /* the cap, 0 and SIZE_MAX without one */
} csv_target;

static tdm_status add_csv_row(void *user, char *line, size_t number)
{
    csv_target *t = user;
    tdm_dataset *d = t->dataset;
    t->reader.line = number;
    if (d->count == t->max_rows)
        return TDM_FAIL(TDM_ERR_DATA, "%s:%zu: more samples than the memory cap of %.1f MiB holds",
                        t->reader.path, number, mebibytes(t->max_bytes));
    if (d->count == t->capacity) {
        t->capacity = t->capacity ? 2 * t->capacity : INITIAL_ROWS;
        t->capacity = t->capacity < t->max_rows ? t->capacity : t->max_rows;
        TDM_TRY(reserve(d, t->capacity));
    }
    TDM_TRY(parse_row(&t->reader, line, d->pixels + d->count * sample_size(d->shape),
                      &d->labels[d->count]));
    d->count++;
    return TDM_OK;
}

tdm_status tdm_dataset_load_csv(const char *path, tdm_sample_shape shape, float max_pixel,
                                size_t classes, tdm_dataset *out)
{
    return tdm_dataset_load_csv_capped(path, shape, max_pixel, classes, 0, out);
}

tdm_status tdm_dataset_load_csv_capped(const char *path, tdm_sample_shape shape, float max_pixel,
                                       size_t classes, size_t max_bytes, tdm_dataset *out)
{
    memset(out, 0, sizeof *out);
    /* max_pixel becomes a long: past 1e9 the conversion could overflow */
    if (sample_size(shape) == 0 || classes == 0 || classes > INT32_MAX ||
        !(max_pixel >= 0 && max_pixel <= 1e9))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "%s: the image shape and classes must be positive, the pixel range in "
                        "[0, 1e9]",
                        path);
    out->shape = shape;
    out->classes = classes;
    csv_target target = {.reader = {path, 0, sample_size(shape) + 1, max_pixel, classes},
                         .dataset = out,
                         .max_bytes = max_bytes,
                         .max_rows = rows_within(shape, max_bytes)};
    size_t lines = 0;
    tdm_status status = tdm_read_lines(path, add_csv_row, &target, &lines);
    if (status == TDM_OK && lines == 0)
        status = TDM_FAIL(TDM_ERR_DATA, "%s: no samples in the file", path);
    if (status != TDM_OK)
        tdm_dataset_free(out);
    return status;
}

/* ---------- IDX ---------- */

/* Reads the header: magic 0x0000 0x08 (unsigned bytes) and `dims`, then the
 * dims big-endian 32-bit sizes. */
static tdm_status read_idx_header(gzFile file, const char *path, int dims, uint32_t *sizes)
{
    unsigned char magic[4];
    if (gzread(file, magic, 4) != 4)
        return TDM_FAIL(TDM_ERR_DATA, "%s: too short for an IDX file", path);
    if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] != dims)
        return TDM_FAIL(TDM_ERR_DATA,
                        "%s: not an IDX file of unsigned bytes with %d dimensions (magic %02x %02x "
                        "%02x %02x)",
                        path, dims, magic[0], magic[1], magic[2], magic[3]);
    for (int i = 0; i < dims; i++) {
        unsigned char b[4];
        if (gzread(file, b, 4) != 4)
            return TDM_FAIL(TDM_ERR_DATA, "%s: truncated IDX header", path);
        sizes[i] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    }
    return TDM_OK;
}

static tdm_status read_idx_bytes(gzFile file, const char *path, unsigned char *out, size_t count)
{
    size_t done = 0;
    while (done < count) {
        unsigned chunk = count - done > (1u << 30) ? 1u << 30 : (unsigned)(count - done);
        int got = gzread(file, out + done, chunk);
        if (got <= 0)
            return TDM_FAIL(TDM_ERR_DATA, "%s: truncated: %zu of %zu data bytes", path, done,
                            count);
        done += (size_t)got;
    }
    return TDM_OK;
}

/* The images a chunk at a time, the samples grown as the bytes arrive: a
 * header that claims more images than the file holds costs no more memory
 * than the file's own images (it asked for all of them up front: 37 GB for a
 * 24-byte file claiming 2.3 billion images, found by fuzzing). */
static tdm_status read_idx_images(gzFile file, const char *path, size_t count, tdm_dataset *d)
{
    const size_t size = sample_size(d->shape);
    const size_t chunk = size < ((size_t)1 << 20) ? ((size_t)1 << 20) / size : 1; /* 1 MB */
    unsigned char *bytes = malloc(chunk * size);
    if (!bytes)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "out of memory for %s", path);
    tdm_status status = TDM_OK;
    size_t capacity = 0;
    for (size_t first = 0; status == TDM_OK && first < count; first += chunk) {
        size_t n = count - first < chunk ? count - first : chunk;
        status = read_idx_bytes(file, path, bytes, n * size);
        if (status == TDM_OK && first + n > capacity) {
            capacity = 2 * capacity > first + n ? 2 * capacity : first + n;
            capacity = capacity < count ? capacity : count;
            status = reserve(d, capacity);
        }
        for (size_t i = 0; status == TDM_OK && i < n * size; i++)
            d->pixels[first * size + i] = bytes[i];
    }
    free(bytes);
    return status;
}

static tdm_status load_idx_images(const char *path, size_t max_bytes, tdm_dataset *d)
{
    gzFile file = NULL;
    uint32_t sizes[3];
    TDM_TRY(tdm_open_data_file(path, &file));
    tdm_status status = read_idx_header(file, path, 3, sizes);
    if (status == TDM_OK && (sizes[0] == 0 || sizes[1] == 0 || sizes[2] == 0))
        status = TDM_FAIL(TDM_ERR_DATA, "%s: empty image set", path);
    if (status == TDM_OK && (size_t)sizes[1] * sizes[2] > ((size_t)1 << 31) / 1024)
        status =
            TDM_FAIL(TDM_ERR_DATA, "%s: images of %ux%u are too large", path, sizes[1], sizes[2]);
    if (status == TDM_OK) {
        d->shape = (tdm_sample_shape){1, sizes[1], sizes[2]};
        if (sizes[0] > rows_within(d->shape, max_bytes))
            status = TDM_FAIL(TDM_ERR_DATA,
                              "%s: %u images of %ux%u take %.1f MiB, more than the memory cap of "
                              "%.1f MiB",
                              path, sizes[0], sizes[1], sizes[2],
                              mebibytes(sizes[0] * sample_bytes(d->shape)), mebibytes(max_bytes));
    }
    if (status == TDM_OK)
        status = read_idx_images(file, path, sizes[0], d);
    if (status == TDM_OK)
        d->count = sizes[0];
    gzclose(file);
    return status;
}

static tdm_status load_idx_labels(const char *path, tdm_dataset *d)
{
    gzFile file = NULL;
    uint32_t count = 0;
    TDM_TRY(tdm_open_data_file(path, &file));
    tdm_status status = read_idx_header(file, path, 1, &count);
    if (status == TDM_OK && count != d->count)
        status = TDM_FAIL(TDM_ERR_DATA, "%s: %u labels for %zu images", path, count, d->count);
    unsigned char *bytes =
        status == TDM_OK ? malloc((size_t)count + 1) : NULL; /* no wrap at 2^32 - 1 */
    if (status == TDM_OK && !bytes)
        status = TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "out of memory for %s", path);
    if (status == TDM_OK)
        status = read_idx_bytes(file, path, bytes, count);
    for (size_t i = 0; status == TDM_OK && i < count; i++) {
        if (bytes[i] >= d->classes)
            status = TDM_FAIL(TDM_ERR_DATA, "%s: label %zu is %u, outside [0, %zu)", path, i + 1,
                              bytes[i], d->classes);
        else
            d->labels[i] = bytes[i];
    }
    free(bytes);
    gzclose(file);
    return status;
}

tdm_status tdm_dataset_load_idx(const char *images_path, const char *labels_path, size_t classes,
                                tdm_dataset *out)
{
    return tdm_dataset_load_idx_capped(images_path, labels_path, classes, 0, out);
}

tdm_status tdm_dataset_load_idx_capped(const char *images_path, const char *labels_path,
                                       size_t classes, size_t max_bytes, tdm_dataset *out)
{
    memset(out, 0, sizeof *out);
    if (classes == 0 || classes > 256)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "IDX labels are bytes: classes must be 1..256");
    out->classes = classes;
    tdm_status status = load_idx_images(images_path, max_bytes, out);
    if (status == TDM_OK)
        status = load_idx_labels(labels_path, out);
    if (status != TDM_OK)
        tdm_dataset_free(out);
    return status;
}

tdm_status tdm_dataset_slice(const tdm_dataset *d, size_t first, size_t count, tdm_dataset *out)
{
    memset(out, 0, sizeof *out);
    if (first > d->count || count > d->count - first || count == 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "rows [%zu, %zu) do not fit in a data set of %zu samples", first,
                        first + count, d->count);
    out->shape = d->shape;
    out->classes = d->classes;
    TDM_TRY(reserve(out, count));
    size_t size = sample_size(d->shape);
    memcpy(out->pixels, d->pixels + first * size, count * size * sizeof(float));
    memcpy(out->labels, d->labels + first, count * sizeof(int32_t));
    out->count = count;
    return TDM_OK;
}

tdm_status tdm_dataset_split_front(tdm_dataset *d, size_t count, tdm_dataset *front)
{
    TDM_TRY(tdm_dataset_slice(d, 0, count, front));
    size_t size = sample_size(d->shape), rest = d->count - count;
    memmove(d->pixels, d->pixels + count * size, rest * size * sizeof(float));
    memmove(d->labels, d->labels + count, rest * sizeof(int32_t));
    d->count = rest;
    return rest ? reserve(d, rest) : TDM_OK; /* shrinking */
}

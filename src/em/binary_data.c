/* Binary data for EM: a strict 0/1 CSV reader, binarised image data, and
 * the clustering scores (purity, adjusted Rand index). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "data/text_lines.h"
#include "em/em_internal.h"

enum { INITIAL_ROWS = 1024 };

tdm_status tdm_binary_alloc(size_t rows, size_t cols, tdm_binary_data *out)
{
    memset(out, 0, sizeof *out);
    size_t words = tdm_bits_row_words(cols);
    if (rows == 0 || cols == 0 || rows > SIZE_MAX / sizeof(uint64_t) / words)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "%zu x %zu binary values cannot be stored", rows,
                        cols);
    out->bits = calloc(rows * words, sizeof(uint64_t));
    if (!out->bits)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "no memory for %zu x %zu binary values", rows, cols);
    *out = (tdm_binary_data){
        .rows = rows, .cols = cols, .row_words = words, .bits = out->bits, .total_rows = rows};
    return TDM_OK;
}

void tdm_binary_free(tdm_binary_data *data)
{
    if (!data)
        return;
    free(data->bits);
    free(data->labels);
    memset(data, 0, sizeof *data);
}

static size_t count_fields(const char *line)
{
    size_t count = 1;
    for (const char *p = line; *p; p++)
        count += *p == ',';
    return count;
}

/* One field: 0 or 1 (or, for a label, any integer >= 0). A bare 0 or 1,
 * what such files hold, is read without strtol (most of a large file's
 * loading time). */
static tdm_status parse_field(const char *path, size_t line, size_t column, bool label, char **text,
                              long *out)
{
    char digit = (*text)[0], after = digit ? (*text)[1] : '\0';
    if ((digit == '0' || digit == '1') && (after == ',' || after == '\0')) {
        *out = digit - '0';
        *text += after == ',' ? 2 : 1;
        return TDM_OK;
    }
    char *end = NULL;
    errno = 0;
    long value = strtol(*text, &end, 10);
    bool converted = end != *text; /* before the spaces after it: a blank field is no value */
    while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
        end++;
    bool whole = converted && errno == 0 && (*end == ',' || *end == '\0');
    if (!whole || value < 0 || (!label && value > 1) || value > INT32_MAX)
        return TDM_FAIL(TDM_ERR_DATA, "%s:%zu: value %zu is not %s", path, line, column + 1,
                        label ? "a label (a whole number in [0, 2^31))" : "0 or 1");
    *text = *end == ',' ? end + 1 : end;
    *out = value;
    return TDM_OK;
}

typedef struct csv_state {
    const char *path;
    bool has_labels;
    size_t line, capacity;
    size_t row, first, end; /* the file's row count so far; the rows kept: [first, end) */
    tdm_binary_data *data;
} csv_state;

static tdm_status grow(tdm_binary_data *d, size_t rows)
{
    uint64_t *bits = rows <= SIZE_MAX / sizeof(uint64_t) / d->row_words
                         ? realloc(d->bits, rows * d->row_words * sizeof(uint64_t))
                         : NULL;
    if (bits)
        d->bits = bits;
    int32_t *labels = d->labels ? realloc(d->labels, rows * sizeof(int32_t)) : NULL;
    if (labels)
        d->labels = labels;
    if (!bits || (d->labels && !labels))
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "out of memory for %zu rows", rows);
    return TDM_OK;
}

/* The first line sets the columns (and whether there is room for labels). */
static tdm_status set_columns(csv_state *s, const char *line)
{
    tdm_binary_data *d = s->data;
    size_t fields = count_fields(line), cols = s->has_labels ? fields - 1 : fields;
    if (cols == 0)
        return TDM_FAIL(TDM_ERR_DATA, "%s:%zu: no values before the label", s->path, s->line);
    d->cols = cols;
    d->row_words = tdm_bits_row_words(cols);
    if (s->has_labels && !(d->labels = malloc(sizeof(int32_t))))
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "out of memory");
    return TDM_OK;
}

static tdm_status parse_row(csv_state *s, char *line)
{
    tdm_binary_data *d = s->data;
    size_t fields = count_fields(line), cols = s->has_labels ? fields - 1 : fields;
    if (cols != d->cols)
        return TDM_FAIL(TDM_ERR_DATA, "%s:%zu: %zu values, expected %zu as on the first row",
                        s->path, s->line, fields, d->cols + (s->has_labels ? 1 : 0));
    if (d->rows == s->capacity) {
        s->capacity = s->capacity ? 2 * s->capacity : INITIAL_ROWS;
        TDM_TRY(grow(d, s->capacity));
    }
    memset(d->bits + d->rows * d->row_words, 0, d->row_words * sizeof(uint64_t));
    for (size_t column = 0; column < fields; column++) {
        long value = 0;
        bool label = s->has_labels && column == cols;
        TDM_TRY(parse_field(s->path, s->line, column, label, &line, &value));
        if (label)
            d->labels[d->rows] = (int32_t)value;
        else
            tdm_binary_set(d, d->rows, column, value != 0);
    }
    d->rows++;
    return TDM_OK;
}

static tdm_status add_row(void *user, char *line, size_t number)
{
    csv_state *s = user;
    s->line = number;
    if (s->data->cols == 0)
        TDM_TRY(set_columns(s, line));
    size_t row = s->row++;
    return row >= s->first && row < s->end ? parse_row(s, line) : TDM_OK;
}

/* The first pass of a part: the rows, and the columns from the first line. */
static tdm_status count_row(void *user, char *line, size_t number)
{
    csv_state *s = user;
    s->line = number;
    s->row++;
    return s->data->cols == 0 ? set_columns(s, line) : TDM_OK;
}

tdm_status tdm_check_share(const tdm_row_share *share)
{
    if (share && (share->shard_rows == 0 || share->size < 1 || share->rank < 0 ||
                  share->rank >= share->size))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "a share needs shard_rows >= 1 and 0 <= rank < size, got %zu, %d, %d",
                        share->shard_rows, share->rank, share->size);
    return TDM_OK;
}

void tdm_share_range(const tdm_row_share *share, size_t total, size_t *first, size_t *count)
{
    *first = 0;
    *count = total;
    if (share)
        tdm_em_share(total, share->shard_rows, share->rank, share->size, first, count);
}

tdm_status tdm_binary_load_csv_part(const char *path, bool has_labels, const tdm_row_share *share,
                                    tdm_binary_data *out)
{
    memset(out, 0, sizeof *out);
    TDM_TRY(tdm_check_share(share));
    csv_state state = {.path = path, .has_labels = has_labels, .end = SIZE_MAX, .data = out};
    size_t lines = 0;
    tdm_status status = TDM_OK;
    if (share) {
        status = tdm_read_lines(path, count_row, &state, &lines);
        size_t count = 0;
        tdm_share_range(share, lines, &state.first, &count);
        state.end = state.first + count;
        state.row = 0;
    }
    if (status == TDM_OK)
        status = tdm_read_lines(path, add_row, &state, &lines);
    if (status == TDM_OK && lines == 0)
        status = TDM_FAIL(TDM_ERR_DATA, "%s: no rows in the file", path);
    out->first_row = state.first;
    out->total_rows = lines;
    if (status != TDM_OK)
        tdm_binary_free(out);
    return status;
}

tdm_status tdm_binary_load_csv(const char *path, bool has_labels, tdm_binary_data *out)
{
    return tdm_binary_load_csv_part(path, has_labels, NULL, out);
}

tdm_status tdm_binary_keep_share(tdm_binary_data *data, const tdm_row_share *share)
{
    TDM_TRY(tdm_check_share(share));
    if (!share)
        return TDM_OK;
    if (data->total_rows != data->rows || data->first_row != 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "keep_share: the data is already a part");
    size_t first = 0, count = 0, words = data->row_words;
    tdm_share_range(share, data->rows, &first, &count);
    memmove(data->bits, data->bits + first * words, count * words * sizeof(uint64_t));
    if (data->labels)
        memmove(data->labels, data->labels + first, count * sizeof(int32_t));
    data->total_rows = data->rows;
    data->first_row = first;
    data->rows = count;
    return TDM_OK;
}

tdm_status tdm_binary_from_dataset(const tdm_dataset *dataset, float threshold,
                                   tdm_binary_data *out)
{
    size_t cols = dataset->shape.channels * dataset->shape.height * dataset->shape.width;
    TDM_TRY(tdm_binary_alloc(dataset->count, cols, out));
    out->labels = malloc(dataset->count * sizeof(int32_t) + 1);
    if (!out->labels) {
        tdm_binary_free(out);
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (size_t r = 0; r < dataset->count; r++)
        for (size_t c = 0; c < cols; c++)
            tdm_binary_set(out, r, c, dataset->pixels[r * cols + c] >= threshold);
    memcpy(out->labels, dataset->labels, dataset->count * sizeof(int32_t));
    return TDM_OK;
}

/* ---------- scores ---------- */

static int compare_keys(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

/* The rows' (a, b) pairs as 64-bit keys (a in the high half, or b with
 * swap), sorted: the contingency table as runs, the rows' size whatever the
 * label values (a dense table of the largest labels took K x 10^8 counts for
 * a label of 10^8). NULL when a label is negative or out of memory. */
static uint64_t *sorted_pairs(const int32_t *a, const int32_t *b, size_t rows, bool swap)
{
    uint64_t *keys = malloc((rows ? rows : 1) * sizeof *keys);
    for (size_t i = 0; keys && i < rows; i++) {
        if (a[i] < 0 || b[i] < 0) {
            free(keys);
            return NULL;
        }
        uint64_t high = (uint32_t)(swap ? b[i] : a[i]), low = (uint32_t)(swap ? a[i] : b[i]);
        keys[i] = high << 32 | low;
    }
    if (keys)
        qsort(keys, rows, sizeof *keys, compare_keys);
    return keys;
}

/* The end of the run of keys equal to keys[first] under shift (0: whole
 * keys, 32: their high halves). */
static size_t run_end(const uint64_t *keys, size_t rows, size_t first, int shift)
{
    size_t end = first + 1;
    while (end < rows && keys[end] >> shift == keys[first] >> shift)
        end++;
    return end;
}

double tdm_cluster_purity(const int32_t *clusters, const int32_t *labels, size_t rows)
{
    uint64_t *keys = sorted_pairs(clusters, labels, rows, false);
    if (!keys || rows == 0) {
        free(keys);
        return 0.0;
    }
    size_t agree = 0;
    for (size_t cluster = 0; cluster < rows;) { /* per cluster, its most common label */
        size_t cluster_end = run_end(keys, rows, cluster, 32), best = 0;
        for (size_t pair = cluster; pair < cluster_end;) {
            size_t pair_end = run_end(keys, rows, pair, 0);
            best = pair_end - pair > best ? pair_end - pair : best;
            pair = pair_end;
        }
        agree += best;
        cluster = cluster_end;
    }
    free(keys);
    return (double)agree / (double)rows;
}

static double pairs(double n)
{
    return n * (n - 1.0) / 2.0;
}

/* The sum over runs (under shift) of C(run length, 2). */
static double run_pairs(const uint64_t *keys, size_t rows, int shift)
{
    double sum = 0.0;
    for (size_t first = 0; first < rows;) {
        size_t end = run_end(keys, rows, first, shift);
        sum += pairs((double)(end - first));
        first = end;
    }
    return sum;
}

/* Hubert and Arabie's adjusted Rand index (as sklearn.metrics.adjusted_rand_score). */
double tdm_adjusted_rand_index(const int32_t *a, const int32_t *b, size_t rows)
{
    uint64_t *by_a = sorted_pairs(a, b, rows, false), *by_b = sorted_pairs(a, b, rows, true);
    if (!by_a || !by_b) {
        free(by_a);
        free(by_b);
        return 0.0;
    }
    double index = run_pairs(by_a, rows, 0), sum_a = run_pairs(by_a, rows, 32),
           sum_b = run_pairs(by_b, rows, 32);
    free(by_a);
    free(by_b);
    double expected = sum_a * sum_b / pairs((double)rows), maximum = (sum_a + sum_b) / 2.0;
    if (maximum == expected)
        return 1.0; /* both labelings put everything together, or everything apart */
    return (index - expected) / (maximum - expected);
}

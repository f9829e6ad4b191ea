/* numpy .npy input for EM (tdm_binary_load_npy): files written here byte by
 * byte as numpy writes them (format 1.0 and 2.0, uint8, bool, packbits,
 * rows of one word and of three),
 * and every kind of bad file, each named in its error. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tandem/tandem.h"

static char work[256];

/* 5 rows of 11 columns: not a multiple of 8, so packbits pads. */
enum { ROWS = 5, COLS = 11, PACKED = (COLS + 7) / 8 };
static uint8_t values[ROWS][COLS];

static void make_values(void)
{
    for (size_t r = 0; r < ROWS; r++)
        for (size_t c = 0; c < COLS; c++)
            values[r][c] = (uint8_t)((r * 7 + c * 3) % 5 < 2);
}

/* numpy.packbits(values, axis=1): the first column in the high bit. */
static void pack(uint8_t packed[ROWS][PACKED])
{
    memset(packed, 0, ROWS * PACKED);
    for (size_t r = 0; r < ROWS; r++)
        for (size_t c = 0; c < COLS; c++)
            packed[r][c / 8] |= (uint8_t)(values[r][c] << (7 - c % 8));
}

/* Writes magic, version, the dict padded with spaces to a multiple of 64
 * bytes and a newline, then `bytes` of data; returns the path. */
static const char *write_npy(const char *name, int version, const char *dict, const void *data,
                             size_t bytes)
{
    static char path[300];
    snprintf(path, sizeof path, "%s/%s.npy", work, name);
    size_t prefix = version == 1 ? 10 : 12, length = strlen(dict) + 1;
    size_t padded = (prefix + length + 63) / 64 * 64 - prefix;
    FILE *file = fopen(path, "wb");
    assert_non_null(file);
    fwrite("\x93NUMPY", 1, 6, file);
    fputc(version, file);
    fputc(0, file);
    for (size_t i = 0; i < prefix - 8; i++)
        fputc((int)(padded >> (8 * i) & 0xFF), file);
    fputs(dict, file);
    for (size_t i = length; i < padded; i++)
        fputc(' ', file);
    fputc('\n', file);
    fwrite(data, 1, bytes, file);
    fclose(file);
    return path;
}

static void assert_values(const tdm_binary_data *data)
{
    assert_int_equal(data->rows, ROWS);
    assert_int_equal(data->cols, COLS);
    assert_null(data->labels);
    assert_int_equal(data->row_words, 1);
    for (size_t r = 0; r < ROWS; r++) {
        for (size_t c = 0; c < COLS; c++)
            assert_int_equal(tdm_binary_get(data, r, c), values[r][c]);
        assert_int_equal(data->bits[r] >> COLS, 0); /* padding bits stay 0 */
    }
}

static void test_reads_what_numpy_writes(void **state)
{
    (void)state;
    tdm_binary_data data;
    const char *dict_u1 = "{'descr': '|u1', 'fortran_order': False, 'shape': (5, 11), }";
    const char *dict_b1 = "{'descr': '|b1', 'fortran_order': False, 'shape': (5, 11), }";
    assert_int_equal(
        tdm_binary_load_npy(write_npy("u1", 1, dict_u1, values, sizeof values), 0, &data), TDM_OK);
    assert_values(&data);
    tdm_binary_free(&data);
    assert_int_equal(
        tdm_binary_load_npy(write_npy("b1v2", 2, dict_b1, values, sizeof values), 0, &data),
        TDM_OK);
    assert_values(&data);
    tdm_binary_free(&data);
    uint8_t packed[ROWS][PACKED];
    pack(packed);
    const char *dict_packed = "{'descr': '|u1', 'fortran_order': False, 'shape': (5, 2), }";
    assert_int_equal(tdm_binary_load_npy(write_npy("packed", 1, dict_packed, packed, sizeof packed),
                                         COLS, &data),
                     TDM_OK);
    assert_values(&data);
    tdm_binary_free(&data);
}

/* 139 columns (three words, the last partly padding), as 0/1 bytes and
 * packed: the words of every row, column by column. */
static void test_rows_of_several_words(void **state)
{
    (void)state;
    enum { WIDE_ROWS = 4, WIDE_COLS = 139, WIDE_PACKED = (WIDE_COLS + 7) / 8 };
    static uint8_t wide[WIDE_ROWS][WIDE_COLS], packed[WIDE_ROWS][WIDE_PACKED];
    for (size_t r = 0; r < WIDE_ROWS; r++)
        for (size_t c = 0; c < WIDE_COLS; c++) {
            wide[r][c] = (uint8_t)((r * 13 + c * c) % 7 < 3);
            packed[r][c / 8] |= (uint8_t)(wide[r][c] << (7 - c % 8));
        }
    const char *dicts[] = {"{'descr': '|u1', 'fortran_order': False, 'shape': (4, 139), }",
                           "{'descr': '|u1', 'fortran_order': False, 'shape': (4, 18), }"};
    for (int is_packed = 0; is_packed < 2; is_packed++) {
        tdm_binary_data data;
        const char *path = is_packed ? write_npy("wide_packed", 1, dicts[1], packed, sizeof packed)
                                     : write_npy("wide", 1, dicts[0], wide, sizeof wide);
        assert_int_equal(tdm_binary_load_npy(path, is_packed ? WIDE_COLS : 0, &data), TDM_OK);
        assert_int_equal(data.row_words, 3);
        for (size_t r = 0; r < WIDE_ROWS; r++) {
            for (size_t c = 0; c < WIDE_COLS; c++)
                assert_int_equal(tdm_binary_get(&data, r, c), wide[r][c]);
            assert_int_equal(data.bits[r * 3 + 2] >> (WIDE_COLS - 128), 0);
        }
        tdm_binary_free(&data);
    }
}

/* Loads a file expected to fail; its message must name the file and say `why`. */
static void expect_error(const char *path, size_t packed_cols, const char *why)
{
    tdm_binary_data data;
    assert_int_not_equal(tdm_binary_load_npy(path, packed_cols, &data), TDM_OK);
    const char *message = tdm_last_error();
    if (!strstr(message, path) || !strstr(message, why))
        fail_msg("expected '%s' naming %s, got: %s", why, path, message);
    assert_null(data.bits);
}

static void test_bad_files(void **state)
{
    (void)state;
    const char *good = "{'descr': '|u1', 'fortran_order': False, 'shape': (5, 11), }";
    uint8_t twos[ROWS][COLS];
    memcpy(twos, values, sizeof values);
    twos[1][2] = 2;
    expect_error(write_npy("f4", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 11), }",
                           values, sizeof values),
                 0, "dtype '<f4' is not uint8 or bool");
    expect_error(write_npy("fortran", 1,
                           "{'descr': '|u1', 'fortran_order': True, 'shape': (5, 11), }", values,
                           sizeof values),
                 0, "Fortran order");
    expect_error(write_npy("three", 1,
                           "{'descr': '|u1', 'fortran_order': False, 'shape': (5, 11, 1), }",
                           values, sizeof values),
                 0, "a 3-D array, expected 2-D");
    expect_error(write_npy("one", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (55,), }",
                           values, sizeof values),
                 0, "a 1-D array, expected 2-D");
    expect_error(write_npy("empty", 1,
                           "{'descr': '|u1', 'fortran_order': False, 'shape': (0, 11), }", values,
                           0),
                 0, "empty");
    expect_error(write_npy("truncated", 1, good, values, sizeof values - 3), 0,
                 "the header says 5 x 11, but the file holds 52 bytes");
    expect_error(write_npy("longer", 1,
                           "{'descr': '|u1', 'fortran_order': False, 'shape': (4, 11), }", values,
                           sizeof values),
                 0, "the header says 4 x 11, but the file holds 55 bytes");
    expect_error(write_npy("two", 1, good, twos, sizeof twos), 0,
                 "row 2, column 3: value 2 is not 0 or 1");
    expect_error(
        write_npy("noshape", 1, "{'descr': '|u1', 'fortran_order': False}", values, sizeof values),
        0, "no valid 'shape'");
    /* A header that ends right after 'descr':, unpadded (fuzzing found a read
     * past its end). */
    char path[300];
    snprintf(path, sizeof path, "%s/nodescr.npy", work);
    FILE *file = fopen(path, "wb");
    assert_non_null(file);
    fwrite("\x93NUMPY\x01\x00\x09\x00{'descr':", 1, 19, file);
    fclose(file);
    expect_error(path, 0, "is not uint8 or bool");
    uint8_t packed[ROWS][PACKED];
    pack(packed);
    const char *dict_packed = "{'descr': '|u1', 'fortran_order': False, 'shape': (5, 2), }";
    expect_error(write_npy("packed_cols", 1, dict_packed, packed, sizeof packed), 17,
                 "2 packed bytes per row, but 17 columns need 3");
    packed[3][1] |= 1; /* a bit beyond column 11 */
    expect_error(write_npy("padding", 1, dict_packed, packed, sizeof packed), COLS,
                 "row 4 has bits set beyond column 11");
    snprintf(path, sizeof path, "%s/magic.npy", work);
    file = fopen(path, "wb");
    assert_non_null(file);
    fputs("0,1,1\n1,0,1\n", file);
    fclose(file);
    expect_error(path, 0, "not a .npy file");
    snprintf(path, sizeof path, "%s/missing.npy", work);
    expect_error(path, 0, "cannot open");
}

static int make_work_dir(void **state)
{
    (void)state;
    make_values();
    const char *tmp = getenv("TMPDIR");
    snprintf(work, sizeof work, "%s/tandem-test-npy-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    return mkdtemp(work) ? 0 : -1;
}

static int remove_work_dir(void **state)
{
    (void)state;
    char command[300];
    snprintf(command, sizeof command, "rm -rf '%s'", work);
    return system(command) != 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_what_numpy_writes),
        cmocka_unit_test(test_rows_of_several_words),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, make_work_dir, remove_work_dir);
}

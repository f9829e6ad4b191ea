/* The fuzz targets hand each input to a loader as a file: one temporary file
 * per process and name, under $TMPDIR (else /tmp), rewritten for every input
 * and removed when the run exits (a crash leaves it beside the artifact). */
#ifndef TANDEM_FUZZ_INPUT_H
#define TANDEM_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

enum { FUZZ_MAX_FILES = 2, FUZZ_PATH_SIZE = 512 };
static char fuzz_paths[FUZZ_MAX_FILES][FUZZ_PATH_SIZE];

static void fuzz_remove_files(void)
{
    for (int i = 0; i < FUZZ_MAX_FILES; i++)
        if (fuzz_paths[i][0])
            remove(fuzz_paths[i]);
}

/* The path of this process's file `slot` (0 or 1), named on first use. */
static inline const char *fuzz_path(int slot, const char *suffix)
{
    if (!fuzz_paths[slot][0]) {
        const char *dir = getenv("TMPDIR");
        int written = snprintf(fuzz_paths[slot], FUZZ_PATH_SIZE, "%s/tandem-fuzz-%d-%d%s",
                               dir && dir[0] ? dir : "/tmp", (int)getpid(), slot, suffix);
        if (written < 0 || written >= FUZZ_PATH_SIZE)
            abort();
        static int registered;
        if (!registered++ && atexit(fuzz_remove_files) != 0)
            abort();
    }
    return fuzz_paths[slot];
}

static inline const char *fuzz_write(int slot, const uint8_t *data, size_t size, const char *suffix)
{
    const char *path = fuzz_path(slot, suffix);
    FILE *file = fopen(path, "wb");
    if (!file)
        abort();
    if (size && fwrite(data, 1, size, file) != size)
        abort();
    fclose(file);
    return path;
}

/* The input as this process's main file. */
static inline const char *fuzz_file(const uint8_t *data, size_t size, const char *suffix)
{
    return fuzz_write(0, data, size, suffix);
}

#endif

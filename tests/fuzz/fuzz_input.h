/* The fuzz targets hand each input to a loader as a file: written here to
 * one temporary file per process, rewritten for every input. */
#ifndef TANDEM_FUZZ_INPUT_H
#define TANDEM_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline const char *fuzz_file(const uint8_t *data, size_t size, const char *suffix)
{
    static char path[64];
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/tandem-fuzz-%d%s", (int)getpid(), suffix);
    }
    FILE *file = fopen(path, "wb");
    if (!file)
        abort();
    if (size && fwrite(data, 1, size, file) != size)
        abort();
    fclose(file);
    return path;
}

#endif

#define _POSIX_C_SOURCE 200809L
#include "backend/opencl/kernel_cache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

static const char MAGIC[8] = {'T', 'D', 'M', 'K', 'C', 'B', '0', '1'};

enum { HEADER_BYTES = 24 }; /* magic, payload size, payload checksum */

static const uint64_t FNV_OFFSET = 14695981039346656037ULL;
static const uint64_t FNV_PRIME = 1099511628211ULL;

static uint64_t fnv1a(uint64_t hash, const unsigned char *bytes, size_t size)
{
    for (size_t i = 0; i < size; i++)
        hash = (hash ^ bytes[i]) * FNV_PRIME;
    return hash;
}

uint64_t tdm_kernel_cache_key(const char *const *parts, size_t count)
{
    uint64_t hash = FNV_OFFSET;
    for (size_t i = 0; i < count; i++)
        hash = fnv1a(hash, (const unsigned char *)parts[i], strlen(parts[i]) + 1);
    return hash;
}

bool tdm_kernel_cache_directory(char *out, size_t capacity)
{
    const char *explicit_dir = getenv("TANDEM_KERNEL_CACHE");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int written;
    if (explicit_dir) {
        if (explicit_dir[0] == '\0' || strcmp(explicit_dir, "off") == 0)
            return false;
        written = snprintf(out, capacity, "%s", explicit_dir);
    } else if (xdg && xdg[0]) {
        written = snprintf(out, capacity, "%s/tandem/kernels", xdg);
    } else if (home && home[0]) {
        written = snprintf(out, capacity, "%s/.cache/tandem/kernels", home);
    } else {
        return false;
    }
    return written > 0 && (size_t)written < capacity;
}

static void entry_path(char *out, size_t capacity, const char *directory, uint64_t key)
{
    snprintf(out, capacity, "%s/%016llx.bin", directory, (unsigned long long)key);
}

static void put_u64(unsigned char *out, uint64_t value)
{
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(value >> (8 * i));
}

static uint64_t get_u64(const unsigned char *in)
{
    uint64_t value = 0;
    for (int i = 7; i >= 0; i--)
        value = (value << 8) | in[i];
    return value;
}

/* Reads and checks one entry from an open file. */
static tdm_status read_entry(FILE *file, const char *path, unsigned char **data, size_t *size)
{
    unsigned char header[HEADER_BYTES];
    if (fread(header, 1, sizeof header, file) != sizeof header ||
        memcmp(header, MAGIC, sizeof MAGIC) != 0)
        return TDM_FAIL(TDM_ERR_NOT_FOUND, "kernel cache entry %s has no valid header", path);
    uint64_t payload_size = get_u64(header + 8), checksum = get_u64(header + 16);
    if (payload_size == 0 || payload_size > ((uint64_t)1 << 30))
        return TDM_FAIL(TDM_ERR_NOT_FOUND, "kernel cache entry %s has a bad size", path);
    unsigned char *payload = malloc((size_t)payload_size);
    if (!payload)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "out of host memory");
    if (fread(payload, 1, (size_t)payload_size, file) != payload_size ||
        fnv1a(FNV_OFFSET, payload, (size_t)payload_size) != checksum) {
        free(payload);
        return TDM_FAIL(TDM_ERR_NOT_FOUND, "kernel cache entry %s is truncated or corrupt", path);
    }
    *data = payload;
    *size = (size_t)payload_size;
    return TDM_OK;
}

tdm_status tdm_kernel_cache_load(const char *directory, uint64_t key, unsigned char **data,
                                 size_t *size)
{
    char path[4096];
    entry_path(path, sizeof path, directory, key);
    *data = NULL;
    *size = 0;
    FILE *file = fopen(path, "rb");
    if (!file)
        return TDM_FAIL(TDM_ERR_NOT_FOUND, "no kernel cache entry %s", path);
    tdm_status status = read_entry(file, path, data, size);
    fclose(file);
    return status;
}

tdm_status tdm_make_directories(const char *directory)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", directory) >= (int)sizeof path)
        return TDM_FAIL(TDM_ERR_IO, "path is too long: %.64s...", directory);
    for (char *slash = path + 1;; slash++) {
        bool end = *slash == '\0';
        if (*slash == '/' || end) {
            *slash = '\0';
            if (mkdir(path, 0755) != 0 && errno != EEXIST)
                return TDM_FAIL(TDM_ERR_IO, "cannot create directory %s: %s", path,
                                strerror(errno));
            if (end)
                return TDM_OK;
            *slash = '/';
        }
    }
}

static bool write_entry(FILE *file, const unsigned char *data, size_t size)
{
    unsigned char header[HEADER_BYTES];
    memcpy(header, MAGIC, sizeof MAGIC);
    put_u64(header + 8, size);
    put_u64(header + 16, fnv1a(FNV_OFFSET, data, size));
    return fwrite(header, 1, sizeof header, file) == sizeof header &&
           fwrite(data, 1, size, file) == size;
}

tdm_status tdm_kernel_cache_store(const char *directory, uint64_t key, const unsigned char *data,
                                  size_t size)
{
    char path[4096], temporary[4200];
    TDM_TRY(tdm_make_directories(directory));
    entry_path(path, sizeof path, directory, key);
    snprintf(temporary, sizeof temporary, "%s.tmp.%ld", path, (long)getpid());
    FILE *file = fopen(temporary, "wb");
    if (!file)
        return TDM_FAIL(TDM_ERR_IO, "cannot write %s: %s", temporary, strerror(errno));
    bool written = write_entry(file, data, size);
    if (fclose(file) != 0 || !written || rename(temporary, path) != 0) {
        remove(temporary);
        return TDM_FAIL(TDM_ERR_IO, "cannot write kernel cache entry %s", path);
    }
    return TDM_OK;
}

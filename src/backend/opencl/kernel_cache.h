/* A disk cache of compiled OpenCL program binaries, for drivers that keep
 * none of their own. Entries are keyed by a hash of everything that affects
 * the binary; every failure here only means "build from source". */
#ifndef TANDEM_OPENCL_KERNEL_CACHE_H
#define TANDEM_OPENCL_KERNEL_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tandem/status.h"

/* The cache directory: $TANDEM_KERNEL_CACHE if set ("off" disables the
 * cache), else $XDG_CACHE_HOME/tandem/kernels, else ~/.cache/tandem/kernels.
 * Returns false when the cache is disabled or no directory can be named. */
bool tdm_kernel_cache_directory(char *out, size_t capacity);

/* mkdir -p */
tdm_status tdm_make_directories(const char *directory);

/* 64-bit FNV-1a over the parts, each followed by a NUL separator. */
uint64_t tdm_kernel_cache_key(const char *const *parts, size_t count);

/* Reads the entry for key; TDM_ERR_NOT_FOUND when absent, truncated or
 * failing its checksum. The caller frees *data. */
tdm_status tdm_kernel_cache_load(const char *directory, uint64_t key, unsigned char **data,
                                 size_t *size);

/* Writes the entry atomically (temporary file, then rename), creating the
 * directory if needed. */
tdm_status tdm_kernel_cache_store(const char *directory, uint64_t key, const unsigned char *data,
                                  size_t size);

#endif

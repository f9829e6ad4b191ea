/* The OpenCL C files of cl/, embedded at build time (cmake/embed_kernels.cmake). */
#ifndef TANDEM_OPENCL_KERNEL_SOURCES_H
#define TANDEM_OPENCL_KERNEL_SOURCES_H

#include <stddef.h>

typedef struct tdm_kernel_source {
    const char *file_name;
    const char *text;
} tdm_kernel_source;

extern const tdm_kernel_source tdm_kernel_sources[];
extern const size_t tdm_kernel_source_count;

#endif

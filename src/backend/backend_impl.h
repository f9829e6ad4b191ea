/* What a backend implements: one table of function pointers plus a context,
 * in the spirit of ggml-backend. The generic layer (backend.c) validates every
 * argument before it calls these, so implementations may assume sizes, offsets
 * and leading dimensions are in range and that m, n, k and counts are > 0. */
#ifndef TANDEM_BACKEND_IMPL_H
#define TANDEM_BACKEND_IMPL_H

#include "tandem/backend.h"

/* Bumped whenever the table below changes, so a mismatched backend is refused. */
#define TDM_BACKEND_IFACE_VERSION 2

struct tdm_backend_iface {
    int version;
    void (*free)(tdm_backend *backend);
    bool (*supports_op)(const tdm_backend *backend, tdm_op op);
    tdm_status (*synchronize)(tdm_backend *backend);

    /* buffer->size is set by the caller; the backend fills buffer->handle. */
    tdm_status (*buffer_alloc)(tdm_backend *backend, tdm_buffer *buffer);
    void (*buffer_free)(tdm_backend *backend, tdm_buffer *buffer);
    tdm_status (*upload)(tdm_backend *backend, tdm_buffer *dst, size_t offset, const void *src,
                         size_t bytes);
    tdm_status (*download)(tdm_backend *backend, const tdm_buffer *src, size_t offset, void *dst,
                           size_t bytes);

    /* Ops: NULL where supports_op says no. */
    tdm_status (*fill)(tdm_backend *backend, tdm_view x, size_t count, float value);
    tdm_status (*copy)(tdm_backend *backend, tdm_view src, tdm_view dst, size_t count);
    tdm_status (*axpy)(tdm_backend *backend, size_t count, float alpha, tdm_view x, tdm_view y);
    tdm_status (*scale)(tdm_backend *backend, size_t count, float alpha, tdm_view x);
    tdm_status (*sgemm)(tdm_backend *backend, const tdm_sgemm_args *args);
    /* The elementwise ops TDM_OP_ADD .. TDM_OP_SIGMOID_BACKWARD: out = f(a, b);
     * b is unused (an empty view) for the unary ones. */
    tdm_status (*elementwise)(tdm_backend *backend, tdm_op op, size_t count, tdm_view a, tdm_view b,
                              tdm_view out);
};

struct tdm_backend {
    const struct tdm_backend_iface *iface;
    void *context;
    const char *name;
    char description[512];
};

struct tdm_buffer {
    tdm_backend *backend;
    size_t size;  /* bytes */
    void *handle; /* host pointer (cpu) or cl_mem (opencl) */
};

/* Pointer to the first float of a view on a host-memory backend. */
static inline float *tdm_view_host_floats(tdm_view view)
{
    return (float *)view.buffer->handle + view.offset;
}

#endif

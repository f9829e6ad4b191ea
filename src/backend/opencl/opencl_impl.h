/* Shared by the OpenCL backend's files: its context, the kernel table and
 * the launch helpers (opencl_backend.c), used by the layer ops too
 * (opencl_layers.c). */
#ifndef TANDEM_OPENCL_IMPL_H
#define TANDEM_OPENCL_IMPL_H

#include "backend/backend_impl.h"
#include "backend/opencl/cl_common.h"
#include "tandem/device.h"

/* The kernels: first the elementwise ones, in tdm_elementwise_op's order (so
 * elementwise op e runs kernel e), then those of kernels.def. */
typedef enum kernel_id {
#define TDM_OP(id, name, entry)
#define TDM_ELEMENTWISE(id, name, operands) K_##id,
#include "tandem/ops.def"
#undef TDM_OP
#undef TDM_ELEMENTWISE
#define TDM_KERNEL(id, name) K_##id,
#include "backend/opencl/kernels.def"
#undef TDM_KERNEL
    KERNEL_COUNT
} kernel_id;

/* Every 1-D launch uses one local size, group_size (PoCL compiles once per
 * local size): at most PREFERRED_GROUP_SIZE, within the device's and every
 * kernel's limits, a power of two. The reduction kernels are built for
 * reduction_group (TDM_GROUP_SIZE in cl/common.cl), at most that. */
enum { PREFERRED_GROUP_SIZE = 64 };

/* Sizes, offsets and indices the kernels take: 32 bits (cl/common.cl says
 * why), within buffers of at most MAX_BUFFER_FLOATS floats. */
typedef cl_uint cl_index;
#define MAX_BUFFER_FLOATS ((size_t)1 << 31)

/* EM's bits_sums on a GPU splits a block's rows into parts of
 * BITS_PART_ROWS rows (one loop over all rows per work-item leaves most of
 * a GPU idle), as many as BITS_PARTIALS_BYTES of partial sums hold, then
 * adds the parts in order: deterministic, and the same on every run of a
 * device. TANDEM_OPENCL_BITS_PARTS=N sets the most parts on any device (the
 * tests split rows on PoCL this way). */
enum { BITS_PART_ROWS = 128, BITS_PARTIALS_BYTES = 64 << 20 };

/* The (value, plane) kernels launch at most this many work-groups of planes
 * along the second axis (CUDA grids hold 65535 a side), the rest along the
 * third. TANDEM_OPENCL_PLANE_GROUPS=N sets fewer (the tests spill planes into
 * the third axis on PoCL this way). */
enum { MAX_PLANE_GROUPS = 65535 };

/* Rows of the kernel profile (TANDEM_OPENCL_PROFILE): the kernels, then
 * CLBlast's GEMM, the fills of clEnqueueFillBuffer and the copies of
 * clEnqueueCopyBuffer. */
enum { PROFILE_GEMM = KERNEL_COUNT, PROFILE_FILL, PROFILE_COPY, PROFILE_ROWS };

typedef struct profile_row {
    double seconds; /* device time, from the events' start to end */
    unsigned long launches;
} profile_row;

typedef struct opencl_context {
    tdm_opencl_device_info info;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    cl_program program;
    cl_kernel kernels[KERNEL_COUNT];
    cl_mem gemm_scratch; /* CLBlast's temporary buffer, grown on demand */
    size_t gemm_scratch_size;
    cl_mem bits_partials; /* bits_sums' sums per part of the rows, grown on demand */
    size_t bits_partials_size;
    size_t bits_parts;          /* the most parts bits_sums splits rows into */
    size_t plane_groups;        /* MAX_PLANE_GROUPS, or what the tests set */
    char tuning[512];           /* what tdm_cl_apply_tuning said ("" if not tuned) */
    size_t group_size;          /* the local size of every 1-D launch */
    size_t device_group_limit;  /* the device's largest work-group (or TANDEM_OPENCL_MAX_GROUP) */
    size_t reduction_group;     /* that of the per-channel reductions (TDM_GROUP_SIZE) */
    size_t sub_buffer_align;    /* CL_DEVICE_MEM_BASE_ADDR_ALIGN, in bytes */
    tdm_backend_counts *counts; /* the backend's, counted here */
    bool group_capped;          /* TANDEM_OPENCL_MAX_GROUP lowered it (for testing) */
    bool buffer_capped;         /* TANDEM_OPENCL_MAX_BUFFER lowered max_buffer_bytes */
    size_t max_buffer_bytes;    /* the largest buffer: CL_DEVICE_MAX_MEM_ALLOC_SIZE or less */
    const char *buffer_limit;   /* what sets max_buffer_bytes, for the message */
    bool profiling;             /* TANDEM_OPENCL_PROFILE: each launch timed, report at free */
    profile_row profile[PROFILE_ROWS];
} opencl_context;

static inline opencl_context *ctx_of(const tdm_backend *backend)
{
    return backend->context;
}

static inline cl_mem mem_of(const tdm_buffer *buffer)
{
    return (cl_mem)buffer->handle;
}

typedef struct kernel_arg {
    size_t size;
    const void *value;
} kernel_arg;

#define ARG(variable)                                                                              \
    {                                                                                              \
        sizeof(variable), &(variable)                                                              \
    }

/* Grows a scratch buffer of the backend's to at least `bytes`; with
 * `within_limit`, a size past max_buffer_bytes is refused, naming it. */
tdm_status tdm_cl_ensure_scratch(opencl_context *ctx, cl_mem *mem, size_t *size, size_t bytes,
                                 const char *what, bool within_limit);

/* Sets the arguments and enqueues a 1-D launch of one work-item per item,
 * rounded up to whole work-groups: the kernels return past `items`. No
 * kernel loops over a range: PoCL vectorises a work-group's work-items
 * only around loop-free code (a grid-stride loop made im2col 2.6x slower). */
tdm_status tdm_cl_launch(opencl_context *ctx, kernel_id id, size_t items, const kernel_arg *args,
                         size_t arg_count);
/* The same with exactly `groups` work-groups of the reduction group (one per
 * channel, say). */
tdm_status tdm_cl_launch_groups(opencl_context *ctx, kernel_id id, size_t groups,
                                const kernel_arg *args, size_t arg_count);
/* A 2-D launch of at least x by y work-items, in work-groups of local[0] by
 * local[1]: the sizes are rounded up to whole groups, and the kernel skips
 * the work-items past x or y. local NULL: exactly x by y, in groups the
 * implementation picks. */
tdm_status tdm_cl_launch_2d(opencl_context *ctx, kernel_id id, size_t x, size_t y,
                            const size_t local[2], const kernel_arg *args, size_t arg_count);
/* The same in `dims` (1 to 3) dimensions: at least size[d] work-items along
 * each, in groups of local[d] (local NULL: exactly size[d]). */
tdm_status tdm_cl_launch_nd(opencl_context *ctx, kernel_id id, unsigned dims, const size_t *size,
                            const size_t *local, const kernel_arg *args, size_t arg_count);

#endif

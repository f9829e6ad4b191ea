/* Shared by the OpenCL backend's files: its context, the kernel table and
 * the launch helpers (opencl_backend.c), used by the layer ops too
 * (opencl_layers.c). */
#ifndef TANDEM_OPENCL_IMPL_H
#define TANDEM_OPENCL_IMPL_H

#include "backend/backend_impl.h"
#include "backend/opencl/cl_common.h"
#include "tandem/device.h"

typedef enum kernel_id {
    K_FILL,
    K_FILL_MATRIX,
    K_AXPY,
    K_SCALE,
    K_ADD,
    K_RELU,
    K_RELU_BACKWARD,
    K_SIGMOID,
    K_SIGMOID_BACKWARD,
    K_IM2COL,
    K_COL2IM,
    K_SWAP_AXES,
    K_CONV_DENSE_WEIGHT,
    K_CONV_DENSE_WEIGHT_BACKWARD,
    K_BIAS_ADD,
    K_BIAS_BACKWARD,
    K_BATCHNORM_STATS,
    K_BATCHNORM_NORMALIZE,
    K_BATCHNORM_BACKWARD_REDUCE,
    K_BATCHNORM_BACKWARD_APPLY,
    K_MAXPOOL2D,
    K_MAXPOOL2D_BACKWARD,
    K_GLOBAL_AVGPOOL,
    K_GLOBAL_AVGPOOL_BACKWARD,
    K_SOFTMAX_CROSS_ENTROPY,
    K_SGD,
    K_SOFTMAX_ROWS,
    K_BITS_SCORES,
    K_BITS_SUMS,
    KERNEL_COUNT
} kernel_id;

/* Every launch uses this local size (PoCL compiles once per local size; the
 * reduction kernels require it: TDM_GROUP_SIZE in cl/common.cl). */
enum { LOCAL_SIZE = 64, MAX_GROUPS = 1024 };

typedef struct opencl_context {
    tdm_opencl_device_info info;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    cl_program program;
    cl_kernel kernels[KERNEL_COUNT];
    cl_mem gemm_scratch; /* CLBlast's temporary buffer, grown on demand */
    size_t gemm_scratch_size;
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

/* Sets the arguments and enqueues a 1-D launch covering `items` work-items
 * (capped at MAX_GROUPS groups: the kernels stride over longer ranges). */
tdm_status tdm_cl_launch(opencl_context *ctx, kernel_id id, size_t items, const kernel_arg *args,
                         size_t arg_count);
/* The same with exactly `groups` work-groups (one per channel, say). */
tdm_status tdm_cl_launch_groups(opencl_context *ctx, kernel_id id, size_t groups,
                                const kernel_arg *args, size_t arg_count);

#endif

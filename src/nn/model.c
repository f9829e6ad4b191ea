/* A model on a backend: the layers expanded into a list of nodes (a Block
 * becomes its five inner layers, an add and a relu), one buffer each for
 * parameters, gradients, momentum, running statistics, saved values,
 * activations and activation gradients, all sliced by offsets. Only the
 * backend's ops are used here, never OpenCL or CPU details. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "nn/nn_internal.h"

enum { MAX_NODES = TDM_MAX_LAYERS * (TDM_BLOCK_LAYERS + 2), MODEL_INPUT = -1 };

typedef enum node_kind {
    NODE_CONV,
    NODE_NORM,
    NODE_RELU,
    NODE_SIGMOID,
    NODE_LEAKY_RELU,
    NODE_MAXPOOL,
    NODE_AVGPOOL,
    NODE_FLATTEN,
    NODE_LINEAR,
    NODE_ADD
} node_kind;

typedef struct node {
    node_kind kind;
    int inputs[2]; /* node indices or MODEL_INPUT; inputs[1] for the add only */
    tdm_layer_spec layer;
    tdm_sample_shape in, out;
    size_t weight, bias; /* offsets in params (and grads, velocity) */
    size_t weight_count, bias_count;
    size_t stats; /* running mean at stats + 0, variance at + C */
    size_t saved; /* mean and invstd (2C) or argmax (batch x out) */
    size_t activation, gradient;
    bool accumulate[2]; /* backward adds into that input's gradient */
    /* An add's input whose gradient is the add's own (shares_add_gradient),
     * or one whose next writer adds the add's gradient after writing its own
     * (add_after): the add copies nothing there. */
    bool gradient_shared[2];
    int add_after[2]; /* an add whose gradient this node's input gradient adds, or -1 */
    /* A conv over small images that adds its input gradient to the add's,
     * now its input's own, in its GEMM or direct kernel (can_add_in_place):
     * no add launch. */
    bool adds_in_place;
    bool relu_after;       /* an add or a norm that applies the ReLU after it */
    bool fused;            /* a ReLU its input node applies: its view, no forward work */
    bool masked_by_reader; /* such a ReLU whose backward its linear reader does */
    bool relu_input;       /* a linear layer doing its input ReLU's backward */
    bool pooled;           /* an average pool its linear layer applies: no work of its own */
    int pool;              /* a linear layer's average pool (pooled), or -1 */
    int max_pool;          /* a batch norm's max-pool (by_norm), or -1 */
    bool by_norm;          /* a max-pool its batch norm runs in training (fuse_norm_pools) */
    int residual_add;      /* a batch norm's add, whose sum it writes (fuse_norm_adds), or -1 */
    bool summed_by_norm;   /* such an add: no forward work of its own */
    size_t dense, dense_floats; /* a conv run with its dense matrix: where it is kept, size */
    bool direct_adds;           /* a conv whose direct kernel adds its input gradient in place */
    size_t col, col_floats;     /* a conv whose training forward keeps x's col for backward */
} node;

struct tdm_model {
    tdm_backend *backend;
    tdm_sample_shape input_shape;
    size_t max_batch, batch;
    bool trained_forward, momentum_started;
    bool grads_zero; /* no backward since the gradients were last set to zero */
    tdm_view input;
    node nodes[MAX_NODES];
    size_t node_count;
    size_t param_count, stats_count, saved_count, activation_count, scratch_count;
    tdm_buffer *params, *grads, *velocity, *stats, *saved, *activations, *gradients, *scratch;
    /* The dense matrices of the convs that run with one (tdm_conv2d_dense_floats),
     * built once for each version of the parameters, not once a pass. */
    tdm_buffer *dense;
    size_t dense_count;
    /* The cols of the convs that keep theirs (tdm_conv2d_col_floats). */
    tdm_buffer *cols;
    size_t col_count;
    unsigned long params_version, dense_version;
    /* Training on a share of each batch (tdm_model_share_batches): */
    tdm_comm *comm;     /* NULL: this process's batches alone */
    tdm_buffer *shared; /* a batch norm input's worth, then 4 x C values */
    double *host;       /* room for the host side of a batch norm over processes */
};

static tdm_view at(tdm_buffer *buffer, size_t offset)
{
    return (tdm_view){buffer, offset};
}

/* ---------- building the node list ---------- */

/* The node of a plain layer; false for a Block (expanded into plain layers
 * before this) or a value outside the enum. */
static bool node_kind_of(tdm_layer_kind kind, node_kind *out)
{
    switch (kind) {
    case TDM_LAYER_CONV2D: *out = NODE_CONV; return true;
    case TDM_LAYER_BATCHNORM2D: *out = NODE_NORM; return true;
    case TDM_LAYER_RELU: *out = NODE_RELU; return true;
    case TDM_LAYER_SIGMOID: *out = NODE_SIGMOID; return true;
    case TDM_LAYER_LEAKY_RELU: *out = NODE_LEAKY_RELU; return true;
    case TDM_LAYER_MAXPOOL2D: *out = NODE_MAXPOOL; return true;
    case TDM_LAYER_GLOBAL_AVGPOOL: *out = NODE_AVGPOOL; return true;
    case TDM_LAYER_FLATTEN: *out = NODE_FLATTEN; return true;
    case TDM_LAYER_LINEAR: *out = NODE_LINEAR; return true;
    case TDM_LAYER_BLOCK:
    case TDM_LAYER_KIND_COUNT: return false;
    }
    return false;
}

/* Appends a node fed by `input`; reserves its parameters and storage. */
static tdm_status add_node(tdm_model *m, size_t index, const tdm_layer_spec *layer, int input,
                           tdm_sample_shape in)
{
    if (m->node_count == MAX_NODES)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "model: too many layers");
    tdm_layer_info info;
    node_kind kind;
    TDM_TRY(tdm_nn_infer_layer(index, layer, in, &info));
    if (!node_kind_of(layer->kind, &kind))
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "model: layer %zu is not a plain layer", index);
    node *n = &m->nodes[m->node_count++];
    *n = (node){.kind = kind,
                .inputs = {input, MODEL_INPUT},
                .layer = *layer,
                .in = in,
                .out = info.output};
    if (n->kind == NODE_MAXPOOL && n->layer.stride == 0)
        n->layer.stride = n->layer.kernel;
    n->weight = m->param_count;
    n->weight_count = info.parameters;
    if (layer->bias && (n->kind == NODE_CONV || n->kind == NODE_LINEAR))
        n->bias_count = layer->out_channels;
    if (n->kind == NODE_NORM) /* gamma is the "weight", beta the "bias" */
        n->bias_count = in.channels;
    n->weight_count -= n->bias_count;
    n->bias = n->weight + n->weight_count;
    m->param_count += info.parameters;
    if (n->kind == NODE_NORM) {
        n->stats = m->stats_count;
        m->stats_count += 2 * in.channels;
    }
    n->saved = m->saved_count;
    m->saved_count += n->kind == NODE_NORM      ? 2 * in.channels
                      : n->kind == NODE_MAXPOOL ? m->max_batch * tdm_nn_volume(n->out)
                                                : 0;
    if (n->kind == NODE_FLATTEN) /* a view of its input: no storage, no work */
        return TDM_OK;
    n->activation = m->activation_count;
    m->activation_count += m->max_batch * tdm_nn_volume(n->out);
    return TDM_OK;
}

static int last_node(const tdm_model *m)
{
    return (int)m->node_count - 1;
}

static tdm_sample_shape shape_after(const tdm_model *m, tdm_sample_shape input)
{
    return m->node_count ? m->nodes[m->node_count - 1].out : input;
}

/* Block(C): f = conv, norm, relu, conv, norm; y = relu(x + f(x)). */
static tdm_status add_block(tdm_model *m, size_t index, const tdm_layer_spec *layer,
                            tdm_sample_shape in)
{
    if (layer->out_channels != in.channels)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "layer %zu (block): a Block keeps its channels, but out = %zu and the "
                        "input has %zu",
                        index + 1, layer->out_channels, in.channels);
    int block_input = last_node(m);
    tdm_layer_spec inner[TDM_BLOCK_LAYERS];
    tdm_nn_block_layers(layer->out_channels, inner);
    for (size_t i = 0; i < TDM_BLOCK_LAYERS; i++)
        TDM_TRY(add_node(m, index, &inner[i], last_node(m), shape_after(m, in)));
    tdm_layer_spec relu = {.kind = TDM_LAYER_RELU};
    TDM_TRY(add_node(m, index, &relu, last_node(m), in)); /* becomes the add */
    node *add = &m->nodes[last_node(m)];
    add->kind = NODE_ADD;
    add->inputs[1] = block_input;
    return add_node(m, index, &relu, last_node(m), in);
}

/* A flatten shares its input's storage: gradients land in its input's. */
static int gradient_owner(const tdm_model *m, int index)
{
    while (index != MODEL_INPUT && m->nodes[index].kind == NODE_FLATTEN)
        index = m->nodes[index].inputs[0];
    return index;
}

/* The first node to write a gradient in backward order writes it; the
 * others add to it. */
static void plan_gradients(tdm_model *m)
{
    bool written[MAX_NODES] = {false};
    for (int i = last_node(m); i >= 0; i--) {
        node *n = &m->nodes[i];
        for (int slot = 0; slot < 2 && n->kind != NODE_FLATTEN; slot++) {
            n->add_after[slot] = -1;
            int owner = gradient_owner(m, n->inputs[slot]);
            if (owner == MODEL_INPUT)
                continue;
            n->accumulate[slot] = written[owner];
            written[owner] = true;
        }
    }
}

static bool is_input_of_another(const tdm_model *m, int index, int except)
{
    for (int i = 0; i < (int)m->node_count; i++)
        if (i != except && (m->nodes[i].inputs[0] == index || m->nodes[i].inputs[1] == index))
            return true;
    return false;
}

/* An add passes its gradient to both inputs unchanged: an input read by the
 * add alone (and not fused, whose gradient is its input's) takes the add's
 * gradient as its own, no copy. */
static bool shares_add_gradient(const tdm_model *m, int add, int slot)
{
    const node *n = &m->nodes[add];
    int input = n->inputs[slot];
    return input != MODEL_INPUT && input != n->inputs[1 - slot] && !n->accumulate[slot] &&
           m->nodes[input].kind != NODE_FLATTEN && !m->nodes[input].fused &&
           !is_input_of_another(m, input, add);
}

/* The node that writes an input's gradient next after `add` in backward
 * order, where it writes it (=) rather than adding; -1 if none. */
static int next_writer(const tdm_model *m, int add, int owner, int *slot_out)
{
    for (int i = add - 1; i >= 0; i--) {
        const node *n = &m->nodes[i];
        for (int slot = 0; slot < 2 && n->kind != NODE_FLATTEN; slot++)
            if (gradient_owner(m, n->inputs[slot]) == owner) {
                *slot_out = slot;
                return n->fused || n->kind == NODE_ADD ? -1 : i;
            }
    }
    return -1;
}

/* An input the add writes first but others read too (a residual block's
 * input): its next writer writes its gradient and then adds the add's,
 * instead of the add copying it there and the writer adding through scratch. */
static void plan_add_gradients(tdm_model *m)
{
    /* Later adds first: an add that feeds another takes that one's gradient
     * before its own inputs take it. */
    for (int i = (int)m->node_count - 1; i >= 0; i--) {
        node *n = &m->nodes[i];
        for (int slot = 0; slot < 2 && n->kind == NODE_ADD; slot++) {
            if (shares_add_gradient(m, i, slot)) {
                m->nodes[n->inputs[slot]].gradient = n->gradient;
                n->gradient_shared[slot] = true;
                continue;
            }
            int owner = gradient_owner(m, n->inputs[slot]), writer_slot = 0;
            int writer = owner == MODEL_INPUT || n->accumulate[slot]
                             ? -1
                             : next_writer(m, i, owner, &writer_slot);
            if (writer < 0 || n->inputs[0] == n->inputs[1])
                continue;
            n->gradient_shared[slot] = true;
            m->nodes[writer].accumulate[writer_slot] = false;
            m->nodes[writer].add_after[writer_slot] = i;
        }
    }
}

/* A ReLU that alone reads an add's or a batch norm's output is done by that
 * node (one launch instead of two: tdm_add_relu, tdm_batchnorm_shape.relu).
 * relu(v) > 0 exactly where v > 0, so the mask read from the fused output is
 * the same: the ReLU's backward runs as before after an add, and inside the
 * batch norm's backward after a batch norm. */
static void fuse_relus(tdm_model *m)
{
    for (int i = 0; i < (int)m->node_count; i++) {
        node *n = &m->nodes[i];
        int input = n->inputs[0];
        if (n->kind != NODE_RELU || input == MODEL_INPUT ||
            (m->nodes[input].kind != NODE_ADD && m->nodes[input].kind != NODE_NORM) ||
            is_input_of_another(m, input, i))
            continue;
        m->nodes[input].relu_after = true;
        n->fused = true;
    }
}

/* The node `*reader` reads, seen through a flatten only it reads (which
 * then becomes *reader), or MODEL_INPUT. */
static int source_through_flatten(const tdm_model *m, int *reader)
{
    int source = m->nodes[*reader].inputs[0];
    if (source != MODEL_INPUT && m->nodes[source].kind == NODE_FLATTEN &&
        !is_input_of_another(m, source, *reader)) {
        *reader = source;
        source = m->nodes[source].inputs[0];
    }
    return source;
}

/* A global average pool read (through a flatten) only by a linear layer is
 * done by that layer (tdm_linear_shape.pool: one launch a pass instead of
 * two, with the pool's bits); its input is then the linear layer's. */
static void fuse_heads(tdm_model *m)
{
    for (int i = 0; i < (int)m->node_count; i++) {
        node *n = &m->nodes[i];
        n->pool = -1;
        if (n->kind != NODE_LINEAR)
            continue;
        int reader = i, pool = source_through_flatten(m, &reader);
        if (pool == MODEL_INPUT || m->nodes[pool].kind != NODE_AVGPOOL ||
            is_input_of_another(m, pool, reader))
            continue;
        n->pool = pool;
        m->nodes[pool].pooled = true;
    }
}

/* A ReLU fused into an add and read only by a linear layer (through its
 * pool or a flatten) has its backward done by that layer's
 * (tdm_linear_shape.relu: one launch instead of two). Its gradient is the
 * add's view, where the linear layer writes dx anyway. */
static void fuse_linear_relus(tdm_model *m)
{
    for (int i = 0; i < (int)m->node_count; i++) {
        node *n = &m->nodes[i];
        if (n->kind != NODE_LINEAR)
            continue;
        int reader = n->pool >= 0 ? n->pool : i, relu = source_through_flatten(m, &reader);
        if (relu == MODEL_INPUT || m->nodes[relu].kind != NODE_RELU || !m->nodes[relu].fused ||
            m->nodes[m->nodes[relu].inputs[0]].kind != NODE_ADD ||
            is_input_of_another(m, relu, reader))
            continue;
        m->nodes[relu].masked_by_reader = true;
        n->relu_input = true;
    }
}

/* A max-pool that alone reads a batch norm's output (through the ReLU the
 * norm applies) is run by the norm in training (tdm_batchnorm_pool_*: for
 * 2x2 windows one OpenCL launch a pass instead of two, the same bits). */
static void fuse_norm_pools(tdm_model *m)
{
    for (int i = 0; i < (int)m->node_count; i++)
        m->nodes[i].max_pool = -1;
    for (int i = 0; i < (int)m->node_count; i++) {
        node *n = &m->nodes[i];
        int reader = i, source = n->inputs[0];
        if (n->kind != NODE_MAXPOOL || source == MODEL_INPUT)
            continue;
        if (m->nodes[source].kind == NODE_RELU && m->nodes[source].fused &&
            !is_input_of_another(m, source, i)) {
            reader = source;
            source = m->nodes[source].inputs[0];
        }
        if (m->nodes[source].kind != NODE_NORM || is_input_of_another(m, source, reader))
            continue;
        m->nodes[source].max_pool = i;
        n->by_norm = true;
    }
}

/* A batch norm without a ReLU of its own (nor a pool) read only by an add,
 * whose other input comes before it, writes the add's sum and the add's
 * ReLU (tdm_batchnorm_add_*: one launch a pass instead of two, the same
 * bits). Its own output is then never written: only the add read it, and
 * its backward, without a ReLU, does not. */
static void fuse_norm_adds(tdm_model *m)
{
    for (int i = 0; i < (int)m->node_count; i++)
        m->nodes[i].residual_add = -1;
    for (int i = 0; i < (int)m->node_count; i++) {
        node *add = &m->nodes[i];
        for (int slot = 0; slot < 2 && add->kind == NODE_ADD && !add->summed_by_norm; slot++) {
            int norm = add->inputs[slot], other = add->inputs[1 - slot];
            if (norm == MODEL_INPUT || other >= norm || m->nodes[norm].kind != NODE_NORM ||
                m->nodes[norm].relu_after || m->nodes[norm].max_pool >= 0 ||
                is_input_of_another(m, norm, i))
                continue;
            m->nodes[norm].residual_add = i;
            add->summed_by_norm = true;
        }
    }
}

static void assign_views(tdm_model *m)
{
    for (size_t i = 0; i < m->node_count; i++) {
        node *n = &m->nodes[i];
        if ((n->kind == NODE_FLATTEN || n->fused) && n->inputs[0] != MODEL_INPUT)
            n->activation = m->nodes[n->inputs[0]].activation;
        n->gradient = n->activation;
        size_t in_size = m->max_batch * tdm_nn_volume(n->in);
        m->scratch_count = in_size > m->scratch_count ? in_size : m->scratch_count;
    }
}

/* Whether a node's backward reads the gradient at `offset`: as its own
 * (dy), or as an add's that it adds after writing its input's (add_after). */
static bool reads_gradient(const tdm_model *m, const node *n, size_t offset)
{
    if (n->kind == NODE_FLATTEN)
        return false;
    bool reads = n->gradient == offset;
    for (int slot = 0; slot < 2; slot++)
        reads =
            reads || (n->add_after[slot] >= 0 && m->nodes[n->add_after[slot]].gradient == offset);
    return reads;
}

/* A conv over small images that adds an add's gradient after writing its
 * input's (add_after) may add its own to the add's instead, in its GEMM
 * with T (beta = 1) or its direct kernel (tdm_conv2d_accumulates),
 * when no node runs its backward after the conv's and reads the add's
 * gradient, and the input's gradient can move (not a ReLU fused into a batch
 * norm, whose backward the norm's does with the norm's gradient). */
static bool can_add_in_place(const tdm_model *m, int writer)
{
    const node *w = &m->nodes[writer];
    int add = w->add_after[0];
    if (add < 0 || w->kind != NODE_CONV || !(w->dense_floats || w->direct_adds))
        return false;
    const node *input = &m->nodes[gradient_owner(m, w->inputs[0])]; /* not the model's input */
    if (input->fused && m->nodes[input->inputs[0]].kind == NODE_NORM)
        return false;
    size_t offset = m->nodes[add].gradient;
    for (int i = 0; i <= writer; i++)
        if (i != writer ? reads_gradient(m, &m->nodes[i], offset) : w->gradient == offset)
            return false;
    return true;
}

/* The input then takes the add's gradient as its own: the add was its first
 * writer, the conv adds to it, later writers add after. */
static void plan_in_place_adds(tdm_model *m)
{
    for (int i = 0; i < (int)m->node_count; i++) {
        node *n = &m->nodes[i];
        if (!can_add_in_place(m, i))
            continue;
        m->nodes[gradient_owner(m, n->inputs[0])].gradient = m->nodes[n->add_after[0]].gradient;
        n->add_after[0] = -1;
        n->adds_in_place = true;
    }
}

static tdm_status build_nodes(tdm_model *m, const tdm_model_spec *spec)
{
    for (size_t i = 0; i < spec->layer_count; i++) {
        const tdm_layer_spec *layer = &spec->layers[i];
        tdm_sample_shape in = shape_after(m, spec->input);
        if (layer->kind == TDM_LAYER_BLOCK)
            TDM_TRY(add_block(m, i, layer, in));
        else
            TDM_TRY(add_node(m, i, layer, last_node(m), in));
    }
    if (m->nodes[0].kind == NODE_FLATTEN)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "model: the first layer cannot be flatten");
    fuse_relus(m);
    fuse_heads(m);
    fuse_linear_relus(m);
    fuse_norm_pools(m);
    fuse_norm_adds(m);
    assign_views(m);
    return TDM_OK;
}

static tdm_conv2d_shape conv_shape(const node *n, size_t batch);

/* Room for the dense matrix of each conv that runs with one, and the col
 * of each that keeps one. */
static tdm_status plan_dense(tdm_model *m)
{
    for (size_t i = 0; i < m->node_count; i++) {
        node *n = &m->nodes[i];
        if (n->kind != NODE_CONV)
            continue;
        tdm_conv2d_shape s = conv_shape(n, m->max_batch);
        TDM_TRY(tdm_conv2d_dense_floats(m->backend, &s, &n->dense_floats));
        TDM_TRY(tdm_conv2d_accumulates(m->backend, &s, &n->direct_adds));
        n->dense = m->dense_count;
        m->dense_count += n->dense_floats;
        TDM_TRY(tdm_conv2d_col_floats(m->backend, &s, &n->col_floats));
        n->col = m->col_count;
        m->col_count += n->col_floats;
    }
    m->params_version = 1; /* built at the first pass */
    return TDM_OK;
}

/* Who writes and who adds each gradient; needs the convs' dense plans. */
static tdm_status plan_backward(tdm_model *m)
{
    TDM_TRY(plan_dense(m));
    plan_gradients(m);
    plan_add_gradients(m);
    plan_in_place_adds(m);
    return TDM_OK;
}

/* ---------- storage and initialisation ---------- */

static tdm_status alloc_floats(tdm_backend *backend, size_t count, tdm_buffer **out)
{
    *out = NULL;
    return count ? tdm_buffer_alloc(backend, count * sizeof(float), out) : TDM_OK;
}

/* Each of the model's arrays lives in one buffer of the backend. */
static tdm_status fits_one_buffer(const tdm_model *m, const char *what, size_t count)
{
    size_t most = tdm_backend_max_buffer_bytes(m->backend);
    if (count <= most / sizeof(float))
        return TDM_OK;
    return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY,
                    "model: its %s for batches of %zu take %zu bytes, and one buffer of this %s "
                    "device takes at most %zu: use smaller batches (batch and eval_batch) or "
                    "another device",
                    what, m->max_batch, count * sizeof(float), tdm_backend_name(m->backend), most);
}

static void fill_uniform(tdm_rng *rng, float *values, size_t count, size_t fan_in)
{
    float bound = 1.0f / sqrtf((float)fan_in);
    for (size_t i = 0; i < count; i++)
        values[i] = tdm_rng_uniform(rng, -bound, bound);
}

/* PyTorch's default initialisation, in parameter order. */
static void initial_parameters(const tdm_model *m, uint64_t seed, float *params, float *stats)
{
    tdm_rng rng = {seed};
    for (size_t i = 0; i < m->node_count; i++) {
        const node *n = &m->nodes[i];
        if (n->kind == NODE_CONV || n->kind == NODE_LINEAR) {
            size_t fan_in = n->weight_count / n->layer.out_channels;
            fill_uniform(&rng, params + n->weight, n->weight_count, fan_in);
            fill_uniform(&rng, params + n->bias, n->bias_count, fan_in);
        } else if (n->kind == NODE_NORM) {
            for (size_t c = 0; c < n->in.channels; c++) {
                params[n->weight + c] = 1.0f;
                params[n->bias + c] = 0.0f;
                stats[n->stats + c] = 0.0f;
                stats[n->stats + n->in.channels + c] = 1.0f;
            }
        }
    }
}

static tdm_status initialise(tdm_model *m, uint64_t seed)
{
    float *params = calloc(m->param_count + 1, sizeof(float));
    float *stats = calloc(m->stats_count + 1, sizeof(float));
    tdm_status status = TDM_OK;
    if (!params || !stats)
        status = TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "model: out of host memory");
    if (status == TDM_OK) {
        initial_parameters(m, seed, params, stats);
        status = tdm_model_set_parameters(m, params);
    }
    if (status == TDM_OK)
        status = tdm_model_set_statistics(m, stats);
    free(params);
    free(stats);
    return status == TDM_OK ? tdm_model_zero_grad(m) : status;
}

tdm_status tdm_model_create(tdm_backend *backend, const tdm_model_spec *spec, size_t max_batch,
                            uint64_t seed, tdm_model **out)
{
    *out = NULL;
    if (max_batch == 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "model: max_batch must be > 0");
    tdm_layer_info infos[MAX_NODES];
    size_t described;
    TDM_TRY(tdm_model_spec_describe(spec, infos, MAX_NODES, &described));
    tdm_model *m = calloc(1, sizeof *m);
    if (!m)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "model: out of host memory");
    m->backend = backend;
    m->input_shape = spec->input;
    m->max_batch = max_batch;
    tdm_status status = build_nodes(m, spec);
    if (status == TDM_OK)
        status = plan_backward(m);
    tdm_buffer **buffers[] = {&m->params,    &m->grads,   &m->stats, &m->saved, &m->activations,
                              &m->gradients, &m->scratch, &m->dense, &m->cols};
    size_t counts[] = {m->param_count,   m->param_count,      m->stats_count,
                       m->saved_count,   m->activation_count, m->activation_count,
                       m->scratch_count, m->dense_count,      m->col_count};
    static const char *const names[] = {
        "parameters",       "gradients",           "running statistics",
        "saved statistics", "activations",         "activations' gradients",
        "scratch",          "dense conv matrices", "im2col columns"};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0] && status == TDM_OK; i++) {
        status = fits_one_buffer(m, names[i], counts[i]);
        if (status == TDM_OK)
            status = alloc_floats(backend, counts[i], buffers[i]);
    }
    if (status == TDM_OK)
        status = initialise(m, seed);
    if (status != TDM_OK) {
        tdm_model_free(m);
        return status;
    }
    *out = m;
    return TDM_OK;
}

void tdm_model_free(tdm_model *m)
{
    if (!m)
        return;
    tdm_buffer *buffers[] = {m->params, m->grads,       m->velocity,  m->stats,
                             m->saved,  m->activations, m->gradients, m->scratch,
                             m->shared, m->dense,       m->cols};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++)
        tdm_buffer_free(buffers[i]);
    free(m->host);
    free(m);
}

tdm_sample_shape tdm_model_output_shape(const tdm_model *m)
{
    return m->nodes[m->node_count - 1].out;
}

size_t tdm_model_max_batch(const tdm_model *m)
{
    return m->max_batch;
}

/* ---------- forward ---------- */

static tdm_view activation_of(const tdm_model *m, int index)
{
    return index == MODEL_INPUT ? m->input : at(m->activations, m->nodes[index].activation);
}

static tdm_conv2d_shape conv_shape(const node *n, size_t batch)
{
    const tdm_layer_spec *l = &n->layer;
    return (tdm_conv2d_shape){batch,           n->in.channels, n->in.height, n->in.width,
                              l->out_channels, l->kernel,      l->kernel,    l->stride,
                              l->stride,       l->padding,     l->padding};
}

static tdm_pool2d_shape pool_shape(const node *n, size_t batch)
{
    const tdm_layer_spec *l = &n->layer;
    return (tdm_pool2d_shape){batch,     n->in.channels, n->in.height, n->in.width,
                              l->kernel, l->kernel,      l->stride,    l->stride};
}

static tdm_batchnorm_shape norm_shape(const node *n, size_t batch)
{
    return (tdm_batchnorm_shape){.batch = batch,
                                 .channels = n->in.channels,
                                 .spatial = n->in.height * n->in.width,
                                 .eps = 1e-5f,
                                 .momentum = 0.1f,
                                 .relu = n->relu_after};
}

static tdm_linear_shape linear_shape(const tdm_model *m, const node *n, size_t batch)
{
    const node *pool = n->pool >= 0 ? &m->nodes[n->pool] : NULL;
    return (tdm_linear_shape){.batch = batch,
                              .in_features = tdm_nn_volume(n->in),
                              .out_features = n->layer.out_channels,
                              .pool = pool ? pool->in.height * pool->in.width : 0,
                              .relu = n->relu_input};
}

/* The node whose input a linear layer reads: its pool's, or its own. */
static const node *linear_reader(const tdm_model *m, const node *n)
{
    return n->pool >= 0 ? &m->nodes[n->pool] : n;
}

static tdm_view optional_bias(const node *n, tdm_buffer *buffer)
{
    return n->bias_count ? at(buffer, n->bias) : (tdm_view){0};
}

/* ---------- batch norm over the batches of several processes ----------
 * Each process holds a share of the batch. In training, batch norm must
 * normalise with the whole batch's mean and variance, and its input gradient
 * must use the whole batch's sums: composed here from the layer's own ops,
 * each process's statistics and sums exchanged on the host (2C + 1 values a
 * process), combined in rank order so that every process has the same bits. */

/* The host room of a batch norm with C channels: this process's values
 * (a count, then two C-vectors), every process's, two C-vectors of results,
 * and 7C floats. */
typedef struct shared_room {
    double *mine, *all, *first, *second;
    float *floats;
} shared_room;

static size_t shared_room_doubles(size_t c, int size)
{
    return (1 + 2 * c) * ((size_t)size + 1) + 2 * c + (7 * c + 1) / 2;
}

static shared_room room_of(const tdm_model *m, size_t c)
{
    double *all = m->host + 1 + 2 * c, *first = all + (1 + 2 * c) * (size_t)m->comm->size;
    return (shared_room){m->host, all, first, first + c, (float *)(first + 2 * c)};
}

/* room.all[r * (1 + 2C)...]: process r's room.mine, on every process. */
static tdm_status gather_channel_values(tdm_model *m, size_t c, const shared_room *room)
{
    return m->comm->ops->allgather(m->comm, room->mine, (1 + 2 * c) * sizeof(double), room->all);
}

static tdm_status download_pair(tdm_buffer *buffer, size_t offset, size_t c, float *out)
{
    return tdm_buffer_download(buffer, offset * sizeof(float), out, 2 * c * sizeof(float));
}

static tdm_status upload_pair(tdm_buffer *buffer, size_t offset, size_t c, const float *values)
{
    return tdm_buffer_upload(buffer, offset * sizeof(float), values, 2 * c * sizeof(float));
}

/* The whole batch's mean and biased variance from each process's count,
 * mean and variance (Chan et al.'s pairwise update, in rank order). */
static void combine_statistics(const double *all, int size, size_t c, double *mean, double *var,
                               double *count)
{
    size_t stride = 1 + 2 * c;
    *count = 0.0;
    for (int r = 0; r < size; r++)
        *count += all[r * stride];
    for (size_t k = 0; k < c; k++) {
        double sum = 0.0, squares = 0.0;
        for (int r = 0; r < size; r++)
            sum += all[r * stride] * all[r * stride + 1 + k];
        mean[k] = sum / *count;
        for (int r = 0; r < size; r++) {
            double d = all[r * stride + 1 + k] - mean[k];
            squares += all[r * stride] * (all[r * stride + 1 + c + k] + d * d);
        }
        var[k] = squares / *count;
    }
}

/* The layer's forward on this share gives its statistics (and a y to
 * replace); the whole batch's go into the saved and running statistics as
 * the one-process op computes them, and y is normalised with them. */
static tdm_status forward_norm_shared(tdm_model *m, const node *n, const tdm_batchnorm_shape *sum,
                                      tdm_view x, tdm_view residual, tdm_view y)
{
    tdm_batchnorm_shape s = *sum;
    size_t c = n->in.channels, elements = m->batch * tdm_nn_volume(n->in);
    shared_room room = room_of(m, c);
    float *values = room.floats, *running = values + 2 * c;
    double *mean = room.first, *var = room.second, count = 0.0;
    TDM_TRY(download_pair(m->stats, n->stats, c, running));
    TDM_TRY(tdm_batchnorm_forward_train(
        m->backend, &s, x, at(m->params, n->weight), at(m->params, n->bias), at(m->stats, n->stats),
        at(m->stats, n->stats + c), at(m->saved, n->saved), at(m->saved, n->saved + c), y));
    TDM_TRY(download_pair(m->saved, n->saved, c, values));
    room.mine[0] = (double)(m->batch * s.spatial);
    for (size_t k = 0; k < c; k++) {
        double invstd = values[c + k];
        room.mine[1 + k] = values[k];
        room.mine[1 + c + k] = 1.0 / (invstd * invstd) - s.eps; /* this share's variance */
    }
    TDM_TRY(gather_channel_values(m, c, &room));
    combine_statistics(room.all, m->comm->size, c, mean, var, &count);
    double momentum = s.momentum;
    for (size_t k = 0; k < c; k++) {
        values[k] = (float)mean[k];
        values[c + k] = (float)(1.0 / sqrt(var[k] + s.eps));
        running[k] = (float)((1.0 - momentum) * running[k] + momentum * mean[k]);
        running[c + k] =
            (float)((1.0 - momentum) * running[c + k] + momentum * var[k] * count / (count - 1.0));
    }
    TDM_TRY(upload_pair(m->saved, n->saved, c, values));
    TDM_TRY(upload_pair(m->stats, n->stats, c, running));
    for (size_t k = 0; k < c; k++) { /* the mean and variance the eval op normalises with */
        values[k] = (float)mean[k];
        values[c + k] = (float)var[k];
    }
    TDM_TRY(upload_pair(m->shared, elements, c, values));
    return tdm_batchnorm_add_forward_eval(m->backend, &s, x, residual, at(m->params, n->weight),
                                          at(m->params, n->bias), at(m->shared, elements),
                                          at(m->shared, elements + c), y);
}

/* The op's dx used this share's sums of dy and dy * xhat (in dbeta and
 * dgamma: they were zero before it); the whole batch's differ by an affine
 * function of xhat per channel, added here:
 *   dx += gamma invstd ((S1 / n_p - G1 / n) + xhat (S2 / n_p - G2 / n)). */
static tdm_status correct_norm_gradient(tdm_model *m, const node *n, tdm_view x, tdm_view dx)
{
    tdm_batchnorm_shape s = norm_shape(n, m->batch);
    s.relu = false;
    size_t c = n->in.channels, elements = m->batch * tdm_nn_volume(n->in);
    shared_room room = room_of(m, c);
    float *values = room.floats, *saved = values + 2 * c, *gamma = saved + 2 * c;
    float *affine = gamma + c;
    double *all = room.all, *total = room.first; /* first and second: G2, then G1 */
    TDM_TRY(tdm_buffer_download(m->grads, n->weight * sizeof(float), values,
                                c * sizeof(float))); /* S2 */
    TDM_TRY(tdm_buffer_download(m->grads, n->bias * sizeof(float), values + c,
                                c * sizeof(float))); /* S1 */
    TDM_TRY(download_pair(m->saved, n->saved, c, saved));
    TDM_TRY(tdm_buffer_download(m->params, n->weight * sizeof(float), gamma, c * sizeof(float)));
    double count = (double)(m->batch * s.spatial), all_count = 0.0;
    room.mine[0] = count;
    for (size_t k = 0; k < 2 * c; k++)
        room.mine[1 + k] = values[k];
    TDM_TRY(gather_channel_values(m, c, &room));
    for (size_t k = 0; k < 2 * c; k++)
        total[k] = 0.0;
    for (int r = 0; r < m->comm->size; r++) {
        all_count += all[r * (1 + 2 * c)];
        for (size_t k = 0; k < 2 * c; k++)
            total[k] += all[r * (1 + 2 * c) + 1 + k];
    }
    for (size_t k = 0; k < c; k++) {
        double scale = (double)gamma[k] * saved[c + k], invstd = saved[c + k];
        affine[k] = (float)(scale * (values[k] / count - total[k] / all_count)); /* xhat */
        affine[c + k] = (float)(scale * (values[c + k] / count - total[c + k] / all_count)); /* 1 */
        values[k] = saved[k];                                     /* mean */
        values[c + k] = (float)(1.0 / (invstd * invstd) - s.eps); /* var: its invstd */
    }
    TDM_TRY(upload_pair(m->shared, elements, c, values));
    TDM_TRY(upload_pair(m->shared, elements + 2 * c, c, affine));
    tdm_view correction = at(m->shared, 0);
    TDM_TRY(tdm_batchnorm_forward_eval(m->backend, &s, x, at(m->shared, elements + 2 * c),
                                       at(m->shared, elements + 3 * c), at(m->shared, elements),
                                       at(m->shared, elements + c), correction));
    return tdm_axpy(m->backend, elements, 1.0f, correction, dx);
}

/* A max-pool its batch norm runs in training (not in a distributed model,
 * whose batch norms run apart, their statistics shared first). */
static bool pooled_by_norm(const tdm_model *m, const node *pool)
{
    return pool->by_norm && !m->comm;
}

/* The max-pool a batch norm runs in training, or NULL. */
static const node *norm_pool(const tdm_model *m, const node *norm)
{
    const node *pool = norm->max_pool >= 0 ? &m->nodes[norm->max_pool] : NULL;
    return pool && pooled_by_norm(m, pool) ? pool : NULL;
}

/* A batch norm's forward; one that writes its add's sum (fuse_norm_adds)
 * writes it where the add would, with the add's ReLU. */
static tdm_status forward_norm(tdm_model *m, const node *n, tdm_view x, bool train)
{
    tdm_batchnorm_shape s = norm_shape(n, m->batch);
    size_t c = n->in.channels;
    const node *add = n->residual_add >= 0 ? &m->nodes[n->residual_add] : NULL;
    tdm_view gamma = at(m->params, n->weight), beta = at(m->params, n->bias);
    tdm_view mean = at(m->stats, n->stats), var = at(m->stats, n->stats + c);
    tdm_view y = at(m->activations, (add ? add : n)->activation), residual = {0};
    if (add) {
        int self = (int)(n - m->nodes);
        int other = add->inputs[0] == self ? add->inputs[1] : add->inputs[0];
        residual = activation_of(m, other);
        s.relu = add->relu_after;
    }
    if (!train)
        return tdm_batchnorm_add_forward_eval(m->backend, &s, x, residual, gamma, beta, mean, var,
                                              y);
    if (m->comm)
        return forward_norm_shared(m, n, &s, x, residual, y);
    tdm_view save_mean = at(m->saved, n->saved), save_invstd = at(m->saved, n->saved + c);
    const node *pool = norm_pool(m, n);
    if (!pool)
        return tdm_batchnorm_add_forward_train(m->backend, &s, x, residual, gamma, beta, mean, var,
                                               save_mean, save_invstd, y);
    tdm_pool2d_shape p = pool_shape(pool, m->batch);
    return tdm_batchnorm_pool_forward_train(
        m->backend, &s, &p, x, gamma, beta, mean, var, save_mean, save_invstd, y,
        at(m->activations, pool->activation), at(m->saved, pool->saved));
}

static tdm_status forward_node(tdm_model *m, const node *n, bool train)
{
    tdm_backend *b = m->backend;
    tdm_view x = activation_of(m, n->inputs[0]), y = at(m->activations, n->activation);
    size_t batch = m->batch, count = batch * tdm_nn_volume(n->out);
    switch (n->kind) {
    case NODE_CONV: {
        tdm_conv2d_shape s = conv_shape(n, batch);
        tdm_view w = at(m->params, n->weight), bias = optional_bias(n, m->params);
        if (n->dense_floats)
            return tdm_conv2d_forward_dense(b, &s, x, at(m->dense, n->dense), bias, y);
        if (n->col_floats && train) /* kept for the weight gradient */
            return tdm_conv2d_forward_col(b, &s, x, w, bias, y, at(m->cols, n->col));
        return tdm_conv2d_forward(b, &s, x, w, bias, y);
    }
    case NODE_NORM: return forward_norm(m, n, x, train);
    case NODE_RELU: return n->fused ? TDM_OK : tdm_relu(b, count, x, y);
    case NODE_SIGMOID: return tdm_sigmoid(b, count, x, y);
    case NODE_LEAKY_RELU: return tdm_leaky_relu(b, count, n->layer.slope, x, y);
    case NODE_MAXPOOL: {
        if (train && pooled_by_norm(m, n))
            return TDM_OK;
        tdm_pool2d_shape s = pool_shape(n, batch);
        return tdm_maxpool2d_forward(b, &s, x, y, at(m->saved, n->saved));
    }
    case NODE_AVGPOOL:
        if (n->pooled) /* by its linear layer */
            return TDM_OK;
        return tdm_global_avgpool_forward(b, batch * n->in.channels, n->in.height * n->in.width, x,
                                          y);
    case NODE_FLATTEN: return TDM_OK;
    case NODE_LINEAR: {
        tdm_linear_shape s = linear_shape(m, n, batch);
        return tdm_linear_forward(b, &s, activation_of(m, linear_reader(m, n)->inputs[0]),
                                  at(m->params, n->weight), optional_bias(n, m->params), y);
    }
    case NODE_ADD:
        if (n->summed_by_norm)
            return TDM_OK;
        return (n->relu_after ? tdm_add_relu : tdm_add)(b, count, x, activation_of(m, n->inputs[1]),
                                                        y);
    }
    return TDM_OK;
}

/* The dense matrices, if the parameters changed since they were built. */
static tdm_status build_dense(tdm_model *m)
{
    if (m->dense_version == m->params_version)
        return TDM_OK;
    for (size_t i = 0; i < m->node_count; i++) {
        const node *n = &m->nodes[i];
        if (!n->dense_floats)
            continue;
        tdm_conv2d_shape s = conv_shape(n, m->max_batch);
        TDM_TRY(tdm_conv2d_dense_weight(m->backend, &s, at(m->params, n->weight),
                                        at(m->dense, n->dense)));
    }
    m->dense_version = m->params_version;
    return TDM_OK;
}

tdm_status tdm_model_forward(tdm_model *m, tdm_view x, size_t batch, bool train)
{
    if (batch == 0 || batch > m->max_batch)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "model forward: batch %zu outside 1..%zu (the model's max_batch)", batch,
                        m->max_batch);
    size_t needed = batch * tdm_nn_volume(m->input_shape);
    if (!x.buffer || tdm_buffer_size(x.buffer) / sizeof(float) < x.offset ||
        tdm_buffer_size(x.buffer) / sizeof(float) - x.offset < needed)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "model forward: the input must hold %zu floats (batch %zu of %zux%zux%zu)",
                        needed, batch, m->input_shape.channels, m->input_shape.height,
                        m->input_shape.width);
    TDM_TRY(build_dense(m));
    m->input = x;
    m->batch = batch;
    m->trained_forward = false;
    for (size_t i = 0; i < m->node_count; i++)
        TDM_TRY(forward_node(m, &m->nodes[i], train));
    m->trained_forward = train;
    return TDM_OK;
}

tdm_view tdm_model_output(const tdm_model *m)
{
    return activation_of(m, last_node(m));
}

tdm_view tdm_model_output_gradient(const tdm_model *m)
{
    return at(m->gradients, m->nodes[gradient_owner(m, last_node(m))].gradient);
}

/* ---------- backward ---------- */

/* Where a node's input gradient goes: straight into the input's gradient,
 * or into scratch when it must be added there afterwards. */
static tdm_view input_gradient_target(const tdm_model *m, const node *n, int slot)
{
    int owner = gradient_owner(m, n->inputs[slot]);
    return n->accumulate[slot] ? at(m->scratch, 0) : at(m->gradients, m->nodes[owner].gradient);
}

static tdm_status finish_input_gradient(tdm_model *m, const node *n, int slot)
{
    if (!n->accumulate[slot] && n->add_after[slot] < 0)
        return TDM_OK;
    tdm_view sum = at(m->gradients, m->nodes[gradient_owner(m, n->inputs[slot])].gradient);
    tdm_view other = n->accumulate[slot] ? at(m->scratch, 0)
                                         : at(m->gradients, m->nodes[n->add_after[slot]].gradient);
    return tdm_add(m->backend, m->batch * tdm_nn_volume(n->in), sum, other, sum);
}

static bool needs_input_gradient(const tdm_model *m, const node *n, int slot)
{
    return gradient_owner(m, n->inputs[slot]) != MODEL_INPUT;
}

/* dx for a conv with a kept col or a dense matrix T, into `dx`. */
static tdm_status backward_conv_input(tdm_model *m, const node *n, tdm_view dy, tdm_view dx)
{
    tdm_conv2d_shape s = conv_shape(n, m->batch);
    if (!n->dense_floats)
        return tdm_conv2d_backward_input(m->backend, &s, at(m->params, n->weight), dy, dx);
    tdm_view dense = at(m->dense, n->dense);
    return n->adds_in_place
               ? tdm_conv2d_backward_input_dense_accumulate(m->backend, &s, dense, dy, dx)
               : tdm_conv2d_backward_input_dense(m->backend, &s, dense, dy, dx);
}

/* A conv's gradients: with the col its training forward kept, or with its
 * T, one pass at a time; else both in one call (one launch where it runs
 * as direct kernels, adding dx in place where the plan says so). */
static tdm_status backward_conv(tdm_model *m, const node *n, tdm_view x, tdm_view dy)
{
    tdm_conv2d_shape s = conv_shape(n, m->batch);
    bool input = needs_input_gradient(m, n, 0) && !n->gradient_shared[0];
    tdm_view dx = input ? input_gradient_target(m, n, 0) : (tdm_view){0};
    tdm_view w = at(m->params, n->weight), dw = at(m->grads, n->weight),
             dbias = optional_bias(n, m->grads);
    if (!n->col_floats && !n->dense_floats) {
        TDM_TRY(n->adds_in_place && input
                    ? tdm_conv2d_backward_accumulate(m->backend, &s, x, w, dy, dx, dw, dbias)
                    : tdm_conv2d_backward(m->backend, &s, x, w, dy, dx, dw, dbias));
    } else {
        TDM_TRY(n->col_floats ? tdm_conv2d_backward_weight_col(m->backend, &s, at(m->cols, n->col),
                                                               dy, dw, dbias)
                              : tdm_conv2d_backward_weight(m->backend, &s, x, dy, dw, dbias));
        if (input)
            TDM_TRY(backward_conv_input(m, n, dy, dx));
    }
    return input ? finish_input_gradient(m, n, 0) : TDM_OK;
}

/* A linear layer's gradients in one call: one launch for a small layer.
 * With its pool, the gradient goes to the pool's input, as the pool's own
 * backward would send it. */
static tdm_status backward_linear(tdm_model *m, const node *n, tdm_view dy)
{
    tdm_linear_shape s = linear_shape(m, n, m->batch);
    const node *reader = linear_reader(m, n);
    bool input = needs_input_gradient(m, reader, 0);
    TDM_TRY(tdm_linear_backward(m->backend, &s, activation_of(m, reader->inputs[0]),
                                at(m->params, n->weight), dy,
                                input ? input_gradient_target(m, reader, 0) : (tdm_view){0},
                                at(m->grads, n->weight), optional_bias(n, m->grads)));
    return input ? finish_input_gradient(m, reader, 0) : TDM_OK;
}

/* dx for one node, into `dx`. */
static tdm_status backward_input(tdm_model *m, const node *n, tdm_view x, tdm_view dy, tdm_view dx)
{
    tdm_backend *b = m->backend;
    size_t batch = m->batch, count = batch * tdm_nn_volume(n->in);
    switch (n->kind) {
    case NODE_RELU: return tdm_relu_backward(b, count, x, dy, dx);
    case NODE_LEAKY_RELU: return tdm_leaky_relu_backward(b, count, n->layer.slope, x, dy, dx);
    case NODE_SIGMOID:
        return tdm_sigmoid_backward(b, count, at(m->activations, n->activation), dy, dx);
    case NODE_MAXPOOL: {
        tdm_pool2d_shape s = pool_shape(n, batch);
        return tdm_maxpool2d_backward(b, &s, at(m->saved, n->saved), dy, dx);
    }
    case NODE_AVGPOOL:
        return tdm_global_avgpool_backward(b, batch * n->in.channels, n->in.height * n->in.width,
                                           dy, dx);
    case NODE_ADD: return tdm_copy(b, dy, dx, count); /* dy passes to both inputs */
    case NODE_CONV:                                   /* backward_conv */
    case NODE_LINEAR:                                 /* backward_linear */
    case NODE_NORM:                                   /* backward_norm */
    case NODE_FLATTEN: /* no work */ break;
    }
    return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "model: node kind %d has no input gradient here",
                    (int)n->kind);
}

static tdm_status backward_norm(tdm_model *m, const node *n, tdm_view x, tdm_view dy)
{
    tdm_batchnorm_shape s = norm_shape(n, m->batch);
    size_t c = n->in.channels;
    /* Its dx is needed even for the first layer: dgamma and dbeta come with it. */
    tdm_view dx =
        needs_input_gradient(m, n, 0) ? input_gradient_target(m, n, 0) : at(m->scratch, 0);
    tdm_view y = at(m->activations, n->activation), gamma = at(m->params, n->weight),
             save_mean = at(m->saved, n->saved), save_invstd = at(m->saved, n->saved + c),
             dgamma = at(m->grads, n->weight), dbeta = at(m->grads, n->bias);
    const node *pool = norm_pool(m, n);
    if (pool) { /* dy from the pool's gradient first */
        tdm_pool2d_shape p = pool_shape(pool, m->batch);
        TDM_TRY(tdm_batchnorm_pool_backward(m->backend, &s, &p, x, at(m->gradients, pool->gradient),
                                            at(m->saved, pool->saved), y, gamma, save_mean,
                                            save_invstd, dy, dx, dgamma, dbeta));
    } else {
        TDM_TRY(tdm_batchnorm_backward(m->backend, &s, x, dy, y, gamma, save_mean, save_invstd, dx,
                                       dgamma, dbeta));
    }
    if (m->comm && needs_input_gradient(m, n, 0))
        TDM_TRY(correct_norm_gradient(m, n, x, dx));
    return needs_input_gradient(m, n, 0) ? finish_input_gradient(m, n, 0) : TDM_OK;
}

static tdm_status backward_node(tdm_model *m, const node *n)
{
    if (n->kind == NODE_FLATTEN || n->pooled || n->masked_by_reader ||
        (n->fused && m->nodes[n->inputs[0]].kind == NODE_NORM) || pooled_by_norm(m, n))
        return TDM_OK; /* a ReLU fused into a batch norm: masked in its backward; a pool, or a
                          ReLU its linear reader masks: that layer's; a max-pool its batch
                          norm's */
    tdm_view x = activation_of(m, n->inputs[0]), dy = at(m->gradients, n->gradient);
    if (n->kind == NODE_NORM)
        return backward_norm(m, n, x, dy);
    if (n->kind == NODE_LINEAR)
        return backward_linear(m, n, dy);
    if (n->kind == NODE_CONV)
        return backward_conv(m, n, x, dy);
    for (int slot = 0; slot < (n->kind == NODE_ADD ? 2 : 1); slot++) {
        if (!needs_input_gradient(m, n, slot) || n->gradient_shared[slot])
            continue;
        TDM_TRY(backward_input(m, n, x, dy, input_gradient_target(m, n, slot)));
        TDM_TRY(finish_input_gradient(m, n, slot));
    }
    return TDM_OK;
}

tdm_status tdm_model_backward(tdm_model *m, tdm_view doutput)
{
    if (!m->trained_forward)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "model backward: needs a forward pass in training mode first");
    TDM_TRY(build_dense(m)); /* the parameters may have changed since the forward */
    m->grads_zero = false;
    const node *last = &m->nodes[last_node(m)];
    size_t count = m->batch * tdm_nn_volume(last->out);
    tdm_view gradient = tdm_model_output_gradient(m);
    if (doutput.buffer != gradient.buffer || doutput.offset != gradient.offset)
        TDM_TRY(tdm_copy(m->backend, doutput, gradient, count));
    for (int i = last_node(m); i >= 0; i--)
        TDM_TRY(backward_node(m, &m->nodes[i]));
    return TDM_OK;
}

tdm_status tdm_model_zero_grad(tdm_model *m)
{
    if (m->grads_zero)
        return TDM_OK;
    TDM_TRY(tdm_fill(m->backend, at(m->grads, 0), m->param_count, 0.0f));
    m->grads_zero = true;
    return TDM_OK;
}

static tdm_status sgd_step(tdm_model *m, const tdm_sgd_options *options, bool zero_grad)
{
    if (options->momentum != 0.0f && !m->velocity)
        TDM_TRY(alloc_floats(m->backend, m->param_count, &m->velocity));
    bool first = options->momentum != 0.0f && !m->momentum_started;
    tdm_view w = at(m->params, 0), g = at(m->grads, 0),
             v = m->velocity ? at(m->velocity, 0) : (tdm_view){0};
    m->params_version++;
    TDM_TRY(zero_grad ? tdm_sgd_step_zero_grad(m->backend, options, first, m->param_count, w, g, v)
                      : tdm_sgd_step(m->backend, options, first, m->param_count, w, g, v));
    m->momentum_started = m->momentum_started || options->momentum != 0.0f;
    m->grads_zero = m->grads_zero || zero_grad;
    return TDM_OK;
}

tdm_status tdm_model_sgd_step(tdm_model *m, const tdm_sgd_options *options)
{
    return sgd_step(m, options, false);
}

tdm_status tdm_model_sgd_step_zero_grad(tdm_model *m, const tdm_sgd_options *options)
{
    return sgd_step(m, options, true);
}

/* ---------- host access ---------- */

size_t tdm_model_parameter_count(const tdm_model *m)
{
    return m->param_count;
}

size_t tdm_model_statistics_count(const tdm_model *m)
{
    return m->stats_count;
}

static tdm_status download(const tdm_buffer *buffer, size_t count, float *out)
{
    return count ? tdm_buffer_download(buffer, 0, out, count * sizeof(float)) : TDM_OK;
}

static tdm_status upload(tdm_buffer *buffer, size_t count, const float *values)
{
    return count ? tdm_buffer_upload(buffer, 0, values, count * sizeof(float)) : TDM_OK;
}

tdm_status tdm_model_get_parameters(const tdm_model *m, float *out)
{
    return download(m->params, m->param_count, out);
}

tdm_status tdm_model_set_parameters(tdm_model *m, const float *values)
{
    m->params_version++;
    return upload(m->params, m->param_count, values);
}

tdm_status tdm_model_get_gradients(const tdm_model *m, float *out)
{
    return download(m->grads, m->param_count, out);
}

tdm_status tdm_model_share_batches(tdm_model *m, tdm_comm *comm)
{
    tdm_buffer_free(m->shared);
    free(m->host);
    m->shared = NULL;
    m->host = NULL;
    m->comm = comm && comm->size > 1 ? comm : NULL;
    size_t elements = 0, channels = 0;
    for (size_t i = 0; m->comm && i < m->node_count; i++) {
        const node *n = &m->nodes[i];
        size_t volume = m->max_batch * tdm_nn_volume(n->in);
        if (n->kind == NODE_NORM) {
            elements = volume > elements ? volume : elements;
            channels = n->in.channels > channels ? n->in.channels : channels;
        }
    }
    if (!m->comm || channels == 0)
        return TDM_OK;
    m->host = malloc(shared_room_doubles(channels, comm->size) * sizeof(double));
    if (!m->host)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "model: out of host memory");
    return alloc_floats(m->backend, elements + 4 * channels, &m->shared);
}

tdm_status tdm_model_sum_gradients(tdm_model *m)
{
    if (!m->comm || m->param_count == 0)
        return TDM_OK;
    float *grads = malloc(m->param_count * sizeof(float));
    if (!grads)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "model: out of host memory");
    tdm_status status = download(m->grads, m->param_count, grads);
    if (status == TDM_OK)
        status = tdm_comm_sum_floats(m->comm, grads, m->param_count);
    if (status == TDM_OK)
        status = upload(m->grads, m->param_count, grads);
    free(grads);
    return status;
}

tdm_status tdm_model_get_statistics(const tdm_model *m, float *out)
{
    return download(m->stats, m->stats_count, out);
}

/* Running statistics from a file are checked: a negative or non-finite
 * variance would make every later evaluation NaN. */
static tdm_status check_statistics(const tdm_model *m, const float *values)
{
    for (size_t i = 0; i < m->node_count; i++) {
        const node *n = &m->nodes[i];
        for (size_t c = 0; n->kind == NODE_NORM && c < n->in.channels; c++) {
            float mean = values[n->stats + c], var = values[n->stats + n->in.channels + c];
            if (!isfinite(mean) || !isfinite(var) || var < 0.0f)
                return TDM_FAIL(TDM_ERR_DATA,
                                "running statistics of layer %zu, channel %zu: mean %g, variance "
                                "%g (a variance must be finite and >= 0)",
                                i + 1, c, (double)mean, (double)var);
        }
    }
    return TDM_OK;
}

tdm_status tdm_model_check_training_batch(const tdm_model *m, size_t batch)
{
    for (size_t i = 0; i < m->node_count; i++) {
        const node *n = &m->nodes[i];
        if (n->kind == NODE_NORM && batch * n->in.height * n->in.width < 2)
            return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                            "batch norm (layer %zu) would see one value per channel in a batch "
                            "of %zu on %zux%zu maps: training needs more than one",
                            i + 1, batch, n->in.height, n->in.width);
    }
    return TDM_OK;
}

tdm_status tdm_model_set_statistics(tdm_model *m, const float *values)
{
    TDM_TRY(check_statistics(m, values));
    return upload(m->stats, m->stats_count, values);
}

bool tdm_model_has_momentum(const tdm_model *m)
{
    return m->momentum_started;
}

tdm_status tdm_model_get_momentum(const tdm_model *m, float *out)
{
    if (!m->momentum_started)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "model: no SGD step with momentum has run");
    return download(m->velocity, m->param_count, out);
}

tdm_status tdm_model_set_momentum(tdm_model *m, const float *values)
{
    if (!m->velocity)
        TDM_TRY(alloc_floats(m->backend, m->param_count, &m->velocity));
    TDM_TRY(upload(m->velocity, m->param_count, values));
    m->momentum_started = true;
    return TDM_OK;
}

/* Model descriptions: the ResNet of the source, layers parsed from text, and
 * shape inference with parameter and FLOP counts (what `tandem summary`
 * prints). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tandem/config.h"
#include "core/error.h"
#include "nn/nn_internal.h"

const char *tdm_layer_kind_name(tdm_layer_kind kind)
{
    static const char *const names[TDM_LAYER_KIND_COUNT] = {
        [TDM_LAYER_CONV2D] = "conv2d",       [TDM_LAYER_BATCHNORM2D] = "batchnorm2d",
        [TDM_LAYER_RELU] = "relu",           [TDM_LAYER_SIGMOID] = "sigmoid",
        [TDM_LAYER_MAXPOOL2D] = "maxpool2d", [TDM_LAYER_GLOBAL_AVGPOOL] = "avgpool",
        [TDM_LAYER_FLATTEN] = "flatten",     [TDM_LAYER_LINEAR] = "linear",
        [TDM_LAYER_BLOCK] = "block",         [TDM_LAYER_LEAKY_RELU] = "leaky_relu",
    };
    return (unsigned)kind < TDM_LAYER_KIND_COUNT ? names[kind] : "unknown";
}

void tdm_model_spec_init(tdm_model_spec *spec)
{
    memset(spec, 0, sizeof *spec);
}

static tdm_status append(tdm_model_spec *spec, tdm_layer_spec layer)
{
    if (spec->layer_count == TDM_MAX_LAYERS)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "a model holds at most %d layers",
                        TDM_MAX_LAYERS);
    spec->layers[spec->layer_count++] = layer;
    return TDM_OK;
}

tdm_status tdm_model_spec_resnet(size_t channels, tdm_sample_shape input, size_t classes,
                                 tdm_model_spec *out)
{
    if (channels == 0 || classes == 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT,
                        "resnet: channels and classes must be > 0 (got %zu and %zu)", channels,
                        classes);
    tdm_model_spec_init(out);
    out->input = input;
    const tdm_layer_spec layers[] = {
        {.kind = TDM_LAYER_CONV2D,
         .out_channels = channels,
         .kernel = 3,
         .stride = 2,
         .padding = 1},
        {.kind = TDM_LAYER_BATCHNORM2D},
        {.kind = TDM_LAYER_RELU},
        {.kind = TDM_LAYER_MAXPOOL2D, .kernel = 2, .stride = 2},
        {.kind = TDM_LAYER_BLOCK, .out_channels = channels, .kernel = 3, .stride = 1, .padding = 1},
        {.kind = TDM_LAYER_GLOBAL_AVGPOOL},
        {.kind = TDM_LAYER_FLATTEN},
        {.kind = TDM_LAYER_LINEAR, .out_channels = classes, .bias = true},
    };
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
        TDM_TRY(append(out, layers[i]));
    return TDM_OK;
}

/* ---------- layers from text ---------- */

static tdm_status parse_kind(const char *word, tdm_layer_kind *out)
{
    for (int kind = 0; kind < TDM_LAYER_KIND_COUNT; kind++) {
        if (strcmp(word, tdm_layer_kind_name((tdm_layer_kind)kind)) == 0) {
            *out = (tdm_layer_kind)kind;
            return TDM_OK;
        }
    }
    return TDM_FAIL(TDM_ERR_CONFIG,
                    "unknown layer '%s' (known: conv2d batchnorm2d relu leaky_relu sigmoid "
                    "maxpool2d avgpool flatten linear block)",
                    word);
}

/* The defaults of the matching torch.nn module. */
static tdm_layer_spec layer_defaults(tdm_layer_kind kind)
{
    tdm_layer_spec layer = {.kind = kind, .stride = 1, .bias = true};
    if (kind == TDM_LAYER_MAXPOOL2D)
        layer.stride = 0; /* = kernel */
    if (kind == TDM_LAYER_BLOCK)
        layer = (tdm_layer_spec){.kind = kind, .kernel = 3, .stride = 1, .padding = 1};
    if (kind == TDM_LAYER_LEAKY_RELU)
        layer.slope = 0.01f;
    return layer;
}

static tdm_status set_layer_option(tdm_layer_spec *layer, const char *key, const char *value)
{
    if (strcmp(key, "out") == 0)
        return tdm_parse_size(key, value, 1, 1u << 20, &layer->out_channels);
    if (strcmp(key, "kernel") == 0)
        return tdm_parse_size(key, value, 1, 1u << 20, &layer->kernel);
    if (strcmp(key, "stride") == 0)
        return tdm_parse_size(key, value, 1, 1u << 20, &layer->stride);
    if (strcmp(key, "padding") == 0)
        return tdm_parse_size(key, value, 0, 1u << 20, &layer->padding);
    if (strcmp(key, "bias") == 0)
        return tdm_parse_bool(key, value, &layer->bias);
    if (strcmp(key, "slope") == 0)
        return tdm_parse_float(key, value, -1e6, 1e6, &layer->slope);
    return TDM_FAIL(TDM_ERR_CONFIG,
                    "unknown layer option '%s' (known: out kernel stride padding bias slope)", key);
}

tdm_status tdm_model_spec_add_layer(tdm_model_spec *spec, const char *text)
{
    char copy[256];
    if (strlen(text) >= sizeof copy)
        return TDM_FAIL(TDM_ERR_CONFIG, "layer description is too long");
    strcpy(copy, text);
    char *save = NULL, *word = strtok_r(copy, " \t", &save);
    if (!word)
        return TDM_FAIL(TDM_ERR_CONFIG, "empty layer description");
    tdm_layer_kind kind = TDM_LAYER_CONV2D;
    TDM_TRY(parse_kind(word, &kind));
    tdm_layer_spec layer = layer_defaults(kind);
    while ((word = strtok_r(NULL, " \t", &save)) != NULL) {
        char *equals = strchr(word, '=');
        if (!equals)
            return TDM_FAIL(TDM_ERR_CONFIG, "layer option '%s' is not key=value", word);
        *equals = '\0';
        TDM_TRY(set_layer_option(&layer, word, equals + 1));
    }
    return append(spec, layer);
}

static tdm_status parse_shape(const char *value, tdm_sample_shape *out)
{
    unsigned long c = 0, h = 0, w = 0;
    char extra;
    if (sscanf(value, "%lux%lux%lu%c", &c, &h, &w, &extra) != 3 || c == 0 || h == 0 || w == 0 ||
        c > 1u << 20 || h > 1u << 20 || w > 1u << 20)
        return TDM_FAIL(TDM_ERR_CONFIG, "input must be CxHxW with positive sizes, got '%s'", value);
    *out = (tdm_sample_shape){c, h, w};
    return TDM_OK;
}

tdm_status tdm_model_spec_set(void *target, const char *key, const char *value)
{
    tdm_model_spec *spec = target;
    if (strcmp(key, "input") == 0)
        return parse_shape(value, &spec->input);
    if (strcmp(key, "layer") == 0)
        return tdm_model_spec_add_layer(spec, value);
    if (strcmp(key, "resnet") == 0) {
        size_t channels = 0;
        TDM_TRY(tdm_parse_size(key, value, 1, 1u << 16, &channels));
        tdm_sample_shape input = spec->input;
        TDM_TRY(tdm_model_spec_resnet(channels, input, 10, spec));
        return TDM_OK;
    }
    return TDM_FAIL(TDM_ERR_CONFIG, "unknown key '%s' (known: input layer resnet)", key);
}

/* ---------- shape inference ---------- */

static tdm_status fail_layer(size_t index, const tdm_layer_spec *layer, tdm_sample_shape in,
                             const char *why)
{
    return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "layer %zu (%s) on a %zux%zux%zu input: %s",
                    index + 1, tdm_layer_kind_name(layer->kind), in.channels, in.height, in.width,
                    why);
}

/* A layer's output values per sample, its parameters and a convolution's
 * taps stay below 2^31, so their products (FLOPs, a batch's activations)
 * fit 64 bits; past that a model wrapped to sizes of 0 and failed only in
 * training. */
static const size_t MOST_VALUES = (size_t)1 << 31;

/* a * b * c, false when it passes MOST_VALUES (or would overflow). */
static bool small_product(size_t a, size_t b, size_t c, size_t *out)
{
    size_t factors[3] = {a, b, c}, product = 1;
    for (int i = 0; i < 3; i++) {
        if (factors[i] != 0 && product > MOST_VALUES / factors[i])
            return false;
        product *= factors[i];
    }
    *out = product;
    return product <= MOST_VALUES;
}

static tdm_status infer_plain(size_t index, const tdm_layer_spec *layer, tdm_sample_shape in,
                              tdm_layer_info *info);

/* One plain layer (not a Block): its output, parameters and FLOPs. */
tdm_status tdm_nn_infer_layer(size_t index, const tdm_layer_spec *layer, tdm_sample_shape in,
                              tdm_layer_info *info)
{
    size_t taps = 0, volume = 0, weights = 0;
    if (!small_product(in.channels, layer->kernel, layer->kernel, &taps) ||
        !small_product(in.channels, in.height, in.width, &volume) ||
        !small_product(layer->out_channels, taps ? taps : in.channels, 1, &weights))
        return fail_layer(index, layer, in, "its sizes pass 2^31 values per sample");
    TDM_TRY(infer_plain(index, layer, in, info));
    const tdm_sample_shape *out = &info->output;
    if (!small_product(out->channels, out->height, out->width, &volume) ||
        info->parameters > MOST_VALUES)
        return fail_layer(index, layer, in, "its output or parameters pass 2^31 values");
    return TDM_OK;
}

static tdm_status infer_plain(size_t index, const tdm_layer_spec *layer, tdm_sample_shape in,
                              tdm_layer_info *info)
{
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s", tdm_layer_kind_name(layer->kind));
    info->output = in;
    switch (layer->kind) {
    case TDM_LAYER_CONV2D: {
        if (layer->out_channels == 0 || layer->kernel == 0 || layer->stride == 0)
            return fail_layer(index, layer, in, "out, kernel and stride must be > 0");
        size_t oh = tdm_window_count(in.height, layer->padding, layer->kernel, layer->stride);
        size_t ow = tdm_window_count(in.width, layer->padding, layer->kernel, layer->stride);
        if (oh == 0 || ow == 0)
            return fail_layer(index, layer, in, "the kernel is larger than the padded input");
        size_t taps = in.channels * layer->kernel * layer->kernel;
        info->output = (tdm_sample_shape){layer->out_channels, oh, ow};
        info->parameters = layer->out_channels * taps + (layer->bias ? layer->out_channels : 0);
        info->flops = 2ull * taps * tdm_nn_volume(info->output);
        snprintf(info->name, sizeof info->name, "conv2d %zux%zu/%zu pad %zu%s", layer->kernel,
                 layer->kernel, layer->stride, layer->padding, layer->bias ? "" : " no bias");
        return TDM_OK;
    }
    case TDM_LAYER_BATCHNORM2D:
        info->parameters = 2 * in.channels;
        info->flops = 2ull * tdm_nn_volume(in); /* one multiply-add per value once folded */
        return TDM_OK;
    case TDM_LAYER_RELU:
    case TDM_LAYER_SIGMOID: info->flops = tdm_nn_volume(in); return TDM_OK;
    case TDM_LAYER_LEAKY_RELU:
        info->flops = tdm_nn_volume(in);
        snprintf(info->name, sizeof info->name, "leaky_relu %g", (double)layer->slope);
        return TDM_OK;
    case TDM_LAYER_MAXPOOL2D: {
        size_t stride = layer->stride ? layer->stride : layer->kernel;
        if (layer->kernel == 0)
            return fail_layer(index, layer, in, "kernel must be > 0");
        size_t oh = tdm_window_count(in.height, 0, layer->kernel, stride);
        size_t ow = tdm_window_count(in.width, 0, layer->kernel, stride);
        if (oh == 0 || ow == 0)
            return fail_layer(index, layer, in, "the window is larger than the input");
        info->output = (tdm_sample_shape){in.channels, oh, ow};
        info->flops = (uint64_t)tdm_nn_volume(info->output) * layer->kernel * layer->kernel;
        snprintf(info->name, sizeof info->name, "maxpool2d %zux%zu/%zu", layer->kernel,
                 layer->kernel, stride);
        return TDM_OK;
    }
    case TDM_LAYER_GLOBAL_AVGPOOL:
        info->output = (tdm_sample_shape){in.channels, 1, 1};
        info->flops = tdm_nn_volume(in);
        snprintf(info->name, sizeof info->name, "avgpool (global)");
        return TDM_OK;
    case TDM_LAYER_FLATTEN:
        info->output = (tdm_sample_shape){tdm_nn_volume(in), 1, 1};
        return TDM_OK;
    case TDM_LAYER_LINEAR:
        if (in.height != 1 || in.width != 1)
            return fail_layer(index, layer, in, "linear needs a flat input (add flatten)");
        if (layer->out_channels == 0)
            return fail_layer(index, layer, in, "out must be > 0");
        info->output = (tdm_sample_shape){layer->out_channels, 1, 1};
        info->parameters =
            layer->out_channels * in.channels + (layer->bias ? layer->out_channels : 0);
        info->flops = 2ull * layer->out_channels * in.channels;
        return TDM_OK;
    case TDM_LAYER_BLOCK:
    case TDM_LAYER_KIND_COUNT: break;
    }
    return fail_layer(index, layer, in, "not a plain layer");
}

/* Block(C)'s inner layers, in order; the residual add and final relu follow. */
void tdm_nn_block_layers(size_t channels, tdm_layer_spec inner[TDM_BLOCK_LAYERS])
{
    tdm_layer_spec conv = {
        .kind = TDM_LAYER_CONV2D, .out_channels = channels, .kernel = 3, .stride = 1, .padding = 1};
    tdm_layer_spec norm = {.kind = TDM_LAYER_BATCHNORM2D}, relu = {.kind = TDM_LAYER_RELU};
    tdm_layer_spec layers[TDM_BLOCK_LAYERS] = {conv, norm, relu, conv, norm};
    memcpy(inner, layers, sizeof layers);
}

static tdm_status describe_block(size_t index, const tdm_layer_spec *layer, tdm_sample_shape in,
                                 tdm_layer_info *infos, size_t capacity, size_t *count)
{
    if (layer->out_channels != in.channels)
        return fail_layer(index, layer, in, "a Block keeps its channels: out must equal them");
    if (*count >= capacity)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "too many layers to describe");
    tdm_layer_info *block = &infos[(*count)++];
    memset(block, 0, sizeof *block);
    snprintf(block->name, sizeof block->name, "block(%zu)", layer->out_channels);
    block->output = in;
    block->flops = 2ull * tdm_nn_volume(in); /* the residual add and the final relu */
    tdm_layer_spec inner[TDM_BLOCK_LAYERS];
    tdm_nn_block_layers(layer->out_channels, inner);
    tdm_sample_shape shape = in;
    for (size_t i = 0; i < TDM_BLOCK_LAYERS; i++) {
        if (*count >= capacity)
            return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "too many layers to describe");
        tdm_layer_info *info = &infos[(*count)++];
        TDM_TRY(tdm_nn_infer_layer(index, &inner[i], shape, info));
        info->depth = 1;
        shape = info->output;
        block->parameters += info->parameters;
        block->flops += info->flops;
    }
    return TDM_OK;
}

tdm_status tdm_model_spec_describe(const tdm_model_spec *spec, tdm_layer_info *infos,
                                   size_t capacity, size_t *count)
{
    *count = 0;
    if (tdm_nn_volume(spec->input) == 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "the model's input shape is not set");
    if (spec->layer_count == 0)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "the model has no layers");
    tdm_sample_shape shape = spec->input;
    for (size_t i = 0; i < spec->layer_count; i++) {
        const tdm_layer_spec *layer = &spec->layers[i];
        if (layer->kind == TDM_LAYER_BLOCK) {
            size_t first = *count;
            TDM_TRY(describe_block(i, layer, shape, infos, capacity, count));
            shape = infos[first].output;
            continue;
        }
        if (*count >= capacity)
            return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "too many layers to describe");
        TDM_TRY(tdm_nn_infer_layer(i, layer, shape, &infos[*count]));
        shape = infos[(*count)++].output;
    }
    return TDM_OK;
}

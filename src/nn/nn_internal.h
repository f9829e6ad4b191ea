/* Shared by the model files (model_spec.c, model.c). */
#ifndef TANDEM_NN_INTERNAL_H
#define TANDEM_NN_INTERNAL_H

#include "tandem/model.h"

/* The values of one sample. */
static inline size_t tdm_nn_volume(tdm_sample_shape s)
{
    return s.channels * s.height * s.width;
}

/* conv, batchnorm, relu, conv, batchnorm */
enum { TDM_BLOCK_LAYERS = 5 };

void tdm_nn_block_layers(size_t channels, tdm_layer_spec inner[TDM_BLOCK_LAYERS]);

/* Output shape, parameters and FLOPs of one plain layer (not a Block), or
 * an error naming layer `index` (0-based) when its input does not fit. */
tdm_status tdm_nn_infer_layer(size_t index, const tdm_layer_spec *layer, tdm_sample_shape in,
                              tdm_layer_info *info);

#endif

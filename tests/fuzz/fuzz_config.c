/* libFuzzer target: a config file through every library section's setter
 * ([device] with its device strings, [model] layer specs, [data], [train],
 * [em]). */
#include "fuzz_input.h"
#include "tandem/tandem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tdm_device_config device;
    tdm_model_spec model;
    tdm_data_config data_config;
    tdm_train_options train;
    tdm_em_options em;
    tdm_device_config_init(&device);
    tdm_model_spec_init(&model);
    tdm_data_config_init(&data_config);
    tdm_train_options_init(&train);
    tdm_em_options_init(&em);
    const tdm_config_section sections[] = {
        {"device", tdm_device_config_set, &device},
        {"model", tdm_model_spec_set, &model},
        {"data", tdm_data_config_set, &data_config},
        {"train", tdm_train_options_set, &train},
        {"em", tdm_em_options_set, &em},
    };
    if (tdm_config_parse(fuzz_file(data, size, ".ini"), sections, 5) == TDM_OK) {
        static tdm_layer_info infos[TDM_MAX_LAYERS * 8];
        size_t count = 0;
        (void)tdm_model_spec_describe(&model, infos, TDM_MAX_LAYERS * 8, &count);
    }
    return 0;
}

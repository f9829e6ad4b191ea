#include "cli/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/errors.h"
#include "core/error.h"

enum { DEFAULT_CHANNELS = 4, DIGIT_CLASSES = 10, SECTION_COUNT = 6 };
static const tdm_sample_shape digit_shape = {1, 8, 8};

/* The one table of sections: the config file and the flags both set keys
 * through it. */
static void list_sections(cli_config *config, tdm_config_section sections[SECTION_COUNT])
{
    const tdm_config_section all[SECTION_COUNT] = {
        {"device", tdm_device_config_set, &config->device},
        {"model", tdm_model_spec_set, &config->model},
        {"data", tdm_data_config_set, &config->data},
        {"train", tdm_train_options_set, &config->train},
        {"run", cli_run_config_set, &config->run},
        {"em", cli_em_config_set, &config->em},
    };
    memcpy(sections, all, sizeof all);
}

static void init_sections(cli_config *config)
{
    tdm_device_config_init(&config->device);
    tdm_model_spec_init(&config->model);
    tdm_data_config_init(&config->data);
    tdm_train_options_init(&config->train);
    cli_run_config_init(&config->run);
    cli_em_config_init(&config->em);
}

/* --epochs 10 goes through the [train] setter as `epochs = 10`. */
static tdm_status apply_overrides(const cli_options *options,
                                  const tdm_config_section sections[SECTION_COUNT])
{
    for (size_t i = 0; i < options->override_count; i++) {
        const cli_override *o = &options->overrides[i];
        const char *name = o->section ? o->section : options->command_section;
        const tdm_config_section *section = NULL;
        for (size_t s = 0; s < SECTION_COUNT && !section; s++)
            if (strcmp(sections[s].name, name) == 0)
                section = &sections[s];
        if (!section || section->set(section->target, o->key, o->value) != TDM_OK)
            return cli_error(TDM_ERR_CONFIG, "%s: %s", o->flag,
                             section ? cli_library_error() : "no such config section");
    }
    return TDM_OK;
}

/* TANDEM_DEVICE, then --device; TANDEM_THREADS, then --threads. */
static tdm_status apply_device(const cli_options *options, tdm_device_config *device)
{
    const char *device_variable = getenv("TANDEM_DEVICE");
    if (device_variable && device_variable[0])
        TDM_TRY(tdm_device_config_apply_string(device, device_variable));
    if (options->device_string)
        TDM_TRY(tdm_device_config_apply_string(device, options->device_string));
    const char *threads_variable = getenv("TANDEM_THREADS");
    if (threads_variable && threads_variable[0] &&
        tdm_device_config_set(device, "threads", threads_variable) != TDM_OK)
        return cli_error(TDM_ERR_CONFIG, "TANDEM_THREADS: %s", cli_library_error());
    if (options->threads_string &&
        tdm_device_config_set(device, "threads", options->threads_string) != TDM_OK)
        return cli_error(TDM_ERR_CONFIG, "--threads: %s", cli_library_error());
    return TDM_OK;
}

/* --channels C, or no [model] section: ResNet(C) (C = 4 by default). */
static tdm_status apply_model(const cli_options *options, tdm_model_spec *model)
{
    tdm_sample_shape input = model->input.channels ? model->input : digit_shape;
    if (options->channels || model->layer_count == 0)
        return tdm_model_spec_resnet(options->channels ? options->channels : DEFAULT_CHANNELS,
                                     input, DIGIT_CLASSES, model);
    return TDM_OK;
}

tdm_status cli_load_config(const cli_options *options, cli_config *config)
{
    tdm_config_section sections[SECTION_COUNT];
    init_sections(config);
    list_sections(config, sections);
    if (options->config_path)
        TDM_TRY(tdm_config_parse(options->config_path, sections, SECTION_COUNT));
    TDM_TRY(apply_overrides(options, sections));
    TDM_TRY(apply_device(options, &config->device));
    return apply_model(options, &config->model);
}

tdm_status cli_open_backend(const cli_options *options, const cli_config *config,
                            tdm_backend **backend)
{
    tdm_device_choice choice;
    tdm_device_config device = config->device;
    device.spread = (size_t)options->comm->local_rank; /* a machine's processes share its GPUs */
    TDM_TRY(tdm_backend_create_from_config(&device, backend, &choice));
    if (choice.fell_back)
        fprintf(stderr, "tandem: warning: %s; using the cpu backend (fallback = cpu)\n",
                choice.why);
    if (!options->quiet)
        fprintf(stderr, "tandem: device: %s\n", tdm_backend_description(*backend));
    return TDM_OK;
}

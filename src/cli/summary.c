/* tandem summary: the model's layers with output shape, parameters and
 * forward FLOPs per sample, from shape inference alone (no device needed). */
#include <stdio.h>

#include "cli/commands.h"
#include "cli/errors.h"

enum { MAX_LINES = TDM_MAX_LAYERS * 8 };

static void print_line(const char *number, const tdm_layer_info *info)
{
    char shape[64];
    snprintf(shape, sizeof shape, "%zux%zux%zu", info->output.channels, info->output.height,
             info->output.width);
    printf("%4s  %*s%-*s %-12s %12zu %14llu\n", number, 2 * info->depth, "", 34 - 2 * info->depth,
           info->name, shape, info->parameters, (unsigned long long)info->flops);
}

int cmd_summary(const cli_options *options)
{
    cli_config config;
    static tdm_layer_info infos[MAX_LINES];
    size_t count = 0;
    if (cli_load_config(options, &config) != TDM_OK ||
        tdm_model_spec_describe(&config.model, infos, MAX_LINES, &count) != TDM_OK)
        return cli_fail();
    const tdm_sample_shape *in = &config.model.input;
    printf("input %zux%zux%zu\n", in->channels, in->height, in->width);
    printf("%4s  %-34s %-12s %12s %14s\n", "#", "layer", "output", "parameters", "FLOPs/sample");
    size_t parameters = 0, layer = 0;
    unsigned long long flops = 0;
    for (size_t i = 0; i < count; i++) {
        char number[16] = "";
        if (infos[i].depth == 0) {
            snprintf(number, sizeof number, "%zu", ++layer);
            parameters += infos[i].parameters;
            flops += infos[i].flops;
        }
        print_line(number, &infos[i]);
    }
    printf("%4s  %-34s %-12s %12zu %14llu\n", "", "total", "", parameters, flops);
    return 0;
}

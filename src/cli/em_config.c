#include "cli/em_config.h"

#include <stdio.h>
#include <string.h>

#include "tandem/config.h"

void cli_em_config_init(cli_em_config *em)
{
    memset(em, 0, sizeof *em);
    tdm_em_options_init(&em->options);
    em->threshold = 8.0f;
}

/* "HxW", each a whole number in 1..65536 (no sign, no wrap-around). */
static tdm_status parse_image(const char *value, size_t *height, size_t *width)
{
    char part[32];
    const char *x = strchr(value, 'x');
    size_t h = 0, w = 0;
    if (!x || (size_t)(x - value) >= sizeof part)
        return tdm_config_error("image must be HxW, got '%s'", value);
    memcpy(part, value, (size_t)(x - value));
    part[x - value] = '\0';
    if (tdm_parse_size("image height", part, 1, 65536, &h) != TDM_OK ||
        tdm_parse_size("image width", x + 1, 1, 65536, &w) != TDM_OK)
        return tdm_config_error("image must be HxW with H and W in 1..65536, got '%s'", value);
    *height = h;
    *width = w;
    return TDM_OK;
}

tdm_status cli_em_config_set(void *target, const char *key, const char *value)
{
    cli_em_config *em = target;
    if (strcmp(key, "path") == 0) {
        if (!value[0] || strlen(value) >= sizeof em->path)
            return tdm_config_error("path must be 1 to %zu characters", sizeof em->path - 1);
        strcpy(em->path, value);
        return TDM_OK;
    }
    if (strcmp(key, "labels") == 0)
        return tdm_parse_bool(key, value, &em->labels);
    if (strcmp(key, "threshold") == 0)
        return tdm_parse_float(key, value, -1e30, 1e30, &em->threshold);
    if (strcmp(key, "packed_cols") == 0)
        return tdm_parse_size(key, value, 0, SIZE_MAX, &em->packed_cols);
    if (strcmp(key, "image") == 0)
        return parse_image(value, &em->image_height, &em->image_width);
    return tdm_em_options_set(&em->options, key, value);
}

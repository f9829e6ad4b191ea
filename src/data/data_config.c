/* The [data] section of a config file, and loading what it names. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tandem/config.h"
#include "core/error.h"
#include "tandem/data.h"

void tdm_data_config_init(tdm_data_config *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->format, "csv");
    strcpy(c->path, "data/digits.csv.gz");
    c->test_rows = 180;
    c->shape = (tdm_sample_shape){1, 8, 8};
    c->max_pixel = 16.0f;
    c->classes = 10;
    c->scale = 1.0f;
}

static tdm_status set_format(tdm_data_config *c, const char *value)
{
    if (strcmp(value, "csv") != 0 && strcmp(value, "idx") != 0)
        return TDM_FAIL(TDM_ERR_CONFIG, "format must be csv or idx, got '%s'", value);
    strcpy(c->format, value);
    return TDM_OK;
}

tdm_status tdm_data_config_set(void *target, const char *key, const char *value)
{
    tdm_data_config *c = target;
    const size_t big = (size_t)1 << 20;
    if (strcmp(key, "format") == 0)
        return set_format(c, value);
    if (strcmp(key, "path") == 0)
        return tdm_parse_string(key, value, c->path, sizeof c->path);
    if (strcmp(key, "test_rows") == 0)
        return tdm_parse_size(key, value, 1, (size_t)1 << 40, &c->test_rows);
    if (strcmp(key, "channels") == 0)
        return tdm_parse_size(key, value, 1, big, &c->shape.channels);
    if (strcmp(key, "height") == 0)
        return tdm_parse_size(key, value, 1, big, &c->shape.height);
    if (strcmp(key, "width") == 0)
        return tdm_parse_size(key, value, 1, big, &c->shape.width);
    if (strcmp(key, "max_pixel") == 0)
        return tdm_parse_float(key, value, 0.0, 1e9, &c->max_pixel);
    if (strcmp(key, "classes") == 0)
        return tdm_parse_size(key, value, 1, 65536, &c->classes);
    if (strcmp(key, "scale") == 0)
        return tdm_parse_float(key, value, 1e-9, 1e9, &c->scale);
    if (strcmp(key, "max_mb") == 0)
        return tdm_parse_size(key, value, 0, SIZE_MAX / 2 >> 20, &c->max_mb);
    char *paths[] = {c->train_images, c->train_labels, c->test_images, c->test_labels};
    const char *names[] = {"train_images", "train_labels", "test_images", "test_labels"};
    for (size_t i = 0; i < 4; i++)
        if (strcmp(key, names[i]) == 0)
            return tdm_parse_string(key, value, paths[i], sizeof c->path);
    return TDM_FAIL(TDM_ERR_CONFIG,
                    "unknown key '%s' (known: format path test_rows channels height width "
                    "max_pixel classes scale max_mb train_images train_labels test_images "
                    "test_labels)",
                    key);
}

static tdm_status load_csv_split(const tdm_data_config *c, tdm_dataset *train, tdm_dataset *test)
{
    tdm_dataset all;
    TDM_TRY(tdm_dataset_load_csv_capped(c->path, c->shape, c->max_pixel, c->classes,
                                        c->max_mb << 20, &all));
    tdm_status status = TDM_OK;
    if (all.count <= c->test_rows)
        status =
            TDM_FAIL(TDM_ERR_DATA, "%s: %zu samples, but test_rows = %zu leaves none for training",
                     c->path, all.count, c->test_rows);
    if (status == TDM_OK)
        status = tdm_dataset_split_front(&all, c->test_rows, test); /* the rest is train */
    if (status != TDM_OK) {
        tdm_dataset_free(&all);
        return status;
    }
    *train = all;
    return TDM_OK;
}

static tdm_status load_idx_pair(const tdm_data_config *c, tdm_dataset *train, tdm_dataset *test)
{
    const char *paths[] = {c->train_images, c->train_labels, c->test_images, c->test_labels};
    const char *names[] = {"train_images", "train_labels", "test_images", "test_labels"};
    for (size_t i = 0; i < 4; i++)
        if (!paths[i][0])
            return TDM_FAIL(TDM_ERR_CONFIG, "format = idx needs %s", names[i]);
    TDM_TRY(tdm_dataset_load_idx_capped(c->train_images, c->train_labels, c->classes,
                                        c->max_mb << 20, train));
    return tdm_dataset_load_idx_capped(c->test_images, c->test_labels, c->classes, c->max_mb << 20,
                                       test);
}

static void scale_pixels(tdm_dataset *set, float scale)
{
    size_t count = set->count * set->shape.channels * set->shape.height * set->shape.width;
    for (size_t i = 0; scale != 1.0f && i < count; i++)
        set->pixels[i] *= scale;
}

tdm_status tdm_data_config_load(const tdm_data_config *c, tdm_dataset *train, tdm_dataset *test)
{
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    tdm_status status = strcmp(c->format, "idx") == 0 ? load_idx_pair(c, train, test)
                                                      : load_csv_split(c, train, test);
    if (status != TDM_OK) {
        tdm_dataset_free(train);
        tdm_dataset_free(test);
        return status;
    }
    scale_pixels(train, c->scale);
    scale_pixels(test, c->scale);
    return TDM_OK;
}

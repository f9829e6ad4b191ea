/* Labelled image data sets in host memory: the bundled digits, CSV files in
 * the same layout, and the IDX files MNIST ships in (plain or gzipped). */
#ifndef TANDEM_DATA_H
#define TANDEM_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "tandem/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tdm_dataset {
    size_t count;           /* samples */
    tdm_sample_shape shape; /* of one sample */
    size_t classes;         /* labels lie in [0, classes) */
    float *pixels;          /* count x shape, as read (no scaling) */
    int32_t *labels;        /* count */
} tdm_dataset;

/* A CSV file, plain or gzipped: one sample per line, the pixels of `shape`
 * in C, H, W order, then the label. Every value must be a whole number,
 * pixels in [0, max_pixel] and labels in [0, classes). Errors name the file
 * and line: "digits.csv:12: 63 values, expected 65". */
tdm_status tdm_dataset_load_csv(const char *path, tdm_sample_shape shape, float max_pixel,
                                size_t classes, tdm_dataset *out);

/* An IDX image file (ubyte, N x H x W) and its IDX label file (ubyte, N),
 * plain or gzipped, as MNIST's train-images-idx3-ubyte[.gz]. */
tdm_status tdm_dataset_load_idx(const char *images_path, const char *labels_path, size_t classes,
                                tdm_dataset *out);

/* The same, holding at most max_bytes of samples (4 bytes a pixel and a
 * label; 0: no cap): past it, an error naming the file (and for CSV the
 * line) instead of growing. */
tdm_status tdm_dataset_load_csv_capped(const char *path, tdm_sample_shape shape, float max_pixel,
                                       size_t classes, size_t max_bytes, tdm_dataset *out);
tdm_status tdm_dataset_load_idx_capped(const char *images_path, const char *labels_path,
                                       size_t classes, size_t max_bytes, tdm_dataset *out);

/* Copies rows [first, first + count) into out. */
tdm_status tdm_dataset_slice(const tdm_dataset *dataset, size_t first, size_t count,
                             tdm_dataset *out);

/* Copies the first count rows into front and keeps the rest in dataset, moved
 * to its start in place: no second copy of the larger part. */
tdm_status tdm_dataset_split_front(tdm_dataset *dataset, size_t count, tdm_dataset *front);

void tdm_dataset_free(tdm_dataset *dataset);

/* Where the training and test sets come from: the [data] section of a
 * config file (every key is documented in configs/resnet.ini). */
typedef struct tdm_data_config {
    char format[8];         /* "csv" (one file, split by rows) or "idx" (four files) */
    char path[1024];        /* csv: the file; relative paths are from the working directory */
    size_t test_rows;       /* csv: the first test_rows rows are the test set, the rest train */
    tdm_sample_shape shape; /* csv: of one image */
    float max_pixel;        /* csv: the largest pixel value allowed */
    size_t classes;         /* labels lie in [0, classes) */
    float scale;            /* pixels are multiplied by it after loading */
    size_t max_mb;          /* the most MiB of samples loaded (each file), 0: no cap */
    char train_images[1024], train_labels[1024], test_images[1024], test_labels[1024]; /* idx */
} tdm_data_config;

/* The setup of docs/experiments.md: data/digits.csv.gz, 8x8 pixels 0..16, 10 classes,
 * the first 180 rows for testing, raw pixel values (scale 1). */
void tdm_data_config_init(tdm_data_config *config);
tdm_status tdm_data_config_set(void *config, const char *key, const char *value);
/* Loads and splits; both sets are freed by the caller. */
tdm_status tdm_data_config_load(const tdm_data_config *config, tdm_dataset *train,
                                tdm_dataset *test);

#ifdef __cplusplus
}
#endif

#endif

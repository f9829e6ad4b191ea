/* Shared by the training loop (train.c) and the checkpoints (checkpoint.c). */
#ifndef TANDEM_TRAIN_INTERNAL_H
#define TANDEM_TRAIN_INTERNAL_H

#include "core/rng.h"
#include "tandem/train.h"

/* A data set on the device, with room for one pass's per-sample losses
 * (results[0, count)) and errors (results[count, 2 count)). */
typedef struct device_set {
    size_t count;
    tdm_buffer *pixels, *labels, *results;
} device_set;

struct tdm_trainer {
    tdm_backend *backend;
    tdm_train_options options;
    tdm_model_spec spec;
    tdm_model *model;
    size_t classes;
    device_set train, test;
    device_set shuffled;    /* the training set in this epoch's order */
    tdm_dataset host_train; /* a copy, for shuffling */
    tdm_rng rng;            /* the shuffle order */
    tdm_comm *comm;         /* the processes sharing each batch; NULL: this one alone */
    size_t epoch;
    double seconds;
};

#endif

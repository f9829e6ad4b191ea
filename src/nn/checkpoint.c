/* Checkpoints: a little-endian binary file (docs/checkpoints.md) ending in
 * a CRC-32 of everything before it, written to a temporary file that is
 * renamed over the target, so a reader sees the old file or the new one. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "core/error.h"
#include "nn/train_internal.h"

static const char magic[8] = {'T', 'D', 'M', 'C', 'K', 'P', 'T', '\n'};
enum { FORMAT_VERSION = 1 };

/* ---------- writing ---------- */

typedef struct writer {
    unsigned char *data;
    size_t size, capacity;
    bool failed;
} writer;

static void put_bytes(writer *w, const void *bytes, size_t count)
{
    if (w->failed)
        return;
    if (w->size + count > w->capacity) {
        size_t capacity = (w->size + count) * 2;
        unsigned char *grown = realloc(w->data, capacity);
        if (!grown) {
            w->failed = true;
            return;
        }
        w->data = grown;
        w->capacity = capacity;
    }
    memcpy(w->data + w->size, bytes, count);
    w->size += count;
}

static void put_u64(writer *w, uint64_t value)
{
    unsigned char bytes[8];
    for (int i = 0; i < 8; i++)
        bytes[i] = (unsigned char)(value >> (8 * i));
    put_bytes(w, bytes, 8);
}

static void put_f32(writer *w, float value)
{
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    unsigned char bytes[4];
    for (int i = 0; i < 4; i++)
        bytes[i] = (unsigned char)(bits >> (8 * i));
    put_bytes(w, bytes, 4);
}

static void put_f64(writer *w, double value)
{
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    put_u64(w, bits);
}

static void put_floats(writer *w, const float *values, size_t count)
{
    put_u64(w, count);
    for (size_t i = 0; i < count; i++)
        put_f32(w, values[i]);
}

/* What must match for a checkpoint to continue this run. */
static void put_setup(writer *w, const tdm_trainer *t)
{
    const tdm_model_spec *s = &t->spec;
    put_u64(w, s->input.channels);
    put_u64(w, s->input.height);
    put_u64(w, s->input.width);
    put_u64(w, s->layer_count);
    for (size_t i = 0; i < s->layer_count; i++) {
        const tdm_layer_spec *l = &s->layers[i];
        uint64_t fields[] = {l->kind, l->out_channels, l->kernel, l->stride, l->padding, l->bias};
        for (size_t f = 0; f < 6; f++)
            put_u64(w, fields[f]);
        if (l->kind == TDM_LAYER_LEAKY_RELU) /* only there: older checkpoints stay valid */
            put_f32(w, l->slope);
    }
    const tdm_train_options *o = &t->options;
    put_u64(w, o->batch);
    put_f32(w, o->sgd.lr);
    put_f32(w, o->sgd.momentum);
    put_f32(w, o->sgd.dampening);
    put_f32(w, o->sgd.weight_decay);
    put_u64(w, o->sgd.nesterov);
    put_u64(w, o->shuffle);
    put_u64(w, o->seed);
}

/* The model's state, downloaded. */
static tdm_status put_model_state(writer *w, const tdm_trainer *t)
{
    size_t params = tdm_model_parameter_count(t->model);
    size_t stats = tdm_model_statistics_count(t->model);
    float *values = malloc((params > stats ? params : stats) * sizeof(float) + 1);
    if (!values)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "checkpoint: out of host memory");
    tdm_status status = tdm_model_get_parameters(t->model, values);
    if (status == TDM_OK)
        put_floats(w, values, params);
    if (status == TDM_OK)
        status = tdm_model_get_statistics(t->model, values);
    if (status == TDM_OK)
        put_floats(w, values, stats);
    bool momentum = tdm_model_has_momentum(t->model);
    if (status == TDM_OK && momentum)
        status = tdm_model_get_momentum(t->model, values);
    if (status == TDM_OK)
        put_floats(w, values, momentum ? params : 0);
    free(values);
    return status;
}

static tdm_status write_file(const char *path, const writer *w)
{
    char temporary[4096];
    if (snprintf(temporary, sizeof temporary, "%s.tmp", path) >= (int)sizeof temporary)
        return TDM_FAIL(TDM_ERR_IO, "checkpoint path too long: %s", path);
    FILE *file = fopen(temporary, "wb");
    if (!file)
        return TDM_FAIL(TDM_ERR_IO, "cannot write checkpoint %s: %s", temporary, strerror(errno));
    bool written = fwrite(w->data, 1, w->size, file) == w->size && fflush(file) == 0 &&
                   fsync(fileno(file)) == 0;
    int saved_errno = errno;
    written = fclose(file) == 0 && written;
    if (!written || rename(temporary, path) != 0) {
        saved_errno = written ? errno : saved_errno;
        remove(temporary);
        return TDM_FAIL(TDM_ERR_IO, "cannot write checkpoint %s: %s", path, strerror(saved_errno));
    }
    return TDM_OK;
}

tdm_status tdm_trainer_save(const tdm_trainer *t, const char *path)
{
    writer w = {0};
    put_bytes(&w, magic, sizeof magic);
    put_u64(&w, FORMAT_VERSION);
    put_setup(&w, t);
    put_u64(&w, t->epoch);
    put_f64(&w, t->seconds);
    put_u64(&w, t->rng.state);
    tdm_status status = put_model_state(&w, t);
    uint32_t crc = (uint32_t)crc32(0L, w.data, (uInt)w.size);
    unsigned char crc_bytes[4] = {(unsigned char)crc, (unsigned char)(crc >> 8),
                                  (unsigned char)(crc >> 16), (unsigned char)(crc >> 24)};
    put_bytes(&w, crc_bytes, 4);
    if (status == TDM_OK && w.failed)
        status = TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "checkpoint: out of host memory");
    if (status == TDM_OK)
        status = write_file(path, &w);
    free(w.data);
    return status;
}

/* ---------- reading ---------- */

typedef struct reader {
    const char *path;
    const unsigned char *data;
    size_t size, at;
} reader;

static tdm_status truncated(const reader *r)
{
    return TDM_FAIL(TDM_ERR_DATA, "checkpoint %s is truncated (%zu bytes)", r->path, r->size);
}

static tdm_status get_u64(reader *r, uint64_t *out)
{
    if (r->size - r->at < 8)
        return truncated(r);
    *out = 0;
    for (int i = 0; i < 8; i++)
        *out |= (uint64_t)r->data[r->at + (size_t)i] << (8 * i);
    r->at += 8;
    return TDM_OK;
}

static tdm_status get_f32(reader *r, float *out)
{
    if (r->size - r->at < 4)
        return truncated(r);
    uint32_t bits = 0;
    for (int i = 0; i < 4; i++)
        bits |= (uint32_t)r->data[r->at + (size_t)i] << (8 * i);
    memcpy(out, &bits, sizeof *out);
    r->at += 4;
    return TDM_OK;
}

/* Reads the setup into a writer so it can be compared with this run's. */
static tdm_status check_setup(reader *r, const tdm_trainer *t)
{
    writer expected = {0};
    put_setup(&expected, t);
    if (!expected.failed && r->size - r->at < expected.size) {
        free(expected.data);
        return truncated(r); /* not "another model": the setup is cut short */
    }
    bool same = !expected.failed && memcmp(r->data + r->at, expected.data, expected.size) == 0;
    r->at += same ? expected.size : 0;
    free(expected.data);
    if (!same)
        return TDM_FAIL(TDM_ERR_DATA,
                        "checkpoint %s belongs to another model or other training options "
                        "(batch, lr, momentum, weight decay, shuffle, seed)",
                        r->path);
    return TDM_OK;
}

/* count floats (which must equal `expected`) into out. */
static tdm_status get_floats(reader *r, float *out, size_t expected, const char *what)
{
    uint64_t count = 0;
    TDM_TRY(get_u64(r, &count));
    if (count != expected)
        return TDM_FAIL(TDM_ERR_DATA, "checkpoint %s holds %llu %s, the model has %zu", r->path,
                        (unsigned long long)count, what, expected);
    for (size_t i = 0; i < count; i++)
        TDM_TRY(get_f32(r, &out[i]));
    return TDM_OK;
}

static tdm_status restore_model(reader *r, tdm_trainer *t)
{
    size_t params = tdm_model_parameter_count(t->model);
    size_t stats = tdm_model_statistics_count(t->model);
    float *p = malloc(params * sizeof(float) + 1), *s = malloc(stats * sizeof(float) + 1);
    float *v = malloc(params * sizeof(float) + 1);
    uint64_t velocity_count = 0;
    tdm_status status =
        p && s && v ? TDM_OK : TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "out of host memory");
    if (status == TDM_OK)
        status = get_floats(r, p, params, "parameters");
    if (status == TDM_OK)
        status = get_floats(r, s, stats, "running statistics");
    size_t momentum_at = r->at;
    if (status == TDM_OK)
        status = get_u64(r, &velocity_count);
    r->at = momentum_at;
    if (status == TDM_OK)
        status = get_floats(r, v, velocity_count ? params : 0, "momentum values");
    if (status == TDM_OK && r->at != r->size)
        status = TDM_FAIL(TDM_ERR_DATA, "checkpoint %s has %zu unexpected trailing bytes", r->path,
                          r->size - r->at);
    for (size_t i = 0; status == TDM_OK && i < params; i++)
        if (!isfinite(p[i]) || (velocity_count && !isfinite(v[i])))
            status = TDM_FAIL(TDM_ERR_DATA,
                              "checkpoint %s: parameter %zu or its momentum is not "
                              "finite",
                              r->path, i);
    if (status == TDM_OK)
        status = tdm_model_set_parameters(t->model, p);
    if (status == TDM_OK && tdm_model_set_statistics(t->model, s) != TDM_OK)
        status = TDM_FAIL(TDM_ERR_DATA, "checkpoint %s: %s", r->path, tdm_last_error_message());
    if (status == TDM_OK && velocity_count)
        status = tdm_model_set_momentum(t->model, v);
    free(p);
    free(s);
    free(v);
    return status;
}

static tdm_status read_whole_file(const char *path, unsigned char **data, size_t *size)
{
    FILE *file = fopen(path, "rb");
    if (!file)
        return TDM_FAIL(TDM_ERR_IO, "cannot open checkpoint %s: %s", path, strerror(errno));
    long length = -1;
    if (fseek(file, 0, SEEK_END) == 0)
        length = ftell(file);
    rewind(file);
    *data = length >= 0 ? malloc((size_t)length + 1) : NULL;
    bool ok = *data && fread(*data, 1, (size_t)length, file) == (size_t)length;
    fclose(file);
    if (!ok) {
        free(*data);
        *data = NULL;
        return TDM_FAIL(TDM_ERR_IO, "cannot read checkpoint %s", path);
    }
    *size = (size_t)length;
    return TDM_OK;
}

static tdm_status check_envelope(const reader *r)
{
    if (r->size < sizeof magic + 8 + 4 || memcmp(r->data, magic, sizeof magic) != 0)
        return TDM_FAIL(TDM_ERR_DATA, "%s is not a tandem checkpoint%s", r->path,
                        r->size < sizeof magic + 12 ? " (too short)" : "");
    size_t body = r->size - 4;
    uint32_t stored = (uint32_t)r->data[body] | (uint32_t)r->data[body + 1] << 8 |
                      (uint32_t)r->data[body + 2] << 16 | (uint32_t)r->data[body + 3] << 24;
    if ((uint32_t)crc32(0L, r->data, (uInt)body) != stored)
        return TDM_FAIL(TDM_ERR_DATA, "checkpoint %s is corrupt or truncated (checksum mismatch)",
                        r->path);
    return TDM_OK;
}

/* As tdm_train_options' epochs key allows. */
static const uint64_t MOST_EPOCHS = (uint64_t)1 << 40;

static tdm_status parse_checkpoint(reader *r, tdm_trainer *t)
{
    uint64_t version = 0, epoch = 0, seconds_bits = 0, rng_state = 0;
    TDM_TRY(check_envelope(r));
    r->size -= 4; /* the CRC */
    r->at = sizeof magic;
    TDM_TRY(get_u64(r, &version));
    if (version != FORMAT_VERSION)
        return TDM_FAIL(TDM_ERR_DATA, "checkpoint %s has format version %llu; this tandem reads %d",
                        r->path, (unsigned long long)version, FORMAT_VERSION);
    TDM_TRY(check_setup(r, t));
    TDM_TRY(get_u64(r, &epoch));
    TDM_TRY(get_u64(r, &seconds_bits));
    TDM_TRY(get_u64(r, &rng_state));
    double seconds = 0.0;
    memcpy(&seconds, &seconds_bits, sizeof seconds);
    if (epoch > MOST_EPOCHS || !isfinite(seconds) || seconds < 0.0)
        return TDM_FAIL(TDM_ERR_DATA,
                        "checkpoint %s: epoch %llu and %g seconds are not a run's (at most 2^40 "
                        "epochs, a finite time >= 0)",
                        r->path, (unsigned long long)epoch, seconds);
    TDM_TRY(restore_model(r, t));
    t->epoch = (size_t)epoch;
    t->seconds = seconds;
    t->rng.state = rng_state;
    return TDM_OK;
}

tdm_status tdm_trainer_load(tdm_trainer *t, const char *path)
{
    unsigned char *data = NULL;
    size_t size = 0;
    TDM_TRY(read_whole_file(path, &data, &size));
    reader r = {.path = path, .data = data, .size = size};
    tdm_status status = parse_checkpoint(&r, t);
    free(data);
    return status;
}

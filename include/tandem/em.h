/* Mixtures of Bernoullis fitted by EM, on any backend: the E step is one
 * GEMM per block of rows plus a row softmax, the M step two GEMMs; sums over
 * rows are carried in double on the host. The API follows scikit-learn's
 * GaussianMixture. docs/em.md gives the formulas and defaults. */
#ifndef TANDEM_EM_H
#define TANDEM_EM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tandem/backend.h"
#include "tandem/comm.h"
#include "tandem/data.h"

#ifdef __cplusplus
extern "C" {
#endif

/* n binary rows of d values, packed 64 to a word: value c of row r is bit
 * c % 64 of bits[r * row_words + c / 64], so a row takes about d / 8 bytes
 * (10 million rows of 784 values: 1 GB). Bits beyond cols are 0. A process
 * of a distributed fit holds a part of the rows: rows [first_row, first_row
 * + rows) of total_rows (whole data: 0 and rows; a part may have 0 rows). */
typedef struct tdm_binary_data {
    size_t rows, cols;
    size_t row_words; /* (cols + 63) / 64 */
    uint64_t *bits;
    int32_t *labels; /* NULL, or one label per row (for purity and ARI) */
    size_t first_row, total_rows;
} tdm_binary_data;

/* rows x cols zeros, without labels. */
tdm_status tdm_binary_alloc(size_t rows, size_t cols, tdm_binary_data *out);

/* Distributed EM cuts the rows into shards of shard_rows rows and deals them
 * out in order, as evenly as whole shards allow: process `rank` of `size`
 * holds rows [*first, *first + *count) of total_rows. */
void tdm_em_share(size_t total_rows, size_t shard_rows, int rank, int size, size_t *first,
                  size_t *count);

/* Which rows of a file a loader keeps: a process's share (tdm_em_share). */
typedef struct tdm_row_share {
    size_t shard_rows;
    int rank, size;
} tdm_row_share;

static inline bool tdm_binary_get(const tdm_binary_data *data, size_t row, size_t col)
{
    return data->bits[row * data->row_words + col / 64] >> (col % 64) & 1u;
}

static inline void tdm_binary_set(tdm_binary_data *data, size_t row, size_t col, bool value)
{
    uint64_t *word = &data->bits[row * data->row_words + col / 64], bit = (uint64_t)1 << (col % 64);
    *word = value ? *word | bit : *word & ~bit;
}

/* A CSV of 0/1 values, plain or gzipped; with has_labels the last column is
 * an integer label. Anything else (2, -1, 0.5, nan, text), a ragged row or
 * an empty file is an error naming the file and line. */
tdm_status tdm_binary_load_csv(const char *path, bool has_labels, tdm_binary_data *out);
/* The same, keeping only share's rows (NULL: all). Every line is counted to
 * find the share, but only the share's lines are parsed and checked (so a
 * bad line is reported by the process that holds it), beside the first
 * line, which sets the columns for all. */
tdm_status tdm_binary_load_csv_part(const char *path, bool has_labels, const tdm_row_share *share,
                                    tdm_binary_data *out);
/* A numpy .npy file: a 2-D C-order array of uint8 or bool holding 0/1
 * (packed_cols = 0), or the output of numpy.packbits(X, axis=1) of an X with
 * packed_cols columns. No labels. A wrong dtype, Fortran order, a shape that
 * is not 2-D, a size that differs from the header's, a value other than 0/1
 * or packing bits set beyond the last column is an error naming the file. */
tdm_status tdm_binary_load_npy(const char *path, size_t packed_cols, tdm_binary_data *out);
/* The same, reading only share's rows (NULL: all) from where they start. */
tdm_status tdm_binary_load_npy_part(const char *path, size_t packed_cols,
                                    const tdm_row_share *share, tdm_binary_data *out);
/* Keeps only share's rows (NULL: all) of whole data, in place. */
tdm_status tdm_binary_keep_share(tdm_binary_data *data, const tdm_row_share *share);
/* Pixels >= threshold become 1 (SPEC section 1: the digits at 8); labels copied. */
tdm_status tdm_binary_from_dataset(const tdm_dataset *dataset, float threshold,
                                   tdm_binary_data *out);
void tdm_binary_free(tdm_binary_data *data);

typedef enum tdm_em_init {
    TDM_EM_INIT_KMEANS_PLUS_PLUS,        /* k-means++ centres (Hamming distance), then one M step */
    TDM_EM_INIT_RANDOM_ROWS,             /* K distinct random rows as centres, then one M step */
    TDM_EM_INIT_RANDOM_RESPONSIBILITIES, /* random responsibilities, then one M step */
    TDM_EM_INIT_GIVEN                    /* options.initial_p and initial_pi */
} tdm_em_init;

typedef enum tdm_em_method {
    TDM_EM_METHOD_AUTO, /* bits: the faster method on every device measured */
    TDM_EM_METHOD_BITS, /* the products from the packed bits: table lookups, no floats of X */
    TDM_EM_METHOD_GEMM  /* the products as GEMMs on floats widened from the bits */
} tdm_em_method;

typedef struct tdm_em_options {
    size_t components;       /* K */
    size_t max_iter;         /* 100 */
    double tol;              /* 1e-4: stop when the mean log-likelihood per sample moves less */
    size_t n_init;           /* 1: restarts, the best final log-likelihood is kept */
    tdm_em_init init;        /* k-means++ */
    uint64_t seed;           /* restart r uses a seed derived from (seed, r) */
    double prior_a, prior_b; /* Beta(a, b) prior on every p: MAP; 2, 2 (one pseudo-count each) */
    double clamp;            /* 1e-6: p is kept in [clamp, 1 - clamp] after every M step */
    size_t block_rows;       /* 0 (auto): rows per block; bits: 8192, or the rows that fill
                                a GPU (tdm_backend_parallel_rows) within 64 MiB of scores;
                                gemm when streaming: 256 per host thread and at least 512,
                                else 8192; fewer where a block would not fit one device
                                buffer, and never past a shard */
    size_t shard_rows;       /* 131072: sums over rows are taken per shard of this many rows,
                                then the shards' sums in order, so any number of processes
                                gives the same bits (blocks end at shard ends) */
    size_t cache_bytes;      /* 1 GiB: on a device with its own memory, the float copy of the
                                data (or its packed words) stays there when it fits this and
                                one buffer (tdm_backend_max_buffer_bytes); host-memory
                                backends stream */
    tdm_em_method method;    /* auto */
    const float *initial_p, *initial_pi; /* K x D and K, for TDM_EM_INIT_GIVEN */
    /* Called after every E step (may be NULL): the restart, the iteration
     * (from 1) and the mean log-likelihood per sample. */
    void (*on_iteration)(void *user, size_t restart, size_t iteration, double mean_ll);
    void *user;
} tdm_em_options;

void tdm_em_options_init(tdm_em_options *options);
/* A setter for the [em] keys of a config file (see configs/em.ini):
 * components, max_iter, tol, n_init, init, seed, prior_a, prior_b, clamp,
 * block_rows, shard_rows, method. */
tdm_status tdm_em_options_set(void *options, const char *key, const char *value);

typedef struct tdm_em_result {
    size_t components, cols;
    float *p;          /* K x D */
    float *pi;         /* K */
    double *history;   /* mean log-likelihood per sample after each E step */
    double *objective; /* the same plus the log prior / n: what EM never decreases */
    size_t iterations;
    bool converged;
    double log_likelihood; /* total, of the returned parameters */
    size_t reseeded;       /* components re-seeded because they went empty */
    size_t best_init;      /* which restart was kept */
} tdm_em_result;

tdm_status tdm_em_fit(tdm_backend *backend, const tdm_binary_data *data,
                      const tdm_em_options *options, tdm_em_result *result);
/* The fit of the rows all processes of comm hold together: each calls it
 * with its share (tdm_em_share with options->shard_rows, as the _part
 * loaders give it), its own backend and the same options, and each gets the
 * same result, bit for bit the result of tdm_em_fit on all the rows when
 * every process's backend computes as that one does. */
tdm_status tdm_em_fit_distributed(tdm_backend *backend, tdm_comm *comm, const tdm_binary_data *part,
                                  const tdm_em_options *options, tdm_em_result *result);
void tdm_em_result_free(tdm_em_result *result);

/* With a fitted result: per-sample log-likelihood, responsibilities (n x K),
 * the most likely component (ties: the first). */
tdm_status tdm_em_score_samples(tdm_backend *backend, const tdm_binary_data *data,
                                const tdm_em_result *result, double *out);
tdm_status tdm_em_predict_proba(tdm_backend *backend, const tdm_binary_data *data,
                                const tdm_em_result *result, float *out);
tdm_status tdm_em_predict(tdm_backend *backend, const tdm_binary_data *data,
                          const tdm_em_result *result, int32_t *out);

/* K*D + K - 1 free parameters. */
double tdm_em_bic(const tdm_em_result *result, size_t rows);
double tdm_em_aic(const tdm_em_result *result, size_t rows);

/* Purity (the fraction of rows whose cluster's most common label is theirs)
 * and the adjusted Rand index of two labelings. */
double tdm_cluster_purity(const int32_t *clusters, const int32_t *labels, size_t rows);
double tdm_adjusted_rand_index(const int32_t *a, const int32_t *b, size_t rows);

#ifdef __cplusplus
}
#endif

#endif

/* Shared by the EM files: the M step and the initialisations (em_init.c)
 * work on host arrays in double; em_part.c holds what a process needs of
 * the others (em_part.c). */
#ifndef TANDEM_EM_INTERNAL_H
#define TANDEM_EM_INTERNAL_H

#include "core/rng.h"
#include "tandem/em.h"

/* Sufficient statistics of a pass: s = sum_i eta_ik x_i (K x D), n_k =
 * sum_i eta_ik (K), and the total log-likelihood. */
typedef struct em_sums {
    double *s, *n;
    double log_likelihood;
} em_sums;

/* This process's rows of a fit, and the processes that hold the rest. */
typedef struct em_part {
    const tdm_binary_data *data; /* rows [first_row, first_row + data->rows) */
    tdm_comm *comm;
    size_t first_row, total_rows, shard_rows;
    size_t threads; /* for host passes over the rows: the backend's (0: one) */
} em_part;

/* TDM_ERR_INVALID_ARGUMENT unless share is NULL or a valid share. */
tdm_status tdm_check_share(const tdm_row_share *share);
/* The rows [*first, *first + *count) of total that share keeps (NULL: all). */
void tdm_share_range(const tdm_row_share *share, size_t total, size_t *first, size_t *count);
/* The shards this process holds. */
size_t tdm_em_local_shards(const em_part *part);
/* total[0..stride) = the sum of every shard's `stride` values, the shards
 * added in their global order from 0 (the running total passed from process
 * to process) and sent to all, so the bits do not depend on the number of
 * processes. partials: this process's shards, one after another. */
tdm_status tdm_em_sum_shards(const em_part *part, const double *partials, size_t stride,
                             double *total);
/* The words of global row `row`, from the process that holds it, on every process. */
tdm_status tdm_em_fetch_row(const em_part *part, size_t row, uint64_t *words);
/* all[r] = process r's value, on every process. */
tdm_status tdm_em_allgather_doubles(const em_part *part, const double *mine, size_t count,
                                    double *all);

/* A component whose weight falls below this many samples is re-seeded. */
#define TDM_EM_EMPTY_WEIGHT 1e-6

/* p and pi from the sums (MAP with the Beta prior, then the clamp). Marks
 * the components with n_k < TDM_EM_EMPTY_WEIGHT in `empty` (K flags) and
 * leaves their p untouched; returns how many. */
size_t tdm_em_m_step(const em_sums *sums, size_t rows, size_t k_count, size_t cols,
                     const tdm_em_options *options, double *p, double *pi, bool *empty);

/* Sets component k to the row `words` (cols values), smoothed like an M
 * step on that row alone, with weight 1/rows (pi is renormalised by the
 * caller). */
void tdm_em_seed_component(const uint64_t *words, size_t cols, size_t rows, size_t k,
                           const tdm_em_options *options, double *p, double *pi);

/* Initial p (K x D) and pi (K) by options->init, from the given RNG, over
 * the rows of every process (each calls it with the same RNG). */
tdm_status tdm_em_initialize(const em_part *part, const tdm_em_options *options, tdm_rng *rng,
                             double *p, double *pi);

#endif

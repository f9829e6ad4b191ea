/* Shared by the EM files: the M step and the initialisations (em_init.c)
 * work on host arrays in double. */
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

/* A component whose weight falls below this many samples is re-seeded. */
#define TDM_EM_EMPTY_WEIGHT 1e-6

/* p and pi from the sums (MAP with the Beta prior, then the clamp). Marks
 * the components with n_k < TDM_EM_EMPTY_WEIGHT in `empty` (K flags) and
 * leaves their p untouched; returns how many. */
size_t tdm_em_m_step(const em_sums *sums, size_t rows, size_t k_count, size_t cols,
                     const tdm_em_options *options, double *p, double *pi, bool *empty);

/* Sets component k to data row `row`, smoothed like an M step on that row
 * alone, with weight 1/rows (pi is renormalised by the caller). */
void tdm_em_seed_component(const tdm_binary_data *data, size_t row, size_t k,
                           const tdm_em_options *options, double *p, double *pi);

/* Initial p (K x D) and pi (K) by options->init, from the given RNG. */
tdm_status tdm_em_initialize(const tdm_binary_data *data, const tdm_em_options *options,
                             tdm_rng *rng, double *p, double *pi);

#endif

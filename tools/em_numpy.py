#!/usr/bin/python3
"""The EM iteration of tandem's mixture of Bernoullis, vectorised in numpy,
for timing against tandem (bench/run.sh): the same synthetic data shape, the
same E step (one matrix product, a row log-sum-exp), the same M step (one
matrix product, MAP smoothing with Beta(2, 2), a clamp). Prints one line per
dtype: `numpy <dtype> <n> <D> <K> <ms per iteration>`.

Usage: python tools/em_numpy.py N D K ITERS   (bench/run.sh runs it)
"""
import sys
import time

import numpy as np


def em_iteration(x, p, pi, a=2.0, b=2.0, clamp=1e-6):
    log_p, log_q = np.log(p), np.log1p(-p)
    scores = x @ (log_p - log_q).T + (np.log(pi) + log_q.sum(axis=1))
    top = scores.max(axis=1, keepdims=True)
    lse = top + np.log(np.exp(scores - top).sum(axis=1, keepdims=True))
    eta = np.exp(scores - lse)
    weights = eta.sum(axis=0)
    p = np.clip((eta.T @ x + a - 1.0) / (weights[:, None] + a + b - 2.0), clamp, 1.0 - clamp)
    return p, weights / weights.sum(), lse.sum()


def main():
    n, d, k, iterations = (int(v) for v in sys.argv[1:5])
    rng = np.random.default_rng(42)
    truth = rng.uniform(0.05, 0.95, size=(k, d))
    rows = rng.integers(0, k, size=n)
    x01 = rng.random((n, d)) < truth[rows]
    for dtype in (np.float64, np.float32):
        x = x01.astype(dtype)
        p = (0.5 * truth + 0.25).astype(dtype)
        pi = np.full(k, 1.0 / k, dtype=dtype)
        p, pi, _ = em_iteration(x, p, pi)  # warm-up
        start = time.perf_counter()
        for _ in range(iterations):
            p, pi, _ = em_iteration(x, p, pi)
        ms = 1e3 * (time.perf_counter() - start) / iterations
        print(f"numpy {np.dtype(dtype).name} {n} {d} {k} {ms:.2f}", flush=True)


if __name__ == "__main__":
    main()

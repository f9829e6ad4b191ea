"""scikit-learn's estimator checks on BernoulliMixture.

Nearly every check fits on continuous random data (normal or uniform
floats), which no Bernoulli mixture takes: BernoulliMixture rightly raises a
ValueError naming the first value that is not 0 or 1. So the checks run
twice:

- on BernoulliMixture itself, where the checks that feed such data are
  expected to fail, each for that reason (EXPECTED_FAILURES);
- on BinarisedMixture, BernoulliMixture with X > 0 taken as its data after
  the same validation (NaN and infinity still rejected), where every check
  must pass: fitting, refitting, pickling, n_features_in_, dtypes, read-only
  and Fortran-ordered input, subset and order invariance, not-fitted errors.
"""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import check_estimator

from tandem import BernoulliMixture

NOT_BINARY = "fits on continuous random data; BernoulliMixture takes only 0/1 values"
EXPECTED_FAILURES = {
    name: NOT_BINARY
    for name in (
        "check_fit_score_takes_y",
        "check_estimators_overwrite_params",
        "check_dont_overwrite_parameters",
        "check_estimators_fit_returns_self",
        "check_readonly_memmap_input",
        "check_n_features_in_after_fitting",
        "check_estimators_dtypes",
        "check_dtype_object",
        "check_pipeline_consistency",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_non_transformer_estimators_n_iter",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_fit2d_1sample",
        "check_fit2d_1feature",
        "check_dict_unchanged",
        "check_fit_idempotent",
        "check_fit_check_is_fitted",
        "check_n_features_in",
        "check_fit2d_predict1d",
        "check_estimators_nan_inf",  # the NaN test fits on continuous data first
    )
}


class BinarisedMixture(BernoulliMixture):
    """BernoulliMixture on X > 0: continuous data made binary, for the checks."""

    def _as_binary(self, X):
        if not np.isfinite(X).all():
            raise ValueError("Input X contains NaN or infinity.")
        if (X < 0).any():
            raise ValueError("Negative values in data passed to BinarisedMixture")
        return X > 0.5


@pytest.mark.parametrize("device", ["cpu", "opencl"])
def test_check_estimator_on_binarised_data(device):
    results = check_estimator(BinarisedMixture(n_components=2, device=device), on_fail=None)
    failed = [r for r in results if r["status"] == "failed"]
    assert not failed, [(r["check_name"], str(r["exception"])[:300]) for r in failed]


def test_check_estimator_fails_only_on_continuous_data():
    results = check_estimator(
        BernoulliMixture(n_components=2, device="cpu"),
        on_fail=None,
        expected_failed_checks=EXPECTED_FAILURES,
    )
    unexpected = [r for r in results if r["status"] == "failed"]
    assert not unexpected, [(r["check_name"], str(r["exception"])[:300]) for r in unexpected]
    for r in results:
        if r["status"] == "xfail":
            assert "is not 0 or 1" in str(r["exception"]) or "0/1" in str(r["exception"]), r

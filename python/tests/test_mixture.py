"""BernoulliMixture against the tandem CLI and the C library behind it, and
against a numpy implementation of the same EM; pickling, packed input,
devices, the GIL, and every kind of bad input. Every test runs on the cpu
backend and on an OpenCL device (PoCL in CI)."""

import os
import pickle
import subprocess
import threading
import time

import numpy as np
import pytest

import tandem
from tandem import BernoulliMixture, PackedBits

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEVICES = ["cpu", "opencl"]


@pytest.fixture(scope="module")
def digits():
    """The bundled digits binarised at 8, as `tandem em` reads them by default."""
    data = np.loadtxt(os.path.join(ROOT, "data", "digits.csv.gz"), delimiter=",")
    return (data[:, :64] >= 8).astype(np.uint8)


def test_opencl_is_there_in_ci():
    listed = tandem.devices()
    found = [d["device"] for d in listed]
    assert found[-1] == "cpu"
    if os.environ.get("CI") == "true":
        assert any(d.startswith("opencl:") for d in found), found
    for d in listed[:-1]:  # the largest buffer is at most the device's memory
        assert 0 < d["max_alloc_bytes"] <= d["global_memory_bytes"], d


@pytest.mark.parametrize("device", DEVICES)
def test_the_cli_fit_bit_for_bit(digits, device, tmp_path):
    """`tandem em` on the digits (configs/em.ini: K = 10, k-means++, seed 1)
    and BernoulliMixture with the same options: the same p and pi to the last
    bit (params.csv holds them to 9 digits, enough for float32) and the same
    log-likelihood per iteration (history.csv: 12 digits)."""
    cli = os.environ.get("TANDEM_CLI")
    if not cli:
        pytest.fail("TANDEM_CLI must name the tandem tool (tools/test.sh sets it)")
    subprocess.run(
        [cli, "-q", "--device", device, "--config", "configs/em.ini", "--out", str(tmp_path), "em"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    params = np.loadtxt(tmp_path / "em" / "params.csv", delimiter=",", skiprows=1)
    history = np.loadtxt(tmp_path / "em" / "history.csv", delimiter=",", skiprows=1, ndmin=2)
    model = BernoulliMixture(n_components=10, random_state=1, device=device).fit(digits)
    np.testing.assert_array_equal(model.means_.astype(np.float32), params[:, 2:].astype(np.float32))
    np.testing.assert_array_equal(
        model.weights_.astype(np.float32), params[:, 1].astype(np.float32)
    )
    np.testing.assert_allclose(model.history_, history[:, 1], rtol=1e-11)
    assert model.n_iter_ == len(history)


def numpy_em(X, p, pi, iterations, a=2.0, b=2.0, clamp=1e-6):
    """The same MAP EM in numpy, in double: the mean log-likelihood before
    each M step, then p and pi."""
    history = []
    X = X.astype(np.float64)
    for _ in range(iterations):
        scores = X @ np.log(p).T + (1 - X) @ np.log1p(-p).T + np.log(pi)
        top = scores.max(axis=1, keepdims=True)
        lse = top[:, 0] + np.log(np.exp(scores - top).sum(axis=1))
        eta = np.exp(scores - lse[:, None])
        history.append(lse.mean())
        n_k = eta.sum(axis=0)
        p = np.clip((eta.T @ X + a - 1) / (n_k[:, None] + a + b - 2), clamp, 1 - clamp)
        pi = n_k / n_k.sum()
    return np.array(history), p, pi


@pytest.mark.parametrize("device", DEVICES)
def test_a_numpy_em_from_the_same_start(device):
    """A random 3-component mixture (n = 3000, D = 40) from a given start:
    tandem's E step works in float32 (per-row log-likelihoods ~1e-7
    relative, summed in double), so 1e-6 relative on the log-likelihood per
    iteration and 1e-4 on p after 15 iterations."""
    rng = np.random.default_rng(7)
    truth = rng.uniform(0.05, 0.95, size=(3, 40))
    labels = rng.choice(3, size=3000, p=[0.5, 0.3, 0.2])
    X = (rng.uniform(size=(3000, 40)) < truth[labels]).astype(np.uint8)
    start_p = rng.uniform(0.3, 0.7, size=(3, 40)).astype(np.float32)
    start_pi = np.full(3, 1 / 3, dtype=np.float32)
    model = BernoulliMixture(
        n_components=3,
        max_iter=15,
        tol=0.0,
        weights_init=start_pi,
        means_init=start_p,
        device=device,
    ).fit(X)
    history, p, pi = numpy_em(X, start_p.astype(np.float64), start_pi.astype(np.float64), 15)
    np.testing.assert_allclose(model.history_, history, rtol=1e-6)
    np.testing.assert_allclose(model.means_, p, atol=1e-4)
    np.testing.assert_allclose(model.weights_, pi, atol=1e-4)
    # and the fitted model's scores, against numpy's E step
    scores = X @ np.log(model.means_).T + (1 - X) @ np.log1p(-model.means_).T
    scores += np.log(model.weights_)
    lse = np.logaddexp.reduce(scores, axis=1)
    np.testing.assert_allclose(model.score_samples(X), lse, rtol=1e-5)
    np.testing.assert_allclose(model.predict_proba(X), np.exp(scores - lse[:, None]), atol=1e-5)
    # the mixture is recovered: each true component has a fitted one within 0.05
    assert np.abs(model.means_[:, None, :] - truth[None]).mean(axis=2).min(axis=0).max() < 0.05


@pytest.mark.parametrize("device", DEVICES)
def test_methods_and_attributes(digits, device):
    model = BernoulliMixture(n_components=5, n_init=2, random_state=3, device=device)
    labels = model.fit_predict(digits)
    assert model.means_.shape == (5, 64) and model.weights_.shape == (5,)
    assert model.n_features_in_ == 64 and model.converged_ and 1 <= model.n_iter_ <= 100
    np.testing.assert_allclose(model.weights_.sum(), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(labels, model.predict(digits))
    proba = model.predict_proba(digits)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(proba.argmax(axis=1), labels)
    assert model.score(digits) == pytest.approx(model.score_samples(digits).mean())
    assert model.lower_bound_ == pytest.approx(model.score(digits), rel=1e-6)
    n, k_params = len(digits), 5 * 64 + 4
    total = model.score_samples(digits).sum()
    assert model.bic(digits) == pytest.approx(-2 * total + k_params * np.log(n))
    assert model.aic(digits) == pytest.approx(-2 * total + 2 * k_params)
    for dtype in (bool, np.int64, np.float32, np.float64):  # any dtype of 0/1
        np.testing.assert_array_equal(model.predict(digits.astype(dtype)), labels)


@pytest.mark.parametrize("bitorder", ["big", "little"])
def test_packed_bits(digits, bitorder):
    model = BernoulliMixture(n_components=4, random_state=0, device="cpu").fit(digits)
    packed = PackedBits(np.packbits(digits, axis=1, bitorder=bitorder), 64, bitorder=bitorder)
    again = BernoulliMixture(n_components=4, random_state=0, device="cpu").fit(packed)
    np.testing.assert_array_equal(again.means_, model.means_)
    np.testing.assert_array_equal(model.predict(packed), model.predict(digits))
    odd = digits[:, :61]  # 61 columns: padding bits in the last byte
    model = BernoulliMixture(n_components=4, random_state=0, device="cpu").fit(odd)
    packed = PackedBits(np.packbits(odd, axis=1, bitorder=bitorder), 61, bitorder=bitorder)
    np.testing.assert_array_equal(model.predict(packed), model.predict(odd))


def test_pickle_keeps_the_fit(digits):
    model = BernoulliMixture(n_components=6, random_state=0, device="cpu").fit(digits)
    model.predict(digits)  # opens the device: not pickled
    restored = pickle.loads(pickle.dumps(model))
    assert "_backend_cache" not in restored.__dict__
    np.testing.assert_array_equal(restored.predict(digits), model.predict(digits))
    np.testing.assert_array_equal(restored.score_samples(digits), model.score_samples(digits))
    assert restored.get_params() == model.get_params()


def test_random_state(digits):
    fit = lambda state: BernoulliMixture(5, random_state=state, device="cpu").fit(digits).means_
    np.testing.assert_array_equal(fit(4), fit(4))
    assert not np.array_equal(fit(4), fit(5))
    np.testing.assert_array_equal(fit(np.random.RandomState(9)), fit(np.random.RandomState(9)))


def test_the_gil_is_released_during_a_fit():
    """A Python thread counts while a long fit runs in another: with the GIL
    held by the fit it could not count at all until the fit returned."""
    rng = np.random.default_rng(0)
    X = (rng.uniform(size=(40000, 200)) < 0.3).astype(np.uint8)
    model = BernoulliMixture(n_components=16, max_iter=40, tol=0.0, random_state=0, device="cpu")
    fitting = threading.Thread(target=model.fit, args=(X,))
    counted = 0
    fitting.start()
    time.sleep(0.05)  # into the C call
    while fitting.is_alive():
        counted += 1
    fitting.join()
    assert model.n_iter_ == 40
    assert counted > 1000


BAD_VALUES = [
    (2, "X[1, 1] = 2.0 is not 0 or 1"),
    (-1, "Negative values.*X[1, 1] = -1.0 is not"),
    (0.5, "X[1, 1] = 0.5 is not 0 or 1"),
    (np.nan, "NaN or infinity: X[1, 1] = nan"),
    (np.inf, "NaN or infinity: X[1, 1] = inf"),
]


@pytest.mark.parametrize("value,message", BAD_VALUES)
def test_values_other_than_0_and_1(value, message):
    X = np.zeros((4, 3))
    X[1, 1] = value
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        BernoulliMixture(2, device="cpu").fit(X)
    model = BernoulliMixture(2, device="cpu").fit(np.eye(3))
    with pytest.raises(ValueError, match="is not 0 or 1"):
        model.predict(X)


def test_bad_shapes_and_text():
    model = BernoulliMixture(2, device="cpu")
    for X in (np.zeros(5), np.zeros((2, 2, 2)), np.zeros((0, 3)), [["0", "x"], ["1", "0"]]):
        with pytest.raises(ValueError):
            model.fit(X)
    model.fit([["0", "1"], ["1", "0"]])  # numbers as text, as numpy reads them
    np.testing.assert_array_equal(model.predict(np.eye(2, dtype=bool)), model.predict(np.eye(2)))
    model.fit(np.eye(4))
    with pytest.raises(ValueError, match="4 features"):
        model.predict(np.eye(3))
    with pytest.raises(ValueError, match="4 features"):
        model.predict(PackedBits(np.packbits(np.eye(3, dtype=np.uint8), axis=1), 3))
    with pytest.raises(ValueError, match="packed bytes per row"):
        PackedBits(np.zeros((2, 2), dtype=np.uint8), 20)
    with pytest.raises(ValueError, match="uint8"):
        PackedBits(np.zeros((2, 2)), 10)
    with pytest.raises(ValueError, match="n_features must be a whole number >= 1"):
        PackedBits(np.zeros((2, 0), dtype=np.uint8), 0)
    with pytest.raises(ValueError, match="bitorder must be 'big' or 'little'"):
        PackedBits(np.zeros((2, 2), dtype=np.uint8), 10, bitorder="middle")


@pytest.mark.parametrize(
    "params,message",
    [
        ({"n_components": 5}, "n_samples >= n_components.*n_samples = 3"),
        ({"n_components": 0}, "n_components must be a whole number >= 1"),
        ({"max_iter": 0}, "max_iter must be"),
        ({"tol": -1.0}, "tol must be"),
        ({"init_params": "best"}, "init_params must be one of"),
        ({"prior": (0.5, 2.0)}, "prior must be a pair"),
        ({"prior": 3}, "prior must be a pair"),
        ({"weights_init": [0.5, 0.5]}, "go together"),
        ({"weights_init": [1.0], "means_init": [[0.5] * 3]}, "weights_init must be"),
        (
            {"weights_init": [0.5, 0.5], "means_init": [[2.0] * 3, [0.5] * 3]},
            r"initial p\[0\]\[0\] = 2",
        ),
        ({"device": "gpu2"}, "invalid device 'gpu2'"),
        ({"device": 3}, "device must be a string"),
    ],
)
def test_bad_options(params, message):
    with pytest.raises(ValueError, match=message):
        BernoulliMixture(**{"n_components": 2, "device": "cpu", **params}).fit(np.eye(3))


def test_unfitted():
    from sklearn.exceptions import NotFittedError

    for method in ("predict", "predict_proba", "score_samples", "score", "bic", "aic"):
        with pytest.raises(NotFittedError):
            getattr(BernoulliMixture(2, device="cpu"), method)(np.eye(3))

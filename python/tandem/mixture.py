"""BernoulliMixture: tandem's EM as a scikit-learn estimator."""

import ctypes
import numbers

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _native

# numpy.packbits's big-endian bit order reversed: bit i of a byte to bit 7 - i
_REVERSED_BITS = np.array([int(format(b, "08b")[::-1], 2) for b in range(256)], dtype=np.uint8)


class PackedBits:
    """Binary rows packed 8 to a byte, as numpy.packbits(X, axis=1) writes
    them: `bits` is (n_samples, ceil(n_features / 8)) uint8, `n_features`
    X's columns. With bitorder="little" and rows a multiple of 8 bytes long,
    tandem reads the array in place; otherwise it repacks it once."""

    def __init__(self, bits, n_features, bitorder="big"):
        bits = np.asarray(bits)
        if bits.dtype != np.uint8 or bits.ndim != 2:
            raise ValueError(
                "PackedBits needs a 2-D uint8 array (numpy.packbits(X, axis=1)), got %s of "
                "shape %s" % (bits.dtype, bits.shape)
            )
        if not isinstance(n_features, numbers.Integral) or n_features < 1:
            raise ValueError("n_features must be a whole number >= 1, got %r" % (n_features,))
        if bits.shape[1] != (n_features + 7) // 8:
            raise ValueError(
                "%d packed bytes per row, but %d features need %d"
                % (bits.shape[1], n_features, (n_features + 7) // 8)
            )
        if bitorder not in ("big", "little"):
            raise ValueError("bitorder must be 'big' or 'little', got %r" % (bitorder,))
        self.bits, self.n_features, self.bitorder = bits, int(n_features), bitorder

    @property
    def shape(self):
        return (self.bits.shape[0], self.n_features)


def _words(little_bits, n_features):
    """Rows of little-endian-ordered bytes as tandem's rows of 64-bit words
    (bit c % 64 of word c / 64 is value c), without a copy when they already are."""
    n, width = little_bits.shape
    words = (n_features + 63) // 64
    if width == 8 * words and little_bits.flags.c_contiguous and _native.LITTLE_ENDIAN:
        return little_bits.view(np.uint64)
    padded = np.zeros((n, 8 * words), dtype=np.uint8)
    padded[:, :width] = little_bits
    rows = padded.view("<u8")
    return rows if _native.LITTLE_ENDIAN else rows.astype(np.uint64)


def _check_binary(X):
    """The first value other than 0 and 1, named: NaN or infinity first, then
    a negative value, then any other (2, 0.5)."""
    if X.dtype == np.bool_:
        return
    kinds = (
        (~np.isfinite(X) if X.dtype.kind == "f" else None, "Input X contains NaN or infinity: "),
        (X < 0, "Negative values in data passed to BernoulliMixture: "),
        ((X != 0) & (X != 1), ""),
    )
    for bad, what in kinds:
        if bad is not None and bad.any():
            row, col = np.argwhere(bad)[0]
            raise ValueError(
                "%sX[%d, %d] = %r is not 0 or 1: BernoulliMixture takes binary data "
                "(0/1 of any dtype, bool, or tandem.PackedBits)"
                % (what, row, col, X[row, col].item())
            )


class _Data:
    """X as libtandem's tdm_binary_data, over arrays this object keeps alive."""

    def __init__(self, words, n_features):
        self.words = np.ascontiguousarray(words)
        rows = self.words.shape[0]
        self.struct = _native.BinaryData(
            rows=rows,
            cols=n_features,
            row_words=(n_features + 63) // 64,
            bits=self.words.ctypes.data_as(ctypes.POINTER(ctypes.c_uint64)),
            total_rows=rows,
        )


class BernoulliMixture(DensityMixin, BaseEstimator):
    """A mixture of multivariate Bernoulli distributions fitted by EM, on
    any OpenCL device or tandem's cpu backend.

    Parameters follow scikit-learn's GaussianMixture where they exist:
    n_components (K), max_iter, tol (on the mean log-likelihood per sample),
    n_init (restarts; the best log-likelihood is kept), init_params
    ("kmeans++", "random_rows" or "random_responsibilities"), random_state;
    weights_init and means_init start EM from given parameters instead.
    prior=(a, b) is a Beta(a, b) prior on every p (MAP; (1, 1) is maximum
    likelihood), device is "auto", "cpu", "opencl", "opencl:P" or
    "opencl:P:D" (tandem.devices() lists them).

    Fitted: weights_ (K), means_ (K x n_features: each component's p),
    converged_, n_iter_, lower_bound_ (the final mean log-likelihood per
    sample), history_ (the mean log-likelihood per iteration), n_features_in_.
    """

    def __init__(
        self,
        n_components=1,
        *,
        max_iter=100,
        tol=1e-4,
        n_init=1,
        init_params="kmeans++",
        prior=(2.0, 2.0),
        random_state=None,
        weights_init=None,
        means_init=None,
        device="auto",
    ):
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.init_params = init_params
        self.prior = prior
        self.random_state = random_state
        self.weights_init = weights_init
        self.means_init = means_init
        self.device = device

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True  # 0 and 1: a negative value is bad input
        return tags

    # ---------- input ----------

    def _data(self, X, reset):
        if isinstance(X, PackedBits):
            if reset:
                self.n_features_in_ = X.n_features
            elif X.n_features != self.n_features_in_:
                raise ValueError(
                    "X has %d features, but BernoulliMixture is expecting %d features as input"
                    % (X.n_features, self.n_features_in_)
                )
            bits = X.bits if X.bitorder == "little" else _REVERSED_BITS[X.bits]
            return _Data(_words(bits, X.n_features), X.n_features)
        X = validate_data(self, X, reset=reset, dtype=None, ensure_all_finite=False)
        if X.dtype.kind in "OUS":
            X = X.astype(np.float64)  # numbers held as objects or text; other text fails here
        if np.iscomplexobj(X):
            raise ValueError("X must hold the numbers 0 and 1, got dtype %s" % X.dtype)
        bits = np.packbits(self._as_binary(X), axis=1, bitorder="little")
        return _Data(_words(bits, X.shape[1]), X.shape[1])

    def _as_binary(self, X):
        """X as bools, once every value is checked to be 0 or 1."""
        _check_binary(X)
        return X.astype(bool, copy=False)

    def _backend(self):
        backend = getattr(self, "_backend_cache", None)
        if backend is None or backend[0] != self.device:
            if not isinstance(self.device, str):
                raise ValueError("device must be a string such as 'auto', 'cpu' or 'opencl:0:0'")
            backend = (self.device, _native.Backend(self.device))
            self._backend_cache = backend
        return backend[1]

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_backend_cache", None)  # a device handle: reopened after unpickling
        return state

    # ---------- fitting ----------

    def _options(self):
        options = _native.EmOptions()
        _native.lib.tdm_em_options_init(ctypes.byref(options))
        for name in ("n_components", "max_iter", "n_init"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError("%s must be a whole number >= 1, got %r" % (name, value))
        if not isinstance(self.tol, numbers.Real) or not self.tol >= 0:
            raise ValueError("tol must be a number >= 0, got %r" % (self.tol,))
        if self.init_params not in _native.INIT_NAMES:
            raise ValueError(
                "init_params must be one of %s, got %r"
                % (", ".join(_native.INIT_NAMES), self.init_params)
            )
        try:
            prior_a, prior_b = (float(v) for v in self.prior)
        except (TypeError, ValueError):
            raise ValueError("prior must be a pair (a, b) of numbers >= 1, got %r" % (self.prior,))
        if not (prior_a >= 1 and prior_b >= 1):
            raise ValueError("prior must be a pair (a, b) of numbers >= 1, got %r" % (self.prior,))
        # An int is tandem's seed itself (random_state=1 is `tandem em`'s default
        # seed 1); None or a RandomState draws one.
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        if isinstance(self.random_state, numbers.Integral):
            seed = self.random_state
        options.components = self.n_components
        options.max_iter = self.max_iter
        options.tol = float(self.tol)
        options.n_init = self.n_init
        options.init = _native.INIT_NAMES.index(self.init_params)
        options.seed = int(seed)
        options.prior_a, options.prior_b = prior_a, prior_b
        return options

    def _given_start(self, options, n_features):
        """weights_init and means_init, kept alive in self._start during the fit."""
        if self.weights_init is None and self.means_init is None:
            return None
        if self.weights_init is None or self.means_init is None:
            raise ValueError("weights_init and means_init go together")
        K = self.n_components
        pi = np.ascontiguousarray(self.weights_init, dtype=np.float32)
        p = np.ascontiguousarray(self.means_init, dtype=np.float32)
        if pi.shape != (K,) or p.shape != (K, n_features):
            raise ValueError(
                "weights_init must be (%d,) and means_init (%d, %d), got %s and %s"
                % (K, K, n_features, pi.shape, p.shape)
            )
        options.init = _native.INIT_GIVEN
        options.initial_p = p.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        options.initial_pi = pi.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        return (p, pi)

    def fit(self, X, y=None):
        """Fits the mixture to X (n_samples x n_features of 0/1, or PackedBits)."""
        data = self._data(X, reset=True)
        options = self._options()
        if data.struct.rows < self.n_components:
            raise ValueError(
                "Expected n_samples >= n_components but got n_components = %d, n_samples = %d"
                % (self.n_components, data.struct.rows)
            )
        start = self._given_start(options, data.struct.cols)
        result = _native.EmResult()
        backend = self._backend()
        _native.check(
            _native.lib.tdm_em_fit(
                backend.handle,
                ctypes.byref(data.struct),
                ctypes.byref(options),
                ctypes.byref(result),
            )
        )
        del start
        try:
            K, D = result.components, result.cols
            self.means_ = np.ctypeslib.as_array(result.p, shape=(K, D)).astype(np.float64)
            self.weights_ = np.ctypeslib.as_array(result.pi, shape=(K,)).astype(np.float64)
            self.history_ = np.ctypeslib.as_array(result.history, shape=(result.iterations,)).copy()
            self.n_iter_ = int(result.iterations)
            self.converged_ = bool(result.converged)
            self.lower_bound_ = result.log_likelihood / data.struct.rows
        finally:
            _native.lib.tdm_em_result_free(ctypes.byref(result))
        return self

    def fit_predict(self, X, y=None):
        """Fits, then the most likely component of each sample."""
        return self.fit(X).predict(X)

    # ---------- using a fit ----------

    def _fitted(self):
        """The fitted parameters as libtandem's tdm_em_result (arrays kept alive)."""
        check_is_fitted(self, ("means_", "weights_"))
        p = np.ascontiguousarray(self.means_, dtype=np.float32)
        pi = np.ascontiguousarray(self.weights_, dtype=np.float32)
        result = _native.EmResult(components=p.shape[0], cols=p.shape[1])
        result.p = p.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        result.pi = pi.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        return result, (p, pi)

    def _call(self, function, X, out):
        result, keep = self._fitted()  # NotFittedError before any look at X
        data = self._data(X, reset=False)
        pointer = out.ctypes.data_as(ctypes.POINTER(np.ctypeslib.as_ctypes_type(out.dtype)))
        _native.check(
            function(
                self._backend().handle, ctypes.byref(data.struct), ctypes.byref(result), pointer
            )
        )
        del keep
        return out

    def _rows(self, X):
        return X.shape[0] if isinstance(X, PackedBits) else len(X)

    def predict(self, X):
        """The most likely component of each sample (ties: the first)."""
        out = np.empty(self._rows(X), dtype=np.int32)
        return self._call(_native.lib.tdm_em_predict, X, out).astype(np.intp)

    def predict_proba(self, X):
        """Each component's responsibility for each sample (n_samples x K)."""
        out = np.empty((self._rows(X), self._n_fitted_components()), dtype=np.float32)
        return self._call(_native.lib.tdm_em_predict_proba, X, out).astype(np.float64)

    def score_samples(self, X):
        """The log-likelihood of each sample under the mixture."""
        out = np.empty(self._rows(X), dtype=np.float64)
        return self._call(_native.lib.tdm_em_score_samples, X, out)

    def score(self, X, y=None):
        """The mean log-likelihood per sample."""
        return float(self.score_samples(X).mean())

    def _criterion(self, function, X):
        scores = self.score_samples(X)
        result, keep = self._fitted()
        result.log_likelihood = float(scores.sum())
        value = function(ctypes.byref(result), scores.shape[0])
        del keep
        return value

    def bic(self, X):
        """Bayesian information criterion, K D + K - 1 free parameters (lower is better)."""
        return self._criterion(_native.lib.tdm_em_bic, X)

    def aic(self, X):
        """Akaike information criterion (lower is better)."""
        return self._criterion(_native.lib.tdm_em_aic, X)

    def _n_fitted_components(self):
        check_is_fitted(self, ("means_", "weights_"))
        return self.means_.shape[0]

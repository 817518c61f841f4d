"""Emission distributions of `zoo.layers.hmm.HiddenMarkovModel`: p(x_t | z_t = k) for each of K states.

Each emission is a Keras layer whose weights the HMM creates (`build_states(num_states, dtype)`), with
`log_prob(x) -> [B, T, K]`, `sample(states, seed)`, `parameters()`/`set_parameters(...)` (probabilities,
means, covariances as NumPy; bad values raise a one-line `ZooError`) and `m_step(x, weights, ...)`, the
closed-form Baum-Welch update from posterior weights [B, T, K].

    from zoo.layers.hmm import HiddenMarkovModel
    from zoo.layers.hmm_emissions import GaussianEmission
    hmm = HiddenMarkovModel(3, GaussianEmission(2, covariance="full"))
"""

import math

import keras
import numpy as np
from keras import ops

from zoo.errors import ZooError
from zoo.layers.config import Configurable


def _array(name, value, shape, dtype):
    value = np.asarray(value, dtype=np.float64)
    if value.shape != tuple(shape):
        raise ZooError(f"{name} has shape {list(value.shape)}, expected {list(shape)}")
    if not np.all(np.isfinite(value)):
        raise ZooError(f"{name} has non-finite values; give finite numbers")
    return value.astype(dtype)


def check_probabilities(name, value, shape, dtype):
    """`value` as a `dtype` array of probability rows (last axis), or a one-line `ZooError`."""
    value = _array(name, value, shape, "float64")
    if np.any(value < 0):
        raise ZooError(f"{name} has negative probabilities (smallest {value.min():g}); give values in [0, 1]")
    sums = value.sum(axis=-1)
    if not np.allclose(sums, 1.0, rtol=0, atol=1e-6):
        worst = sums.flat[np.argmax(np.abs(sums - 1).ravel())]
        raise ZooError(f"{name} rows must sum to 1 (one sums to {worst:.6g}); normalise them")
    return value.astype(dtype)


def safe_log(p, dtype):
    """log p with zeros floored at the dtype's smallest normal number (finite logits)."""
    return np.log(np.maximum(p, np.finfo(dtype).tiny)).astype(dtype)


class Emission(Configurable, keras.layers.Layer):
    """Base class: holds `num_states` and the parameter dtype once `build_states` ran."""

    def build_states(self, num_states, dtype):
        """Creates the weights for `num_states` states in `dtype` (called by the HMM)."""
        self.num_states = num_states
        self.param_dtype = dtype
        self._make_weights(num_states, dtype)
        self.built = True


@keras.saving.register_keras_serializable(package="zoo")
class CategoricalEmission(Emission):
    """Observations are integer symbols in [0, num_symbols); p(x | k) = softmax(logits[k])[x].
    `set_parameters(emission_probs=[K, M])`."""

    def __init__(self, num_symbols, **kwargs):
        super().__init__(**kwargs)
        if int(num_symbols) < 1:
            raise ZooError(f"num_symbols={num_symbols} must be at least 1")
        self.num_symbols = int(num_symbols)

    def _make_weights(self, k, dtype):
        self.logits = self.add_weight(shape=(k, self.num_symbols), dtype=dtype, name="emission_logits",
                                      initializer=keras.initializers.RandomNormal(stddev=0.5))

    def probabilities(self):
        """[K, M] emission probabilities (tensor)."""
        return ops.softmax(self.logits, axis=-1)

    def log_prob(self, x):
        """[B, T] int symbols -> [B, T, K]. Symbols outside [0, M) are clipped (mask them)."""
        x = ops.clip(ops.cast(x, "int32"), 0, self.num_symbols - 1)
        table = ops.transpose(ops.log_softmax(self.logits, axis=-1))  # [M, K]
        return ops.take(table, x, axis=0)

    def sample(self, states, uniforms):
        """Symbols [B, T] for `states` [B, T] by inverse CDF from `uniforms` [B, T]."""
        cdf = ops.take(ops.cumsum(self.probabilities(), axis=-1), states, axis=0)  # [B, T, M]
        count = ops.sum(ops.cast(cdf <= ops.expand_dims(ops.cast(uniforms, cdf.dtype), -1), "int32"), axis=-1)
        return ops.minimum(count, self.num_symbols - 1)

    def parameters(self):
        return {"emission_probs": ops.convert_to_numpy(self.probabilities())}

    def set_parameters(self, emission_probs=None):
        if emission_probs is not None:
            p = check_probabilities("emission_probs", emission_probs, (self.num_states, self.num_symbols),
                                    self.param_dtype)
            self.logits.assign(safe_log(p, self.param_dtype))

    def check_observations(self, x, mask=None):
        """One-line `ZooError` unless the unmasked symbols are integers in [0, num_symbols)."""
        x = np.asarray(x)
        seen = x if mask is None else x[~np.asarray(mask, bool)]
        if seen.size and (np.any(seen < 0) or np.any(seen >= self.num_symbols) or np.any(seen != np.round(seen))):
            raise ZooError(f"observations must be integer symbols in [0, {self.num_symbols}); got values in "
                           f"[{seen.min():g}, {seen.max():g}]")

    def m_step(self, x, weights, pseudo_count=1e-6, **_):
        """Closed-form update: p(m | k) ∝ Σ weights[b, t, k]·[x_bt = m] + pseudo_count."""
        x = ops.clip(ops.cast(x, "int32"), 0, self.num_symbols - 1)
        onehot = ops.one_hot(x, self.num_symbols, dtype=weights.dtype)  # [B, T, M]
        counts = ops.einsum("btk,btm->km", weights, onehot) + pseudo_count
        self.logits.assign(ops.log(counts / ops.sum(counts, axis=-1, keepdims=True)))


@keras.saving.register_keras_serializable(package="zoo")
class GaussianEmission(Emission):
    """Observations are vectors [B, T, dim]; p(x | k) = N(x; loc[k], Σ_k). `covariance="diag"` (log standard
    deviations) or `"full"` (Σ_k = L_k L_kᵀ, L_k lower-triangular with a log-parameterised diagonal).
    `set_parameters(means=[K, D], covariances=[K, D] variances (diag) or [K, D, D] (full))`."""

    def __init__(self, dim, covariance="diag", **kwargs):
        super().__init__(**kwargs)
        if covariance not in ("diag", "full"):
            raise ZooError(f"covariance={covariance!r} is unknown; choose 'diag' or 'full'")
        if int(dim) < 1:
            raise ZooError(f"dim={dim} must be at least 1")
        self.dim, self.covariance = int(dim), covariance

    def _make_weights(self, k, dtype):
        d = self.dim
        self.loc = self.add_weight(shape=(k, d), dtype=dtype, name="loc",
                                   initializer=keras.initializers.RandomNormal(stddev=1.0))
        shape = (k, d) if self.covariance == "diag" else (k, d, d)
        self.scale_raw = self.add_weight(shape=shape, dtype=dtype, name="scale_raw", initializer="zeros")

    def scale_tril(self):
        """[K, D, D] Cholesky factors of the covariances (tensor)."""
        if self.covariance == "diag":
            return ops.exp(self.scale_raw)[..., None] * ops.eye(self.dim, dtype=self.scale_raw.dtype)
        eye = ops.eye(self.dim, dtype=self.scale_raw.dtype)
        lower = ops.tril(self.scale_raw, -1)
        return lower + eye * ops.exp(ops.diagonal(self.scale_raw, axis1=-2, axis2=-1))[..., None, :]

    def _check_dim(self, x):
        size = x.shape[-1] if len(x.shape) else None
        if len(x.shape) != 3 or (size is not None and size != self.dim):
            raise ZooError(f"Gaussian observations must have shape [batch, time, {self.dim}]; got "
                           f"{[None if s is None else int(s) for s in x.shape]}")

    def log_prob(self, x):
        """[B, T, D] -> [B, T, K]."""
        self._check_dim(x)
        x = ops.cast(x, self.loc.dtype)
        diff = ops.expand_dims(x, 2) - self.loc  # [B, T, K, D]
        const = -0.5 * self.dim * math.log(2 * math.pi)
        if self.covariance == "diag":
            z = diff * ops.exp(-self.scale_raw)
            log_det = ops.sum(self.scale_raw, axis=-1)
        else:
            eye = ops.eye(self.dim, dtype=self.loc.dtype) + ops.zeros_like(self.scale_raw)
            inverse = ops.solve_triangular(self.scale_tril(), eye, lower=True)  # L⁻¹ [K, D, D]
            z = ops.einsum("kij,btkj->btki", inverse, diff)
            log_det = ops.sum(ops.diagonal(self.scale_raw, axis1=-2, axis2=-1), axis=-1)
        return const - log_det - 0.5 * ops.sum(ops.square(z), axis=-1)

    def sample(self, states, normals):
        """Vectors [B, T, D] for `states` [B, T] from standard normals [B, T, D]."""
        loc = ops.take(self.loc, states, axis=0)
        scale = ops.take(self.scale_tril(), states, axis=0)  # [B, T, D, D]
        return loc + ops.einsum("btij,btj->bti", scale, ops.cast(normals, loc.dtype))

    def covariances(self):
        """[K, D] variances (diag) or [K, D, D] covariances, NumPy."""
        if self.covariance == "diag":
            return np.exp(2 * ops.convert_to_numpy(self.scale_raw))
        scale = ops.convert_to_numpy(self.scale_tril())
        return scale @ np.swapaxes(scale, -1, -2)

    def parameters(self):
        return {"means": ops.convert_to_numpy(self.loc), "covariances": self.covariances()}

    def set_parameters(self, means=None, covariances=None):
        k, d, dtype = self.num_states, self.dim, self.param_dtype
        if means is not None:
            self.loc.assign(_array("means", means, (k, d), dtype))
        if covariances is not None:
            self.scale_raw.assign(self._raw_from_covariances(covariances).astype(dtype))

    def _raw_from_covariances(self, covariances):
        k, d = self.num_states, self.dim
        if self.covariance == "diag":
            var = _array("covariances", covariances, (k, d), "float64")
            if np.any(var <= 0):
                raise ZooError(f"covariances (diagonal variances) must be positive; smallest is {var.min():g}")
            return 0.5 * np.log(var)
        cov = _array("covariances", covariances, (k, d, d), "float64")
        if not np.allclose(cov, np.swapaxes(cov, -1, -2), atol=1e-8):
            raise ZooError("covariances must be symmetric matrices; one is not")
        raw = np.zeros_like(cov)
        for i, c in enumerate(cov):
            try:
                chol = np.linalg.cholesky(c)
            except np.linalg.LinAlgError:
                eigenvalues = np.round(np.linalg.eigvalsh(c), 6).tolist()
                raise ZooError(f"covariances[{i}] is not positive definite (eigenvalues {eigenvalues}); give a "
                               "positive-definite matrix") from None
            raw[i] = np.tril(chol, -1) + np.diag(np.log(np.diag(chol)))
        return raw

    def check_observations(self, x, mask=None):
        """One-line `ZooError` unless `x` is [B, T, dim] with finite unmasked values."""
        x = np.asarray(x)
        self._check_dim(x)
        seen = x if mask is None else x[~np.asarray(mask, bool)]
        if not np.all(np.isfinite(seen)):
            raise ZooError("observations have NaN or infinite values at unmasked steps; mask those steps")

    def m_step(self, x, weights, pseudo_count=1e-6, min_variance=1e-6):
        """Closed-form update: weighted means and (co)variances, plus `min_variance` on the diagonal; a state
        with no weight keeps its mean (`pseudo_count` of it)."""
        x = ops.cast(x, weights.dtype)
        total = ops.sum(weights, axis=(0, 1))[:, None] + pseudo_count  # [K, 1]
        means = (ops.einsum("btk,btd->kd", weights, x) + pseudo_count * self.loc) / total
        diff = ops.expand_dims(x, 2) - means  # [B, T, K, D]
        if self.covariance == "diag":
            var = ops.einsum("btk,btkd->kd", weights, ops.square(diff)) / total + min_variance
            self.scale_raw.assign(0.5 * ops.log(var))
        else:
            cov = ops.einsum("btk,btki,btkj->kij", weights, diff, diff) / total[..., None]
            cov = cov + min_variance * ops.eye(self.dim, dtype=cov.dtype)
            chol = ops.cholesky(cov)
            diag = ops.diagonal(chol, axis1=-2, axis2=-1)
            eye = ops.eye(self.dim, dtype=cov.dtype)
            self.scale_raw.assign(ops.tril(chol, -1) + eye * ops.log(diag)[..., None, :])
        self.loc.assign(means)

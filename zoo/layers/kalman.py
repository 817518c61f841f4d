"""A linear-Gaussian state-space model (the Kalman filter) as a differentiable Keras layer.

    z_0 ~ N(initial_mean, initial_covariance)
    z_{t+1} = transition z_t + control u_t + transition_offset + N(0, transition_noise)
    x_t     = observation z_t + observation_offset + N(0, observation_noise)

Every matrix is a weight, learnable by maximum likelihood (`call` returns the per-sequence negative
log-likelihood, a loss), or set explicitly with `set_parameters`. Covariances stay positive definite: a
Cholesky factor with a softplus diagonal (`covariance="cholesky"`) or log-variances (`"log_diagonal"`).
Missing steps follow TFP's convention: `mask` [B, T] is True where a step is missing or padding.
Computation is in the variable dtype (float32 under a `mixed_float16` policy: there is no float16 Cholesky).

`call(observations, padding_mask=None, controls=None)` returns the per-sequence negative log-likelihood [B]
(a loss). Its mask is not named `mask` so that Keras does not pass it a Keras mask, whose convention (True =
keep) is the opposite of this layer's (True = missing); the layer does not consume Keras masks (after
`keras.layers.Masking` it sees every step, and Keras warns that the mask is dropped): pass `padding_mask=`.

    import numpy as np
    from zoo.layers.kalman import LinearGaussianStateSpace
    kf = LinearGaussianStateSpace(state_dim=2, observation_dim=1, dtype="float64")
    kf.set_parameters(transition=[[1, 1], [0, 1]], observation=[[1, 0]], observation_noise=[[0.5]])
    x = np.random.default_rng(0).normal(size=(3, 50, 1))
    kf.log_likelihood(x).shape                  # (3,)
    means, covs = kf.smooth(x)                  # (3, 50, 2), (3, 50, 2, 2)
    kf.forecast(x, steps=5)["observation_means"].shape    # (3, 5, 1)
"""

import keras
import numpy as np
from keras import ops

from zoo.errors import ZooError
from zoo.layers import kalman_ops
from zoo.layers.config import Configurable

COVARIANCES = ("transition_noise", "observation_noise", "initial_covariance")


def _inverse_softplus(x):
    """log(exp(x) - 1) without overflow: x + log(1 - exp(-x)) (finite for any x > 0)."""
    x = np.asarray(x, np.float64)
    return x + np.log(-np.expm1(-x))


def _check_batch_time(name, shape, observations_shape):
    """A one-line `ZooError` when the known batch or time size of `name` differs from the observations'."""
    for axis, what in ((0, "batch"), (1, "time")):
        got, want = shape[axis], observations_shape[axis]
        if got is not None and want is not None and int(got) != int(want):
            raise ZooError(f"{name} has shape {tuple(shape)} but the observations have {tuple(observations_shape)}; "
                           f"their {what} sizes must match ([batch, time, ...])")


@keras.saving.register_keras_serializable(package="zoo")
class LinearGaussianStateSpace(Configurable, keras.layers.Layer):
    """Learnable linear-Gaussian state-space model with the verbs of TFP's `LinearGaussianStateSpaceModel`
    and pykalman: `log_likelihood`, `filter`, `smooth`, `forecast`, `sample`.

    Args:
        state_dim: S, the size of the hidden state.
        observation_dim: O, the size of an observation.
        control_dim: C, the size of the control inputs u_t (0: none).
        covariance: "cholesky" (full covariances, L Lᵀ with softplus on L's diagonal) or "log_diagonal"
            (diagonal covariances, exp of log-variances).
        offsets: learn a transition offset [S] and an observation offset [O] (TFP's noise `loc`s).
        learn_transition, learn_observation: whether the transition and observation matrices are trained.
        transition_initializer, observation_initializer, control_initializer: for F [S, S], H [O, S], B [S, C].
        noise_variance: the initial variance of the transition and observation noises (identity times this).
        initial_variance: the initial variance of the prior of z_0.

    `call(observations, padding_mask=None, controls=None)` returns the negative log-likelihood of each
    sequence [B]; `padding_mask` [B, T] is True where a step is missing (see the module docstring).
    """

    def __init__(self, state_dim, observation_dim, control_dim=0, covariance="cholesky", offsets=False,
                 learn_transition=True, learn_observation=True, transition_initializer="identity",
                 observation_initializer="identity", control_initializer="zeros", noise_variance=1.0,
                 initial_variance=1.0, **kwargs):
        kwargs.setdefault("autocast", False)  # inputs and weights are cast to the variable dtype explicitly
        super().__init__(**kwargs)
        if covariance not in ("cholesky", "log_diagonal"):
            raise ZooError(f"unknown covariance={covariance!r}; choose cholesky or log_diagonal")
        for name, value in (("state_dim", state_dim), ("observation_dim", observation_dim)):
            if int(value) < 1:
                raise ZooError(f"{name} must be at least 1, got {value}")
        self.state_dim, self.observation_dim, self.control_dim = int(state_dim), int(observation_dim), \
            int(control_dim)
        self.covariance, self.offsets = covariance, bool(offsets)
        self.learn_transition, self.learn_observation = bool(learn_transition), bool(learn_observation)
        self.transition_initializer = keras.initializers.get(transition_initializer)
        self.observation_initializer = keras.initializers.get(observation_initializer)
        self.control_initializer = keras.initializers.get(control_initializer)
        self.noise_variance, self.initial_variance = float(noise_variance), float(initial_variance)
        self._make_weights()

    # === Weights ===

    def _shapes(self):
        s, o = self.state_dim, self.observation_dim
        return {"transition": (s, s), "observation": (o, s), "control": (s, self.control_dim),
                "transition_offset": (s,), "observation_offset": (o,), "initial_mean": (s,),
                "transition_noise": (s, s), "observation_noise": (o, o), "initial_covariance": (s, s)}

    def _make_weights(self):
        s, o = self.state_dim, self.observation_dim
        self.transition = self.add_weight(shape=(s, s), initializer=self.transition_initializer,
                                          trainable=self.learn_transition, name="transition")
        self.observation = self.add_weight(shape=(o, s), initializer=self.observation_initializer,
                                           trainable=self.learn_observation, name="observation")
        self.control = None
        if self.control_dim:
            self.control = self.add_weight(shape=(s, self.control_dim), initializer=self.control_initializer,
                                           name="control")
        self.transition_offset = self.observation_offset = None
        if self.offsets:
            self.transition_offset = self.add_weight(shape=(s,), initializer="zeros", name="transition_offset")
            self.observation_offset = self.add_weight(shape=(o,), initializer="zeros", name="observation_offset")
        self.initial_mean = self.add_weight(shape=(s,), initializer="zeros", name="initial_mean")
        for name, size, variance in (("transition_noise", s, self.noise_variance),
                                     ("observation_noise", o, self.noise_variance),
                                     ("initial_covariance", s, self.initial_variance)):
            raw = self._to_raw(name, np.eye(size) * variance)
            # Plain attributes (raw_transition_noise, ...), so tf.train.Checkpoint tracks them by name.
            setattr(self, f"raw_{name}", self.add_weight(shape=raw.shape,
                                                         initializer=keras.initializers.Constant(raw),
                                                         name=f"{name}_{self.covariance}"))
        self.built = True

    def _to_raw(self, name, matrix):
        if self.covariance == "log_diagonal":
            if np.any(np.abs(matrix - np.diag(np.diag(matrix))) > 0):
                raise ZooError(f"{name} has off-diagonal entries but covariance='log_diagonal' keeps only "
                               "variances; give a diagonal matrix or use covariance='cholesky'")
            return np.log(np.diag(matrix))
        chol = np.linalg.cholesky(matrix)
        return np.tril(chol, -1) + np.diag(_inverse_softplus(np.diag(chol)))

    def _covariance(self, name, dtype):
        raw = ops.cast(getattr(self, f"raw_{name}"), dtype)
        if self.covariance == "log_diagonal":
            return ops.diag(ops.exp(raw))
        chol = ops.tril(raw, -1) + ops.diag(ops.softplus(ops.diagonal(raw)))
        return ops.matmul(chol, ops.transpose(chol))

    def parameters(self, dtype=None):
        """The model's matrices as a `kalman_ops.Params` of tensors (in `dtype`, default the variable dtype)."""
        dtype = dtype or self.variable_dtype

        def cast(v):
            return None if v is None else ops.cast(v, dtype)

        return kalman_ops.Params(
            transition=cast(self.transition), observation=cast(self.observation),
            transition_noise=self._covariance("transition_noise", dtype),
            observation_noise=self._covariance("observation_noise", dtype),
            initial_mean=cast(self.initial_mean),
            initial_covariance=self._covariance("initial_covariance", dtype),
            transition_offset=cast(self.transition_offset), observation_offset=cast(self.observation_offset),
            control=cast(self.control))

    def set_parameters(self, **values):
        """Sets any of transition, observation, control, transition_offset, observation_offset, initial_mean,
        transition_noise, observation_noise, initial_covariance to explicit values. A covariance must be
        symmetric positive definite (a vector is read as the variances of a diagonal one); a wrong shape or
        a non-positive-definite covariance raises a one-line `ZooError` and changes nothing."""
        shapes, updates = self._shapes(), []
        for name, value in values.items():
            if name not in shapes:
                raise ZooError(f"unknown parameter {name!r}; choose from {', '.join(shapes)}")
            value = np.asarray(value, np.float64)
            if name in COVARIANCES and value.ndim == 1:
                value = np.diag(value)
            if value.shape != shapes[name]:
                raise ZooError(f"{name} has shape {value.shape}, expected {shapes[name]} (state_dim "
                               f"{self.state_dim}, observation_dim {self.observation_dim}, control_dim "
                               f"{self.control_dim})")
            if not np.all(np.isfinite(value)):
                raise ZooError(f"{name} has non-finite entries; give finite numbers")
            if name in COVARIANCES:
                if np.max(np.abs(value - value.T)) > 1e-8 * max(1.0, np.max(np.abs(value))):
                    raise ZooError(f"{name} is not symmetric; give a symmetric positive-definite matrix")
                smallest = float(np.linalg.eigvalsh(value).min())
                if smallest <= 0:
                    raise ZooError(f"{name} is not positive definite (smallest eigenvalue {smallest:.3g}); "
                                   "give a symmetric positive-definite matrix")
                updates.append((getattr(self, f"raw_{name}"), self._to_raw(name, value)))
            else:
                variable = getattr(self, name)
                if variable is None:
                    raise ZooError(f"this layer has no {name}; create it with "
                                   f"{'offsets=True' if 'offset' in name else 'control_dim > 0'}")
                updates.append((variable, value))
        for variable, value in updates:
            variable.assign(value.astype(variable.dtype))
        return self

    # === Inputs ===

    def _inputs(self, observations, mask=None, controls=None):
        """Checks the (static) shapes with one-line `ZooError`s; casts to the variable dtype."""
        observations = ops.convert_to_tensor(observations)
        if len(observations.shape) != 3 or observations.shape[-1] != self.observation_dim:
            raise ZooError(f"observations have shape {tuple(observations.shape)}; give [batch, time, "
                           f"observation_dim={self.observation_dim}]")
        observations = ops.cast(observations, self.variable_dtype)
        if mask is not None:
            mask = ops.convert_to_tensor(mask)
            if len(mask.shape) != 2:
                raise ZooError(f"mask has shape {tuple(mask.shape)}; give [batch, time] (True = missing)")
            _check_batch_time("mask", mask.shape, observations.shape)
            mask = ops.cast(mask, "bool")
        if controls is not None:
            if not self.control_dim:
                raise ZooError("controls were given but the layer has control_dim=0; create it with control_dim")
            controls = ops.cast(ops.convert_to_tensor(controls), self.variable_dtype)
            if len(controls.shape) != 3 or controls.shape[-1] != self.control_dim:
                raise ZooError(f"controls have shape {tuple(controls.shape)}; give [batch, time, "
                               f"control_dim={self.control_dim}]")
            _check_batch_time("controls", controls.shape, observations.shape)
        return observations, mask, controls

    # === Verbs ===

    def call(self, observations, padding_mask=None, controls=None):
        """The negative log-likelihood of each sequence [B] (a loss for `fit` or the trainer); `padding_mask`
        [B, T] is True where a step is missing (not named `mask`: Keras would pass its own, True = keep)."""
        return -self.log_likelihood(observations, mask=padding_mask, controls=controls)

    def compute_output_shape(self, observations_shape, *args, **kwargs):
        return (observations_shape[0],)

    def log_likelihood(self, observations, mask=None, controls=None, per_step=False):
        """log p(x) of observations [B, T, O]: [B], or [B, T] with `per_step` (0 at masked steps)."""
        observations, mask, controls = self._inputs(observations, mask, controls)
        return kalman_ops.log_likelihood(self.parameters(), observations, mask, controls, per_step=per_step)

    def filter(self, observations, mask=None, controls=None):
        """The forward filter: a dict with TFP's `FilterResults` fields: log_likelihoods [B, T],
        filtered_means/covs (given x_0..x_t), predicted_means/covs (z_{t+1} given x_0..x_t),
        observation_means/covs (x_t given x_0..x_{t-1})."""
        observations, mask, controls = self._inputs(observations, mask, controls)
        return kalman_ops.filter_sequence(self.parameters(), observations, mask, controls)

    def smooth(self, observations, mask=None, controls=None):
        """The RTS smoother: (smoothed means [B, T, S], smoothed covariances [B, T, S, S])."""
        params = self.parameters()
        observations, mask, controls = self._inputs(observations, mask, controls)
        return kalman_ops.smooth(params, kalman_ops.filter_sequence(params, observations, mask, controls))

    def forecast(self, observations, steps, mask=None, controls=None, future_controls=None):
        """The `steps` steps after the data: dict of state_means [B, k, S], state_covs, observation_means
        [B, k, O], observation_covs. `future_controls` [B, k, C] are the controls at times T, T+1, ...
        (the transition into step T uses `controls[:, -1]`)."""
        if int(steps) < 1:
            raise ZooError(f"forecast steps must be at least 1, got {steps}")
        observations, mask, controls = self._inputs(observations, mask, controls)
        if future_controls is not None:
            future_controls = ops.cast(ops.convert_to_tensor(future_controls), self.variable_dtype)
        return kalman_ops.forecast(self.parameters(), observations, int(steps), mask, controls, future_controls)

    def sample(self, num_timesteps, batch_size=1, seed=None, controls=None):
        """Draws (states [B, T, S], observations [B, T, O]); the same integer `seed` gives the same draw."""
        if controls is not None:
            controls = ops.cast(ops.convert_to_tensor(controls), self.variable_dtype)
        return kalman_ops.sample(self.parameters(), int(num_timesteps), int(batch_size), seed=seed,
                                 controls=controls, dtype=self.variable_dtype)

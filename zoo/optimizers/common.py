"""Pieces shared by the zoo optimizers: hyper-parameter checks, the t_k/θ_k recursion, compute dtypes.

The accelerated methods (Nesterov's FGM, OGM) need a scalar sequence θ_0 = 1,
θ_{k+1} = (1 + √(1 + 4θ_k²))/2 (OGM uses 8 instead of 4 for its last step). It has no closed form, so
`ThetaState` keeps θ_k in one optimizer variable: `update_step` (run once per model variable) only reads
it, and `apply` advances it once per real step, so it stays in step with `iterations` under
`tf.distribute` and gradient accumulation, and is saved in checkpoints.
"""

import math
import numbers

import keras
import tensorflow as tf
from keras import ops

from zoo.errors import ZooError


def check_learning_rate(owner, learning_rate):
    """A non-negative float (ints are accepted), a `LearningRateSchedule`, or a callable."""
    if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule) or callable(learning_rate):
        return learning_rate
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real):
        raise ZooError(
            f"{owner}: learning_rate must be a float, a LearningRateSchedule or a callable, got {learning_rate!r}"
        )
    if not math.isfinite(learning_rate) or learning_rate < 0:
        raise ZooError(f"{owner}: learning_rate must be a finite number >= 0, got {learning_rate!r}")
    return float(learning_rate)


def check_momentum(owner, momentum, name="momentum"):
    """A float in [0, 1): momentum 1 never forgets, so the iterates do not converge."""
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        raise ZooError(f"{owner}: {name} must be a float in [0, 1), got {momentum!r}")
    if not 0.0 <= momentum < 1.0:
        raise ZooError(f"{owner}: {name} must be in [0, 1), got {momentum!r}")
    return float(momentum)


def check_curvature(owner, mu, L, allow_zero_mu=False):
    """0 < mu <= L (0 <= mu with `allow_zero_mu`): strong convexity and smoothness constants."""
    for name, value in (("mu", mu), ("L", L)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ZooError(f"{owner}: {name} must be a finite number, got {value!r}")
    if L <= 0:
        raise ZooError(f"{owner}: L (the gradient's Lipschitz constant) must be > 0, got {L!r}")
    if mu < 0 or (mu == 0 and not allow_zero_mu):
        raise ZooError(f"{owner}: mu must be {'>=' if allow_zero_mu else '>'} 0, got {mu!r}")
    if mu > L:
        raise ZooError(f"{owner}: mu must be <= L, got mu={mu!r} > L={L!r}")
    return float(mu), float(L)


def compute_dtype(dtype):
    """The dtype to do update arithmetic in: float32 for 16-bit variables, else the variable's own."""
    dtype = keras.backend.standardize_dtype(dtype)
    return "float32" if dtype in ("float16", "bfloat16") else dtype


def dense(gradient, dtype):
    """`gradient` (a tensor or `tf.IndexedSlices`) as a dense tensor of `dtype`."""
    return ops.cast(tf.convert_to_tensor(gradient), dtype)


def next_theta(theta, factor=4.0):
    """θ_{k+1} = (1 + √(1 + factor·θ_k²)) / 2 (factor 4: Nesterov's t_k; 8: OGM's last step)."""
    return (1.0 + ops.sqrt(1.0 + factor * ops.square(theta))) / 2.0


class ThetaState:
    """Mixin for a `keras.optimizers.Optimizer`: keeps θ_k (see the module docstring) in `self._theta`.

    Subclasses set `self._uses_theta`, call `_build_theta()` in `build` and may override `_theta_factor(k)`.
    """

    def _build_theta(self):
        self._theta = self.add_variable(
            (), initializer="ones", dtype="float32", aggregation="only_first_replica", name="theta"
        )

    def _theta_factor(self, k):
        del k
        return 4.0

    def _theta_pair(self, k):
        """(θ_k, θ_{k+1}) as float32 scalars, for the update at 0-based step `k`."""
        theta = tf.convert_to_tensor(self._theta)
        return theta, next_theta(theta, self._theta_factor(k))

    def apply(self, grads, trainable_variables=None):
        if not self._uses_theta:
            return super().apply(grads, trainable_variables)
        before = tf.convert_to_tensor(self.iterations)
        super().apply(grads, trainable_variables)
        if not self.built:  # no gradients at all: nothing happened
            return
        _, following = self._theta_pair(before)
        stepped = ops.greater(tf.convert_to_tensor(self.iterations), before)
        self._theta.assign(ops.where(stepped, following, tf.convert_to_tensor(self._theta)))


def add_copies(optimizer, variables, name):
    """One slot per variable, initialised to the variable's value (`None` where Keras skips a variable)."""
    slots = optimizer.add_optimizer_variables(variables, name)
    for slot, variable in zip(slots, variables):
        if slot is not None:
            optimizer.assign(slot, tf.convert_to_tensor(variable))
    return slots

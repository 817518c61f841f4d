"""Nesterov's accelerated gradient (1983) in its two-sequence form."""

import math

import keras
from keras import ops

from zoo.optimizers.common import (
    ThetaState,
    add_copies,
    check_curvature,
    check_learning_rate,
    check_momentum,
    compute_dtype,
    dense,
)


@keras.saving.register_keras_serializable(package="zoo")
class Nesterov(ThetaState, keras.optimizers.Optimizer):
    """Nesterov's accelerated gradient: y_{k+1} = x_k − α∇f(x_k), x_{k+1} = y_{k+1} + β_k(y_{k+1} − y_k).

    The model variable holds x_k, the point where gradients are taken; the slot `gradient_step` holds y_k
    (y_0 = x_0), the sequence the rates are about (`primary_iterate`).

    - `momentum=None`: the fast gradient method (FGM/FISTA without prox), β_k = (t_k − 1)/t_{k+1} with
      t_0 = 1, t_{k+1} = (1 + √(1 + 4t_k²))/2. With α = 1/L on an L-smooth convex f:
      f(y_N) − f* ≤ L‖x_0 − x*‖²/(2t_{N−1}²) ≤ 2L‖x_0 − x*‖²/(N + 1)².
    - `momentum=β`: the constant-momentum scheme for μ-strongly convex f (β = (√κ−1)/(√κ+1), α = 1/L),
      f(y_N) − f* ≤ (1 − 1/√κ)^N (f(x_0) − f* + μ‖x_0 − x*‖²/2). Its iterates x_k are exactly those of
      `keras.optimizers.SGD(α, momentum=β, nesterov=True)`, whose velocity m_k gives y_k = x_k − β·m_k.

    Args:
        learning_rate: α, a float >= 0, a `LearningRateSchedule` or a callable.
        momentum: `None` for the t_k schedule, or a constant β in [0, 1).
        **kwargs: the base optimizer's arguments.

    Example:

    ```python
    optimizer = Nesterov.from_curvature(mu=0.0, L=4.0)   # FGM with α = 1/4
    optimizer = Nesterov.from_curvature(mu=1.0, L=100.0)  # α = 1/100, β = 9/11
    ```
    """

    def __init__(self, learning_rate=0.01, momentum=None, name=None, **kwargs):
        super().__init__(learning_rate=check_learning_rate("Nesterov", learning_rate), name=name, **kwargs)
        self.momentum = None if momentum is None else check_momentum("Nesterov", momentum)
        self._uses_theta = self.momentum is None

    @classmethod
    def from_curvature(cls, mu, L, **kwargs):
        """α = 1/L and β = (√κ − 1)/(√κ + 1); `mu=0` gives the t_k schedule (FGM)."""
        mu, L = check_curvature(cls.__name__, mu, L, allow_zero_mu=True)
        momentum = None
        if mu > 0:
            root = math.sqrt(L / mu)
            momentum = (root - 1.0) / (root + 1.0)
        return cls(learning_rate=1.0 / L, momentum=momentum, **kwargs)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._gradient_steps = add_copies(self, variables, "gradient_step")
        if self._uses_theta:
            self._build_theta()

    def primary_iterate(self, variable):
        """y_k for a model variable: the last gradient step, where the rates above hold."""
        return self._gradient_steps[self._get_variable_index(variable)]

    def update_step(self, gradient, variable, learning_rate):
        dtype = compute_dtype(variable.dtype)
        k = self.iterations
        if self._uses_theta:
            t, t_next = self._theta_pair(k)
            beta = ops.cast((t - 1.0) / t_next, dtype)
        else:
            beta = ops.cast(self.momentum, dtype)
        slot = self._gradient_steps[self._get_variable_index(variable)]
        x = ops.cast(variable, dtype)
        # y_0 = x_0 even if the weights changed after `build` (e.g. loaded).
        y_prev = ops.where(ops.equal(k, 0), x, ops.cast(slot, dtype))
        y = x - ops.cast(learning_rate, dtype) * dense(gradient, dtype)
        self.assign(variable, y + beta * (y - y_prev))
        self.assign(slot, y)

    def get_config(self):
        config = super().get_config()
        config["momentum"] = self.momentum
        return config

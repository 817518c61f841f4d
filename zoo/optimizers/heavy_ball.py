"""Polyak's heavy-ball method."""

import math

import keras
from keras import ops

from zoo.optimizers.common import check_curvature, check_learning_rate, check_momentum, compute_dtype, dense


@keras.saving.register_keras_serializable(package="zoo")
class HeavyBall(keras.optimizers.Optimizer):
    """Polyak's heavy ball: x_{k+1} = x_k − α∇f(x_k) + β(x_k − x_{k−1}), with x_{−1} = x_0.

    The slot `velocity` holds x_k − x_{k−1}. With a constant α this is step for step what
    `keras.optimizers.SGD(learning_rate=α, momentum=β)` does (and with a schedule α_k too); this class
    adds the optimal tuning for quadratics with spectrum in [μ, L] (`from_curvature`), which converges
    like ((√κ−1)/(√κ+1))^k there (κ = L/μ). Heavy ball is not accelerated on general smooth strongly
    convex functions (Lessard, Recht & Packard, 2016, give a 3-cycle); use `Nesterov` there.

    Args:
        learning_rate: α, a float >= 0, a `LearningRateSchedule` or a callable.
        momentum: β in [0, 1).
        **kwargs: the base optimizer's arguments (`weight_decay`, `clipnorm`, `use_ema`, ...).

    Example:

    ```python
    optimizer = HeavyBall.from_curvature(mu=1.0, L=100.0)  # α = 4/121, β = (9/11)²
    model.compile(optimizer=optimizer, loss="mse")
    ```
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, name=None, **kwargs):
        super().__init__(learning_rate=check_learning_rate("HeavyBall", learning_rate), name=name, **kwargs)
        self.momentum = check_momentum("HeavyBall", momentum)

    @classmethod
    def from_curvature(cls, mu, L, **kwargs):
        """The tuning that minimises the worst rate on quadratics with μI ⪯ ∇²f ⪯ LI:

        α = 4/(√L + √μ)², β = ((√κ − 1)/(√κ + 1))².
        """
        mu, L = check_curvature(cls.__name__, mu, L)
        root = math.sqrt(L / mu)
        return cls(
            learning_rate=4.0 / (math.sqrt(L) + math.sqrt(mu)) ** 2,
            momentum=((root - 1.0) / (root + 1.0)) ** 2,
            **kwargs,
        )

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._velocities = self.add_optimizer_variables(variables, "velocity")

    def update_step(self, gradient, variable, learning_rate):
        dtype = compute_dtype(variable.dtype)
        velocity = self._velocities[self._get_variable_index(variable)]
        lr = ops.cast(learning_rate, dtype)
        v = self.momentum * ops.cast(velocity, dtype) - lr * dense(gradient, dtype)
        self.assign(velocity, v)
        self.assign(variable, ops.cast(variable, dtype) + v)

    def get_config(self):
        config = super().get_config()
        config["momentum"] = self.momentum
        return config

"""Kim & Fessler's optimized gradient method (OGM)."""

import numbers

import keras
import tensorflow as tf
from keras import ops

from zoo.errors import ZooError
from zoo.optimizers.common import ThetaState, add_copies, check_learning_rate, compute_dtype, dense


@keras.saving.register_keras_serializable(package="zoo")
class OGM(ThetaState, keras.optimizers.Optimizer):
    """The optimized gradient method (Kim & Fessler, Math. Program. 2016), for L-smooth convex f.

    With θ_0 = 1, the model variable y_k (where gradients are taken) and the slot `gradient_step` x_k
    (x_0 = y_0), step k does

        x_{k+1} = y_k − α∇f(y_k)
        θ_{k+1} = (1 + √(1 + 4θ_k²))/2, or (1 + √(1 + 8θ_k²))/2 at the last step k + 1 = N
        y_{k+1} = x_{k+1} + ((θ_k − 1)/θ_{k+1})(x_{k+1} − x_k) + (θ_k/θ_{k+1})(x_{k+1} − y_k).

    With α = 1/L and `total_steps=N`, the model variable after N steps satisfies
    f(y_N) − f* ≤ L‖y_0 − x*‖²/(2θ_N²) ≤ L‖y_0 − x*‖²/((N + 1)(N + 1 + √2)), about half of Nesterov's FGM
    bound and exactly the best any first-order method can guarantee (Drori, 2017). The bound needs N in
    advance; stepping past it is an error (under XLA, where errors cannot be raised, the variables stay
    at y_N). Without `total_steps` every step uses the factor 4 ("OGM without the last step", still
    O(1/k²)).

    Args:
        learning_rate: α (1/L for the bound), a float >= 0, a `LearningRateSchedule` or a callable.
        total_steps: N, the number of steps to run, or `None`.
        **kwargs: the base optimizer's arguments.

    Example:

    ```python
    optimizer = OGM(learning_rate=1.0 / L, total_steps=100)
    for _ in range(100):
        optimizer.apply(grads_fn(variables), variables)
    ```
    """

    def __init__(self, learning_rate=0.01, total_steps=None, name=None, **kwargs):
        super().__init__(learning_rate=check_learning_rate("OGM", learning_rate), name=name, **kwargs)
        if total_steps is not None and (
            isinstance(total_steps, bool) or not isinstance(total_steps, numbers.Integral) or total_steps < 1
        ):
            raise ZooError(f"OGM: total_steps must be None or an integer >= 1, got {total_steps!r}")
        self.total_steps = None if total_steps is None else int(total_steps)
        self._uses_theta = True

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._gradient_steps = add_copies(self, variables, "gradient_step")
        self._build_theta()

    def primary_iterate(self, variable):
        """x_k for a model variable: the last plain gradient step."""
        return self._gradient_steps[self._get_variable_index(variable)]

    def _theta_factor(self, k):
        if self.total_steps is None:
            return 4.0
        return ops.where(ops.equal(k + 1, self.total_steps), 8.0, 4.0)

    def apply(self, grads, trainable_variables=None):
        if self.total_steps is None or not self.built:
            return super().apply(grads, trainable_variables)
        k = tf.convert_to_tensor(self.iterations)
        message = (
            f"OGM was built for total_steps={self.total_steps} and has taken them all: its bound holds for "
            f"the weights now; create a new OGM (or one with a larger total_steps) to keep optimizing"
        )
        if tf.executing_eagerly():
            if int(k) >= self.total_steps:
                raise ZooError(message)
            return super().apply(grads, trainable_variables)
        check = tf.debugging.assert_less(k, ops.cast(self.total_steps, k.dtype), message=message)
        with tf.control_dependencies([check]):
            return super().apply(grads, trainable_variables)

    def update_step(self, gradient, variable, learning_rate):
        dtype = compute_dtype(variable.dtype)
        k = self.iterations
        theta, theta_next = self._theta_pair(k)
        # 0 past total_steps: the update below then leaves the variable as it is (XLA drops the assert).
        active = 1.0 if self.total_steps is None else ops.cast(ops.less(k, self.total_steps), "float32")
        momentum = ops.cast(active * (theta - 1.0) / theta_next, dtype)
        correction = ops.cast(active * theta / theta_next, dtype)
        lr = ops.cast(active, dtype) * ops.cast(learning_rate, dtype)
        slot = self._gradient_steps[self._get_variable_index(variable)]
        y = ops.cast(variable, dtype)
        x = y - lr * dense(gradient, dtype)
        self.assign(variable, x + momentum * (x - ops.cast(slot, dtype)) + correction * (x - y))
        self.assign(slot, x)

    def get_config(self):
        config = super().get_config()
        config["total_steps"] = self.total_steps
        return config

"""Saddle-free Newton (Dauphin et al., NIPS 2014) in a Krylov subspace, as a Keras optimizer.

A Keras optimizer only sees gradients, but this method needs the loss itself (Hessian-vector products and
a line search). So it brings its own train step, `SaddleFreeNewton.train_step(model, data)`, which a model
opts into by deriving from `SecondOrderTraining` (or by being a `SecondOrderSequential`): `compile` + `fit`
and `zoo.training.Trainer` then just work. Nothing in Keras is patched; a plain `keras.Model` compiled with
this optimizer fails in `fit` with a `ZooError` saying how to opt in. Models with their own `train_step`
call `optimizer.minimize(loss_fn, variables)` instead.

```python
model = SecondOrderSequential([keras.Input((3,)), keras.layers.Dense(6, activation="tanh"), keras.layers.Dense(1)])
model.compile(optimizer=SaddleFreeNewton(krylov_dim=4, damping=1e-2), loss="mse")
model.fit(x, y, batch_size=32, epochs=10)

class Net(SecondOrderTraining, keras.Model):   # subclassed (or functional: Net(inputs, outputs)) models
    ...
```
"""

import math
import numbers

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from zoo.errors import ZooError
from zoo.ops import cross_replica_sum
from zoo.optimizers.common import check_learning_rate

_DAMPING_RANGE = (1e-10, 1e10)


@keras.saving.register_keras_serializable(package="zoo")
class SaddleFreeNewton(keras.optimizers.Optimizer):
    """Saddle-free Newton: θ ← θ − α(|H| + λI)⁻¹∇f, with |H| taken in a Krylov subspace.

    Each step builds `krylov_dim` Lanczos vectors of the Hessian H from g = ∇f (k Hessian-vector
    products, fully re-orthogonalised), takes the eigen-decomposition T = UΛUᵀ of the k×k tridiagonal
    matrix and steps by p(λ) = −α V U (|Λ| + λI)⁻¹ Uᵀ Vᵀ g. Along negative-curvature directions the step
    goes downhill where Newton's goes uphill, so saddles repel instead of attract. Once k reaches the
    number of distinct eigenvalues of H the step is the exact (|H| + λI)⁻¹ step.

    The damping λ is chosen by a line search on the same batch, as in the paper: the loss is evaluated at
    p(λ·r) for each r in `damping_search`, the best candidate is taken and becomes the next step's λ. If
    none lowers the loss the step is skipped and λ grows by max(`damping_search`). With
    `damping_search=None` the damping stays fixed and no extra loss evaluations are made.

    Under `tf.distribute` the gradient and every Hessian-vector product are summed over replicas before
    any inner product, and the line search compares global losses, so all replicas take the same step.
    The curvature arithmetic is float32 (float64 when a variable is float64), whatever the variable dtype.

    Args:
        learning_rate: α, the fraction of the damped step to take (1.0 for the full step); a float >= 0,
            a `LearningRateSchedule` or a callable.
        krylov_dim: k >= 1, Hessian-vector products per step (the graph grows with k).
        damping: the initial λ >= 0 (> 0 with a line search).
        damping_search: multipliers of λ tried each step, or `None` for a fixed λ.
        **kwargs: the base optimizer's arguments, except gradient accumulation and `loss_scale_factor`.

    Example:

    ```python
    model = SecondOrderSequential([keras.Input((3,)), keras.layers.Dense(1)])  # opts into this train step
    model.compile(optimizer=SaddleFreeNewton(krylov_dim=20, damping=1e-2), loss="mse")
    model.fit(x, y, batch_size=len(x), epochs=50)

    # or, in a custom train step / loop (`loss_fn()` returns this replica's share of the loss):
    loss = optimizer.minimize(lambda: ops.mean(ops.square(model(x) - y)), model.trainable_variables)
    ```
    """

    def __init__(self, learning_rate=1.0, krylov_dim=10, damping=1e-3, damping_search=(0.25, 1.0, 4.0),
                 name=None, **kwargs):
        for arg in ("gradient_accumulation_steps", "loss_scale_factor"):
            if kwargs.get(arg) is not None:
                raise ZooError(f"SaddleFreeNewton: {arg} is not supported (the step needs the whole loss at once)")
        super().__init__(learning_rate=check_learning_rate("SaddleFreeNewton", learning_rate), name=name, **kwargs)
        if isinstance(krylov_dim, bool) or not isinstance(krylov_dim, numbers.Integral) or krylov_dim < 1:
            raise ZooError(f"SaddleFreeNewton: krylov_dim must be an integer >= 1, got {krylov_dim!r}")
        if isinstance(damping, bool) or not isinstance(damping, numbers.Real) or not math.isfinite(damping) \
                or damping < 0:
            raise ZooError(f"SaddleFreeNewton: damping must be a finite number >= 0, got {damping!r}")
        search = tuple(damping_search or ())
        for factor in search:
            if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not 0 < factor < math.inf:
                raise ZooError(f"SaddleFreeNewton: damping_search must hold positive numbers, got {damping_search!r}")
        if search and damping == 0:
            raise ZooError("SaddleFreeNewton: damping must be > 0 when damping_search is on (the search scales "
                           "it); pass damping_search=None for a fixed, undamped step")
        self.krylov_dim = int(krylov_dim)
        self.damping = float(damping)
        self.damping_search = tuple(float(f) for f in search) or None
        self._stepping = False

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._damping = self.add_variable(
            (), initializer=keras.initializers.Constant(self.damping), dtype="float32",
            aggregation="only_first_replica", name="damping",
        )

    @property
    def current_damping(self):
        """The λ the next step starts from."""
        return self._damping

    # === Entry points ===

    def minimize(self, loss_fn, variables):
        """One step on `loss_fn()`, a function of `variables` (Keras variables); returns the loss before it.

        `loss_fn` must be deterministic: it is evaluated at trial weights (through a `keras.StatelessScope`,
        which also discards any state it updates). Under `tf.distribute` call it in replica context with
        `loss_fn()` returning this replica's share of the global loss (see `zoo.ops.weighted_mean`).
        """
        variables = list(variables)

        def evaluate(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return loss_fn()

        return self._step(variables, evaluate)

    def train_step(self, model, data):
        """Keras' default `train_step` (same loss, metrics and state updates) with a saddle-free Newton step."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if not model.built:  # a subclassed model's first step: create its variables symbolically (no compute)
            model(tf.nest.map_structure(lambda t: keras.KerasTensor(t.shape, t.dtype), x), training=True)
        trainable = list(model.trainable_variables)
        state = list(model.non_trainable_variables)
        snapshot = [tf.convert_to_tensor(v) for v in state]  # every evaluation sees the same seeds/statistics
        first = {}

        def evaluate(values):
            mapping = list(zip(trainable, values)) + list(zip(state, snapshot))
            with keras.StatelessScope(state_mapping=mapping) as scope:
                y_pred = model(x, training=True)
                loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            if not first:  # the forward pass at the current weights: keep its outputs and state updates
                first["y_pred"] = y_pred
                first["updates"] = [(v, scope.get_current_value(v)) for v in state + list(model.metrics_variables)]
            return loss

        loss = self._step(trainable, evaluate)
        for variable, value in first["updates"]:
            if value is not None:
                variable.assign(value)
        tracker = getattr(model, "_loss_tracker", None)
        if tracker is not None:
            batch = ops.shape(next(t for t in tf.nest.flatten(x) if t is not None))[0]
            tracker.update_state(loss, sample_weight=batch)
        return model.compute_metrics(x, y, first["y_pred"], sample_weight=sample_weight)

    def apply(self, grads, trainable_variables=None):
        if not self._stepping:
            raise ZooError(
                "SaddleFreeNewton needs the loss, not only gradients: build the model as "
                "zoo.optimizers.SecondOrderSequential([...]) or from a class deriving from "
                "(zoo.optimizers.SecondOrderTraining, keras.Model), or call optimizer.minimize(loss_fn, variables) "
                "in a custom train_step"
            )
        return super().apply(grads, trainable_variables)

    def update_step(self, gradient, variable, learning_rate):
        # `gradient` is the finished step from `_step` (learning rate and line search included).
        self.assign_add(variable, ops.cast(gradient, variable.dtype))

    # === The step ===

    def _step(self, variables, evaluate):
        """`evaluate(values)` returns this replica's share of the loss at `values`; returns the global loss."""
        if not self.built:
            self.build(variables)
        dtype = "float64" if any(keras.backend.standardize_dtype(v.dtype) == "float64" for v in variables) \
            else "float32"
        values = [tf.convert_to_tensor(v) for v in variables]
        sizes = [int(np.prod(v.shape)) for v in values]

        def flat(tensors):
            return tf.concat([tf.reshape(tf.cast(t, dtype), [-1]) for t in tensors], 0)

        def unflat(vector):
            parts = tf.split(vector, sizes)
            return [tf.cast(tf.reshape(p, v.shape), v.dtype) for p, v in zip(parts, values)]

        zero = tf.UnconnectedGradients.ZERO
        with tf.GradientTape(persistent=True) as outer:
            outer.watch(values)
            with tf.GradientTape() as inner:
                inner.watch(values)
                share = evaluate(values)
            local_grads = inner.gradient(share, values, unconnected_gradients=zero)

        def hvp(vector):
            products = outer.gradient(local_grads, values, output_gradients=unflat(vector), unconnected_gradients=zero)
            return cross_replica_sum(flat(products))

        loss = cross_replica_sum(tf.cast(share, dtype))
        basis, gnorm, ritz, vectors = _lanczos(cross_replica_sum(flat(local_grads)), hvp, self.krylov_dim)
        del outer
        lr = tf.cast(self.learning_rate, dtype)
        damping = tf.cast(self._damping, dtype)
        projected = gnorm * vectors[0]  # Uᵀ Vᵀ g: g is ‖g‖ times the first Lanczos vector
        floor = tf.maximum(tf.reduce_max(tf.abs(ritz)) * _eps(dtype), np.finfo(dtype).tiny)

        def coefficients(lam):  # the step is −α Vᵀ c, c = U (|Λ| + λ)⁻¹ Uᵀ Vᵀ g
            return tf.linalg.matvec(vectors, projected / tf.maximum(tf.abs(ritz) + lam, floor))

        def direction(c):
            return -lr * tf.linalg.matvec(basis, c, transpose_a=True)

        if self.damping_search is None:
            step = direction(coefficients(damping))
        else:
            candidates = tf.stack([damping * r for r in self.damping_search])
            coeffs = [coefficients(candidates[i]) for i in range(len(self.damping_search))]
            trials = []
            for c in coeffs:
                trial = [v + d for v, d in zip(values, unflat(direction(c)))]
                trials.append(cross_replica_sum(tf.cast(evaluate(trial), dtype)))
            trials = tf.stack(trials)
            trials = tf.where(tf.math.is_finite(trials), trials, tf.constant(np.inf, dtype))
            best = tf.argmin(trials)
            improved = trials[best] < loss
            c = tf.where(improved, tf.gather(tf.stack(coeffs), best), tf.zeros_like(coeffs[0]))
            step = direction(c)
            grown = damping * max(self.damping_search)
            new_damping = tf.clip_by_value(tf.where(improved, candidates[best], grown), *_DAMPING_RANGE)
            self._damping.assign(tf.cast(new_damping, "float32"))
        ctx = tf.distribute.get_replica_context()
        replicas = ctx.num_replicas_in_sync if ctx is not None else 1
        self._stepping = True
        try:  # Keras sums the "gradients" over replicas again, so hand each replica its share of the step
            self.apply([s / replicas for s in unflat(step)], variables)
        finally:
            self._stepping = False
        return loss

    def get_config(self):
        config = super().get_config()
        config.update(
            krylov_dim=self.krylov_dim,
            damping=self.damping,
            damping_search=None if self.damping_search is None else list(self.damping_search),
        )
        return config


def _eps(dtype):
    return 1e-12 if dtype == "float64" else 1e-6


def _lanczos(g, hvp, k):
    """k Lanczos steps from g with full re-orthogonalisation.

    Returns (V [k, n] orthonormal rows, or zero rows after an exact breakdown; ‖g‖; the Ritz values Λ
    [k]; U [k, k] with T = U diag(Λ) Uᵀ). Rows past a breakdown form a decoupled identity block of T that
    g does not touch, so the step is unaffected by them.
    """
    dtype = g.dtype
    tiny = np.finfo(dtype.as_numpy_dtype).tiny
    gnorm = tf.norm(g)
    q = g / tf.maximum(gnorm, tiny)
    live = gnorm > 0
    basis, alphas, betas, lives = [], [], [], []
    q_prev, beta = tf.zeros_like(g), tf.zeros((), dtype)
    for j in range(k):
        basis.append(q)
        lives.append(live)
        w = hvp(q)
        scale = tf.norm(w)
        alpha = tf.tensordot(q, w, 1)
        w = w - alpha * q - beta * q_prev
        stacked = tf.stack(basis)
        for _ in range(2):  # classical Gram-Schmidt twice keeps V orthonormal to working precision
            w = w - tf.linalg.matvec(stacked, tf.linalg.matvec(stacked, w), transpose_a=True)
        alphas.append(alpha)
        if j + 1 < k:
            norm = tf.norm(w)
            live = tf.logical_and(live, norm > _eps(dtype.name) * 10 * scale)
            beta = tf.where(live, norm, tf.zeros((), dtype))
            q_prev, q = q, tf.where(live, w / tf.maximum(norm, tiny), tf.zeros_like(w))
            betas.append(beta)
    lives = tf.stack(lives)
    alphas = tf.stack(alphas)
    size = tf.reduce_max(tf.abs(alphas))
    dummy = tf.where(size > 0, size, tf.ones((), dtype))
    tridiagonal = tf.linalg.diag(tf.where(lives, alphas, dummy))
    if betas:
        off = tf.linalg.diag(tf.stack(betas), k=1)
        tridiagonal += off + tf.transpose(off)
    ritz, vectors = tf.linalg.eigh(tridiagonal)
    return tf.stack(basis), gnorm, ritz, vectors


class SecondOrderTraining:
    """Mixin that lets a Keras model train with an optimizer that needs the loss (`SaddleFreeNewton`).

    Put it first in the bases, `class Net(SecondOrderTraining, keras.Model)`: when the compiled optimizer
    is a `SaddleFreeNewton`, `train_step` runs `optimizer.train_step(self, data)` (Keras' own loss, metrics
    and state updates with a saddle-free Newton step); any other optimizer gets the next class's
    `train_step` unchanged. Works with `fit`, `zoo.training.Trainer` and `tf.distribute`.

    ```python
    class Net(SecondOrderTraining, keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net.compile(optimizer=SaddleFreeNewton(krylov_dim=4, damping=1e-2), loss="mse")
    net.fit(x, y, batch_size=len(x), epochs=10)
    ```
    """

    def train_step(self, data):
        optimizer = getattr(self, "optimizer", None)
        if isinstance(optimizer, SaddleFreeNewton):
            return optimizer.train_step(self, data)
        if isinstance(getattr(optimizer, "inner_optimizer", None), SaddleFreeNewton):
            raise ZooError(
                "SaddleFreeNewton has no dynamic loss scaling: under mixed_float16 compile with "
                "auto_scale_loss=False, or use mixed_bfloat16"
            )
        return super().train_step(data)


@keras.saving.register_keras_serializable(package="zoo")
class SecondOrderSequential(SecondOrderTraining, keras.Sequential):
    """A `keras.Sequential` that trains with `SaddleFreeNewton` (see `SecondOrderTraining`).

    ```python
    model = SecondOrderSequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=SaddleFreeNewton(krylov_dim=2, damping=1e-2), loss="mse")
    ```
    """

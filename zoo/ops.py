"""Cross-replica arithmetic for custom `train_step`s.

A `train_step` run under `strategy.run` sees one replica's slice of the global batch. The optimizer
sums gradients over replicas, so a replica's loss must be its share of the *global* loss:
`local_sum / global_count`. These helpers give that share and the global value for logging; with no
strategy they reduce to plain sums and means.
"""

import tensorflow as tf

from zoo.errors import ZooError


def num_replicas():
    """Replicas in sync in the current replica context (1 outside one)."""
    ctx = tf.distribute.get_replica_context()
    return 1 if ctx is None else ctx.num_replicas_in_sync


def replica_id():
    """This replica's index in its sync group (0 outside a replica context)."""
    ctx = tf.distribute.get_replica_context()
    return 0 if ctx is None else ctx.replica_id_in_sync_group


def cross_replica_sum(x):
    """Sum of `x` over all replicas (identity outside a replica context or with one replica)."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return x
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, x)


def weighted_mean(values, weights=None):
    """Global weighted mean of `values` split over replicas.

    Returns `(share, total)`: `share` = this replica's Σ(v·w) / global Σw, the value to differentiate
    (summing shares over replicas gives the global mean); `total` = the global mean itself, the same on
    every replica, the value to report. Σw is floored at 1e-5, as in the original BERT MLM loss.
    """
    values = tf.cast(values, tf.float32)
    weights = tf.ones_like(values) if weights is None else tf.cast(weights, tf.float32)
    local = tf.reduce_sum(values * weights)
    denominator = tf.maximum(cross_replica_sum(tf.reduce_sum(weights)), 1e-5)
    share = local / denominator
    return share, cross_replica_sum(share)


def clip_by_global_norm(grads, clip_norm, loss_scale=None):
    """Scales this replica's gradients so that the *global* gradient (their sum over replicas) has norm at
    most `clip_norm`, as `tf.clip_by_global_norm` does on one device.

    Keras optimizers' `clipnorm`/`global_clipnorm` clip each replica's share before the all-reduce (Keras
    3.15), which changes the update with the replica count; this costs one extra all-reduce instead.
    `loss_scale` (a LossScaleOptimizer's scale) is divided out of the norm. The norm is global, so an
    overflow on any replica makes every replica's gradients NaN, and the LossScaleOptimizer skips the step.
    """
    total = cross_replica_sum([tf.cast(g, tf.float32) for g in grads])
    norm = tf.linalg.global_norm(total)
    if loss_scale is not None:
        norm = norm / tf.cast(loss_scale, tf.float32)
    scale = tf.where(tf.math.is_finite(norm), clip_norm / tf.maximum(norm, clip_norm), float("nan"))
    return [g * tf.cast(scale, g.dtype) for g in grads]


def finite_or_nan(grads):
    """Makes every replica's gradients NaN when any replica's are not finite.

    Keras' LossScaleOptimizer (3.15) decides to skip an overflowed step from the first replica's gradients
    alone, before the all-reduce; without this an overflow on another replica would reach the weights.
    Costs one scalar all-reduce.
    """
    local = tf.add_n([tf.reduce_sum(tf.cast(~tf.math.is_finite(g), tf.float32)) for g in grads])
    bad = cross_replica_sum(local) > 0
    return [tf.where(bad, tf.cast(float("nan"), g.dtype), g) for g in grads]


def apply_gradients(optimizer, grads, variables, clip_norm=None):
    """The end of a custom `train_step`: builds the optimizer if needed (a LossScaleOptimizer has its scale
    only once built), clips the global gradient norm to `clip_norm` across replicas (`clip_by_global_norm`,
    with the loss scale divided out) or, under loss scaling without clipping, makes every replica's gradients
    NaN when any replica's are not finite (`finite_or_nan`), then applies them."""
    if not optimizer.built:
        optimizer.build(variables)
    loss_scale = getattr(optimizer, "dynamic_scale", None)
    if clip_norm:
        grads = clip_by_global_norm(grads, clip_norm, loss_scale)
    elif loss_scale is not None:
        grads = finite_or_nan(grads)
    optimizer.apply_gradients(zip(grads, variables))


def apply_used_gradients(optimizer, grads, variables, clip_norm=None, *, unused=None):
    """`apply_gradients` to the variables that have a gradient (`tape.gradient` gives None for a variable the
    loss does not use: SUMBT's utterance pooler, XLNet fine-tuning's query-stream `mask_emb`).

    `unused`: None drops every None gradient; otherwise a tuple of substrings of the variable paths expected to
    have none, and any other None gradient is a ZooError naming the variable (a loss that lost a branch).
    The check runs while tracing, so it costs nothing per step.
    """
    if unused is not None:
        lost = [v.path for g, v in zip(grads, variables) if g is None and not any(s in v.path for s in unused)]
        if lost:
            raise ZooError(f"the loss has no gradient for {', '.join(lost)}; feed the inputs that use it, or "
                           f"name it in apply_used_gradients(unused=...)")
    pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
    apply_gradients(optimizer, [g for g, _ in pairs], [v for _, v in pairs], clip_norm)


# === The global step a train step runs at ===

_TRAINER_STEP = []  # the driving Trainer's step variable while it traces or runs its steps


class driving_step:
    """Context manager used by `zoo.training.Trainer`: inside it, `global_step` reads `variable`."""

    def __init__(self, variable):
        self.variable = variable

    def __enter__(self):
        _TRAINER_STEP.append(self.variable)
        return self.variable

    def __exit__(self, *exc):
        _TRAINER_STEP.pop()


def global_step(model):
    """The global step a `train_step` is running: the number of steps completed before it (int64 scalar).

    The one way a model reads the step (curricula, ScheduledDropPath, rate schedules). Under
    `zoo.training.Trainer` it is the trainer's step, the same on every replica and restored on resume;
    elsewhere (`fit`, or calling `train_step` yourself) it is `model.optimizer.iterations`.
    """
    if _TRAINER_STEP:
        return tf.convert_to_tensor(_TRAINER_STEP[-1], tf.int64)
    return tf.cast(tf.convert_to_tensor(model.optimizer.iterations), tf.int64)

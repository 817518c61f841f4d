"""Cross-replica arithmetic for custom `train_step`s.

A `train_step` run under `strategy.run` sees one replica's slice of the global batch. The optimizer
sums gradients over replicas, so a replica's loss must be its share of the *global* loss:
`local_sum / global_count`. These helpers give that share and the global value for logging; with no
strategy they reduce to plain sums and means.
"""

import tensorflow as tf


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

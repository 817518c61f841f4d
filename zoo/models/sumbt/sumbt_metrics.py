"""SUMBT's loss and accuracies, with padded turns (label -1) ignored and exact over replicas and batches.

Labels are int32 [batch, turns, slots]: the value index of each slot's accumulated belief state, -1 where
the turn is padding (the official `CrossEntropyLoss(ignore_index=-1)`). A turn is real when any of its slot
labels is >= 0; a slot label of -1 in a real turn is ignored by every measure.

- loss: each slot's cross-entropy, averaged over the real turns of the *global* batch, summed over slots
  (SKTBrain/SUMBT `BeliefTrackerSlotQueryMultiSlot.forward`);
- joint goal accuracy: the share of real turns in which EVERY slot is right. The official code computes
  `sum(torch.sum(correct, 1) / slot_dim) / real_turns` on integer tensors and relies on floor division
  (SKTBrain/SUMBT#7); under PyTorch >= 1.5 `/` is true division and that line silently reports the mean slot
  accuracy instead. Here a turn counts 1 only when all its slots match;
- slot accuracy: the share of right (turn, slot) pairs over real turns (the mean of the per-slot accuracies
  when every real turn labels every slot);
- per-slot accuracy: the same for one slot.

    >>> import numpy as np
    >>> predictions = np.array([[[0, 1], [2, 1], [0, 0]]])      # 1 dialogue, 3 turns, 2 slots
    >>> labels = np.array([[[0, 1], [2, 0], [-1, -1]]])          # the third turn is padding
    >>> joint_goal_accuracy(predictions, labels), slot_accuracy(predictions, labels)
    (0.5, 0.75)
"""

import re

import numpy as np
import tensorflow as tf

from zoo.ops import cross_replica_sum


def slot_weights(labels):
    """float32 [..., slots]: 1 where the slot label is real (>= 0)."""
    return tf.cast(tf.convert_to_tensor(labels) >= 0, tf.float32)


def turn_weights(labels):
    """float32 [...]: 1 for a real turn (any slot label >= 0)."""
    return tf.cast(tf.reduce_any(tf.convert_to_tensor(labels) >= 0, axis=-1), tf.float32)


def slot_hits(predictions, labels):
    """float32 [..., slots]: 1 where the predicted value index equals the label."""
    return tf.cast(tf.equal(tf.cast(predictions, tf.int32), tf.cast(labels, tf.int32)), tf.float32)


def joint_hits(predictions, labels):
    """float32 [...]: 1 for a turn whose every real slot is right (weight it with `turn_weights`)."""
    right = tf.equal(tf.cast(predictions, tf.int32), tf.cast(labels, tf.int32)) | (tf.convert_to_tensor(labels) < 0)
    return tf.cast(tf.reduce_all(right, axis=-1), tf.float32)


def cross_entropy(logits, labels):
    """float32 [..., slots]: each slot's cross-entropy of `logits` [..., slots, values]; 0 where label < 0."""
    labels = tf.cast(labels, tf.int32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.maximum(labels, 0), tf.cast(logits, tf.float32))
    return ce * slot_weights(labels)


def slot_loss(ce, labels):
    """`(share, total)` of Σ_slots (mean cross-entropy over the slot's real turns of the global batch).

    `share` is this replica's part to differentiate (the shares sum to the total over replicas, as
    `zoo.ops.weighted_mean`, with each slot's count floored at 1e-5 the same way); `total` is for logs.
    """
    weights = slot_weights(labels)
    rank = len(weights.shape)
    outer = list(range(rank - 1))
    counts = tf.maximum(cross_replica_sum(tf.reduce_sum(weights, axis=outer)), 1e-5)  # [slots], global
    share = tf.reduce_sum(tf.reduce_sum(ce * weights, axis=outer) / counts)
    return share, cross_replica_sum(share)


def _ratio(hits, weights):
    return float(np.sum(np.asarray(hits) * np.asarray(weights)) / max(float(np.sum(weights)), 1e-5))


def joint_goal_accuracy(predictions, labels):
    """Share of real turns with every slot right (numpy or tensors [..., slots]; returns a float)."""
    return _ratio(joint_hits(predictions, labels), turn_weights(labels))


def slot_accuracy(predictions, labels):
    """Share of right (turn, slot) pairs over real slot labels."""
    return _ratio(slot_hits(predictions, labels), slot_weights(labels))


def per_slot_accuracy(predictions, labels):
    """float64 numpy [slots]: each slot's accuracy over its real labels."""
    hits = np.asarray(slot_hits(predictions, labels)).reshape(-1, np.shape(labels)[-1])
    weights = np.asarray(slot_weights(labels)).reshape(hits.shape)
    return (hits * weights).sum(0).astype("float64") / np.maximum(weights.sum(0), 1e-5)


def metric_name(slot_name):
    """`acc_<slot name>` with characters other than letters, digits, `_`, `-`, `.` replaced by `_`."""
    return "acc_" + re.sub(r"[^A-Za-z0-9_.\-]", "_", str(slot_name))

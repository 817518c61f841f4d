import numpy as np
import pytest

from zoo.models.sumbt import joint_goal_accuracy, per_slot_accuracy, slot_accuracy
from zoo.models.sumbt import sumbt_metrics as sm

# One dialogue, 4 turns, 3 slots; the last turn is padding.
PREDICTIONS = np.array([[[1, 0, 2], [1, 4, 2], [0, 4, 0], [0, 0, 0]]])
LABELS = np.array([[[1, 0, 2], [1, 0, 2], [1, 4, 2], [-1, -1, -1]]])
#                    all right   2 of 3      1 of 3     padded


def official_formula(predictions, labels, divide):
    """SKTBrain/SUMBT's joint accuracy line, `sum(torch.sum(accuracy, 1) / slot_dim) / real turns`, with
    `divide` standing for the `/` between integer tensors (floor division in old PyTorch, true division now)."""
    slot_dim = labels.shape[-1]
    accuracy = (predictions == labels).reshape(-1, slot_dim).astype("int64")
    return sum(divide(accuracy.sum(1), slot_dim)) / np.sum(labels[..., 0].reshape(-1) > -1)


def test_joint_goal_accuracy_counts_a_turn_only_when_every_slot_is_right():
    assert joint_goal_accuracy(PREDICTIONS, LABELS) == pytest.approx(1 / 3)
    assert slot_accuracy(PREDICTIONS, LABELS) == pytest.approx(6 / 9)
    np.testing.assert_allclose(per_slot_accuracy(PREDICTIONS, LABELS), [2 / 3, 2 / 3, 2 / 3])
    # The official line is the joint accuracy only under floor division (SKTBrain/SUMBT#7) ...
    assert official_formula(PREDICTIONS, LABELS, np.floor_divide) == pytest.approx(1 / 3)
    # ... and under true division (PyTorch >= 1.5) it silently reports the mean slot accuracy.
    assert official_formula(PREDICTIONS, LABELS, np.true_divide) == pytest.approx(2 / 3)


def test_padded_turns_and_ignored_slots_count_nowhere():
    predictions = np.concatenate([PREDICTIONS, np.zeros((1, 4, 3), int)])
    labels = np.concatenate([LABELS, -np.ones((1, 4, 3), int)])  # a whole padded dialogue
    assert joint_goal_accuracy(predictions, labels) == pytest.approx(1 / 3)
    assert slot_accuracy(predictions, labels) == pytest.approx(6 / 9)
    labels = LABELS.copy()
    labels[0, 2, 0] = -1  # a slot without a label in a real turn: ignored, the other two decide
    assert joint_goal_accuracy(PREDICTIONS, labels) == pytest.approx(1 / 3)
    np.testing.assert_allclose(per_slot_accuracy(PREDICTIONS, labels), [1.0, 2 / 3, 2 / 3])
    labels[0, 2] = [-1, 4, -1]
    assert joint_goal_accuracy(PREDICTIONS, labels) == pytest.approx(2 / 3)


def test_loss_is_the_sum_over_slots_of_each_slots_mean_over_real_turns():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 2, 4)).astype("float32")
    logits[..., 1, 3] = -1e9  # slot 1 has 3 values
    labels = np.array([[[0, 1], [3, 2], [-1, -1]], [[2, -1], [-1, -1], [-1, -1]]])
    share, total = sm.slot_loss(sm.cross_entropy(logits, labels), labels)
    log_p = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - logits.max(-1, keepdims=True)
    expected = 0.0
    for s in range(2):
        real = labels[..., s] >= 0
        expected += -np.mean(np.take_along_axis(log_p[..., s, :], np.maximum(labels[..., s], 0)[..., None], -1)
                             [..., 0][real])
    np.testing.assert_allclose(float(total), expected, rtol=1e-6)
    np.testing.assert_allclose(float(share), expected, rtol=1e-6)  # one replica: the share is the loss
    assert np.isfinite(np.asarray(sm.cross_entropy(logits, labels))).all()


def test_metric_names():
    assert sm.metric_name("price range") == "acc_price_range"
    assert sm.metric_name("hotel-book day") == "acc_hotel-book_day"

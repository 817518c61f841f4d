"""XLNetClassifier: last-token summary head, invariance to left padding, losses, Pearson; serving and TF-only
loading of the backbone and classifier exports."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.tf_only import run_tf_only
from zoo.models.xlnet.xlnet_backbone import XLNetBackbone
from zoo.models.xlnet.xlnet_classifier import PearsonCorrelation, XLNetClassifier
from zoo.models.xlnet.xlnet_serving import serving_endpoints
from zoo.training.export import export_saved_model

V, H, CLASSES, SEP, CLS, PAD = 37, 16, 3, 4, 3, 5


def _classifier(num_classes=CLASSES, seed=0):
    keras.utils.set_random_seed(seed)
    backbone = XLNetBackbone(V, num_layers=2, num_heads=2, hidden_dim=H, intermediate_dim=32, dropout=0.0,
                             attention_dropout=0.0, kernel_initializer_range=0.3)
    model = XLNetClassifier(backbone, num_classes, dropout=0.0, initializer_range=0.3)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    return model


def _example(a, b, length):
    """`a <sep> b <sep> <cls>`, left-padded to `length` (the original classifier_utils layout)."""
    tokens = list(a) + [SEP] + list(b) + [SEP, CLS]
    segments = [0] * (len(a) + 1) + [1] * (len(b) + 1) + [2]
    pad = length - len(tokens)
    return [PAD] * pad + tokens, [4] * pad + segments, [0] * pad + [1] * len(tokens)


def _inputs(examples, length):
    rows = [_example(a, b, length) for a, b in examples]
    names = ("token_ids", "segment_ids", "padding_mask")
    return {k: np.array([r[i] for r in rows], "int32") for i, k in enumerate(names)}


EXAMPLES = [([9, 10, 11], [12, 13]), ([20, 21], [22, 23, 24, 25]), ([30], [31])]


def test_logits_do_not_depend_on_left_padding():
    model = _classifier()
    batch = np.asarray(model(_inputs(EXAMPLES, 12)))  # one batch of differently padded rows
    for row, example in enumerate(EXAMPLES):
        tight = len(example[0]) + len(example[1]) + 3
        for length in (tight, tight + 5):
            alone = np.asarray(model(_inputs([example], length)))[0]
            np.testing.assert_allclose(alone, batch[row], atol=1e-5)


def test_head_is_tanh_summary_of_the_last_token():
    model = _classifier()
    inputs = _inputs(EXAMPLES, 10)
    hidden = np.asarray(model.backbone(inputs))[:, -1]
    dense, logits = model.get_layer("summary"), model.get_layer("logits")
    summary = np.tanh(hidden @ np.asarray(dense.kernel) + np.asarray(dense.bias))
    expected = summary @ np.asarray(logits.kernel) + np.asarray(logits.bias)
    np.testing.assert_allclose(np.asarray(model(inputs)), expected, atol=1e-5)
    heads = model.count_params() - model.backbone.count_params()
    assert heads == H * H + H + H * CLASSES + CLASSES


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_losses_and_metrics():
    model = _classifier()
    data = dict(_inputs(EXAMPLES, 10), labels=np.array([2, 0, 1], "int32"), weights=np.array([1, 1, 0], "float32"))
    logits = np.asarray(model(_inputs(EXAMPLES, 10)))
    ce = -_log_softmax(logits)[np.arange(3), data["labels"]]
    expected = (ce[:2]).mean()
    logs = model.test_step(data)
    assert float(logs["loss"]) == pytest.approx(expected, rel=1e-5)
    assert float(logs["accuracy"]) == pytest.approx((logits.argmax(-1) == data["labels"])[:2].mean())
    assert float(model.train_step(data)["loss"]) == pytest.approx(expected, rel=1e-5)

    regression = _classifier(num_classes=1)
    data = dict(_inputs(EXAMPLES, 10), labels=np.array([0.5, 4.0, 2.5], "float32"))
    predictions = np.asarray(regression(_inputs(EXAMPLES, 10)))[:, 0]
    expected = float(((predictions - data["labels"]) ** 2).mean())
    logs = regression.test_step(data)
    assert float(logs["loss"]) == pytest.approx(expected, rel=1e-5)
    assert float(logs["pearson"]) == pytest.approx(np.corrcoef(predictions, data["labels"])[0, 1], abs=1e-5)
    assert float(regression.train_step(data)["loss"]) == pytest.approx(expected, rel=1e-5)


def test_pearson_over_batches_with_weights():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=20), rng.normal(size=20)
    y = y + x
    metric = PearsonCorrelation()
    metric.update_state(x[:7], y[:7])
    metric.update_state(x[7:], y[7:], sample_weight=np.r_[np.ones(10), np.zeros(3)])
    assert float(metric.result()) == pytest.approx(np.corrcoef(x[:17], y[:17])[0, 1], abs=1e-5)


def test_config_round_trip():
    model = _classifier(num_classes=1)
    clone = XLNetClassifier.from_config(model.get_config())
    assert clone.num_classes == 1 and clone.dropout == 0.0 and clone.count_params() == model.count_params()


def test_serving_functions_and_input_checks():
    model = _classifier()
    inputs = _inputs(EXAMPLES, 10)
    serve, _ = serving_endpoints(model)["serving_default"]
    out = serve(*(tf.constant(inputs[k]) for k in ("token_ids", "segment_ids", "padding_mask")))
    logits = np.asarray(model(inputs))
    np.testing.assert_allclose(out["logits"], logits, atol=1e-6)
    np.testing.assert_allclose(out["probabilities"], np.exp(_log_softmax(logits)), atol=1e-6)
    np.testing.assert_array_equal(out["predictions"], logits.argmax(-1))
    serve_backbone, _ = serving_endpoints(model.backbone)["serving_default"]
    bad = dict(inputs, token_ids=np.full_like(inputs["token_ids"], V))
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"token_ids must be in \[0, {V}\)"):
        serve_backbone(*(tf.constant(bad[k]) for k in ("token_ids", "segment_ids", "padding_mask")))


def _right_padded(inputs):
    """The same rows padded on the right (the mistake: the last position is then padding, not <cls>)."""
    order = np.argsort(1 - inputs["padding_mask"], axis=1, kind="stable")
    return {k: np.take_along_axis(v, order, axis=1) for k, v in inputs.items()}


def test_right_padding_is_an_error_in_the_steps_and_the_serving_endpoints():
    model = _classifier()
    inputs = _inputs(EXAMPLES, 10)
    wrong = _right_padded(inputs)
    assert (wrong["padding_mask"][:, -1] == 0).all() and (wrong["padding_mask"][:, 0] == 1).all()
    labels = np.array([2, 0, 1], "int32")
    before = [np.asarray(v) for v in model.trainable_variables]
    for step in (model.train_step, model.test_step, tf.function(model.train_step)):
        with pytest.raises(tf.errors.InvalidArgumentError, match="LEFT-padded: the last position must be the real"):
            step(dict(wrong, labels=labels))
    for a, b in zip(before, model.trainable_variables):  # nothing applied
        np.testing.assert_array_equal(a, np.asarray(b))
    for endpoint in (serving_endpoints(model), serving_endpoints(model.backbone)):
        serve, _ = endpoint["serving_default"]
        with pytest.raises(tf.errors.InvalidArgumentError, match="XLNet inputs are LEFT-padded"):
            serve(*(tf.constant(wrong[k]) for k in ("token_ids", "segment_ids", "padding_mask")))
    # A weight-0 filler row (all padding, as the data pipeline fills an evaluation's last batch) is fine.
    filler = {k: np.concatenate([v, np.zeros_like(v[:1])]) for k, v in inputs.items()}
    logs = model.test_step(dict(filler, labels=np.r_[labels, 0], weights=np.array([1, 1, 1, 0], "float32")))
    assert np.isfinite(float(logs["loss"]))


def test_fine_tuning_updates_every_weight_but_mask_emb():
    model = _classifier()
    before = {v.path: np.asarray(v) for v in model.trainable_variables}
    model.train_step(dict(_inputs(EXAMPLES, 10), labels=np.array([2, 0, 1], "int32")))
    changed = {v.path for v in model.trainable_variables if not np.array_equal(before[v.path], np.asarray(v))}
    assert set(before) - changed == {"encoder_block_attn_mask_layer/mask_emb"}


def test_apply_used_gradients_errors_on_an_unexpected_missing_gradient():
    from zoo.errors import ZooError
    from zoo.ops import apply_used_gradients

    a, b = keras.Variable([1.0], name="a"), keras.Variable([2.0], name="b")
    optimizer = keras.optimizers.SGD(1.0)
    with pytest.raises(ZooError, match=r"no gradient for b\b.*unused="):
        apply_used_gradients(optimizer, [tf.constant([1.0]), None], [a, b], unused=("mask_emb",))
    apply_used_gradients(optimizer, [tf.constant([3.0]), None], [a, b], clip_norm=1.0, unused=("b",))
    apply_used_gradients(optimizer, [tf.constant([1.0]), None], [a, b])  # unused=None: drop every None
    assert float(a[0]) == pytest.approx(1.0 - 1.0 - 1.0) and float(b[0]) == 2.0


# === Two replicas ===

def _replica_steps(strategy, steps=2, rows=4):
    """Two train steps and an evaluation of a regression head (weight-0 last row, clipping active)."""
    rng = np.random.default_rng(0)
    ids = rng.integers(6, V, (rows, 6)).astype("int32")
    mask = np.ones((rows, 6), "int32")
    mask[1, :2] = mask[3, :3] = 0
    data = {"token_ids": ids * mask + PAD * (1 - mask), "segment_ids": np.where(mask == 1, 0, 4).astype("int32"),
            "padding_mask": mask, "labels": np.array([0.5, 2.0, 3.5, 1.0], "float32"),
            "weights": np.array([1, 1, 1, 0], "float32")}
    with strategy.scope():
        model = _classifier(num_classes=1)
        model.clip_norm = 0.05
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
        model.optimizer.build(model.trainable_variables)  # slots made here, not inside the replica step
    per = rows // strategy.num_replicas_in_sync
    batch = strategy.experimental_distribute_values_from_function(
        lambda ctx: {k: tf.constant(v[ctx.replica_id_in_sync_group * per:(ctx.replica_id_in_sync_group + 1) * per])
                     for k, v in data.items()})
    train = tf.function(lambda b: strategy.run(model.train_step, args=(b,)))
    losses = [float(strategy.reduce("MEAN", train(batch)["loss"], axis=None)) for _ in range(steps)]
    tf.function(lambda b: strategy.run(model.test_step, args=(b,)))(batch)
    metrics = {m.name: float(m.result()) for m in model.eval_metrics}
    return [np.asarray(v) for v in model.trainable_variables], losses, metrics


@pytest.mark.distributed
def test_two_replicas_equal_one(mirrored):
    one, one_losses, one_metrics = _replica_steps(tf.distribute.get_strategy())
    two, two_losses, two_metrics = _replica_steps(mirrored)
    np.testing.assert_allclose(one_losses, two_losses, rtol=1e-5)
    assert one_losses[0] != pytest.approx(one_losses[1], rel=1e-3)  # the first step moved the weights
    assert two_metrics["loss"] == pytest.approx(one_metrics["loss"], rel=1e-5)
    assert two_metrics["pearson"] == pytest.approx(one_metrics["pearson"], abs=1e-4)
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.slow  # three exports and a fresh TF-only process: ~20 s
def test_exports_load_tf_only(tmp_path):
    classifier, regression = _classifier(), _classifier(num_classes=1, seed=1)
    inputs = _inputs(EXAMPLES, 10)
    paths = {name: export_saved_model(str(tmp_path / name), model, serving_endpoints(model))
             for name, model in (("backbone", classifier.backbone), ("classifier", classifier),
                                 ("regression", regression))}
    got = run_tf_only(f"""
        import json
        import tensorflow as tf
        inputs = {{k: tf.constant(v, tf.int32) for k, v in {({k: v.tolist() for k, v in inputs.items()})!r}.items()}}
        out = {{}}
        for name, path in {paths!r}.items():
            result = tf.saved_model.load(path).signatures["serving_default"](**inputs)
            out.update({{f"{{name}}/{{k}}": v.numpy().tolist() for k, v in result.items()}})
        print(json.dumps(out))
    """)
    np.testing.assert_allclose(got["backbone/sequence_output"], np.asarray(classifier.backbone(inputs)), atol=1e-5)
    logits = np.asarray(classifier(inputs))
    np.testing.assert_allclose(got["classifier/logits"], logits, atol=1e-5)
    np.testing.assert_allclose(got["classifier/probabilities"], np.exp(_log_softmax(logits)), atol=1e-5)
    assert got["classifier/predictions"] == logits.argmax(-1).tolist()
    np.testing.assert_allclose(got["regression/predictions"], np.asarray(regression(inputs))[:, 0], atol=1e-5)
    assert sorted(got) == ["backbone/sequence_output", "classifier/logits", "classifier/predictions",
                           "classifier/probabilities", "regression/predictions"]

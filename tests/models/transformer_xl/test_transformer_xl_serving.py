"""Transformer-XL serving: streaming a text through `serving_default` equals the model's own evaluation, and the
export loads and streams in a TensorFlow-only process."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.tf_only import run_tf_only
from zoo.models.transformer_xl import TransformerXLBackbone, TransformerXLLanguageModel
from zoo.models.transformer_xl.transformer_xl_serving import serving_endpoints
from zoo.training.export import export_saved_model

V, H, L, M = 30, 16, 2, 6


def _lm():
    keras.utils.set_random_seed(0)
    backbone = TransformerXLBackbone(V, L, H, 2, 8, 32, cutoffs=[10, 20], div_val=2, dropout=0.0, init_std=0.1)
    return TransformerXLLanguageModel(backbone, per_replica_batch_size=2, mem_len=3, eval_mem_len=M,
                                      eval_clamp_len=4, eval_same_length=True)


def _segments():
    return np.random.default_rng(1).integers(0, V, size=(2, 12)).astype("int32").reshape(2, 3, 4).transpose(1, 0, 2)


def _expected(lm, segments):
    """Per segment: log-probs and the carried memories, from the backbone at the LM's evaluation settings."""
    memories, length, out = None, None, []
    for ids in segments:
        hidden, memories, length = lm.backbone.run(ids, memories, length, mem_len=M, clamp_len=4, same_length=True)
        out.append((np.asarray(lm.backbone.adaptive_softmax.log_probs(hidden)), np.stack(memories),
                    np.asarray(length)))
    return out


def test_streaming_endpoint_equals_the_model():
    lm = _lm()
    fns = {name: tf.function(fn, input_signature=spec) for name, (fn, spec) in serving_endpoints(lm).items()}
    memories, length = np.zeros((L, 2, M, H), "float32"), np.zeros(2, "int32")
    for (log_probs, expected_memories, expected_length), ids in zip(_expected(lm, _segments()), _segments()):
        out = fns["serving_default"](tf.constant(ids), tf.constant(memories), tf.constant(length))
        np.testing.assert_allclose(np.asarray(out["log_probs"]), log_probs, atol=1e-5)
        np.testing.assert_allclose(np.asarray(out["memories"]), expected_memories, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(out["memory_length"]), expected_length)
        memories, length = np.asarray(out["memories"]), np.asarray(out["memory_length"])
    first = fns["log_probs"](tf.constant(_segments()[0]))["log_probs"]
    np.testing.assert_allclose(np.asarray(first), _expected(lm, _segments())[0][0], atol=1e-5)
    np.testing.assert_allclose(np.exp(np.asarray(first)).sum(-1), 1.0, atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"memory_length must be in \[0, 6\]"):
        fns["serving_default"](tf.constant(_segments()[0]), tf.constant(memories), tf.constant([7, 0], tf.int32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="memories .* as many rows B as token_ids"):
        fns["serving_default"](tf.constant(_segments()[0]), tf.constant(memories[:, :1]), tf.constant(length))


@pytest.mark.slow  # export + a fresh TensorFlow process: ~15 s
def test_export_streams_in_a_tf_only_process(tmp_path):
    lm = _lm()
    path = export_saved_model(str(tmp_path / "export"), lm.backbone, serving_endpoints(lm))
    expected = _expected(lm, _segments())
    got = run_tf_only(f"""
        import json
        import numpy as np, tensorflow as tf
        m = tf.saved_model.load({path!r})
        segments = np.array({_segments().tolist()}, np.int32)
        memories, length, out = tf.zeros(({L}, 2, {M}, {H})), tf.zeros([2], tf.int32), []
        for ids in segments:
            r = m.signatures["serving_default"](token_ids=tf.constant(ids), memories=memories, memory_length=length)
            memories, length = r["memories"], r["memory_length"]
            out.append(r["log_probs"].numpy().tolist())
        try:
            m.signatures["log_probs"](token_ids=tf.constant([[{V}]]))
            error = ""
        except tf.errors.InvalidArgumentError as e:
            error = e.message
        print(json.dumps(dict(log_probs=out, memories=memories.numpy().tolist(), length=length.numpy().tolist(),
                              error=error)))
    """)
    for got_log_probs, (log_probs, _, _) in zip(got["log_probs"], expected):
        np.testing.assert_allclose(got_log_probs, log_probs, atol=1e-5)
    np.testing.assert_allclose(got["memories"], expected[-1][1], atol=1e-6)
    assert got["length"] == expected[-1][2].tolist() == [M, M]
    assert f"token_ids must be in [0, {V})" in got["error"]

"""AdaptiveEmbedding and AdaptiveSoftmax against NumPy transcriptions of the original's formulas
(kimiyoung/transformer-xl AdaptiveEmbedding and ProjectedAdaptiveLogSoftmax), tying, and the NLL path."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.errors import ZooError
from zoo.models.transformer_xl import AdaptiveEmbedding, AdaptiveSoftmax

V, CUTOFFS, D_PROJ = 30, [10, 20], 8
CONFIGS = [(1, 8), (1, 12), (2, 12)]  # (div_val, d_embed): no projection, one shared projection, per cluster


def _pair(div_val, d_embed, tie_projs=None, tie_weight=True, seed=0):
    keras.utils.set_random_seed(seed)
    embedding = AdaptiveEmbedding(V, d_embed, D_PROJ, cutoffs=CUTOFFS, div_val=div_val)
    softmax = AdaptiveSoftmax(V, d_embed, D_PROJ, cutoffs=CUTOFFS, div_val=div_val, tie_weight=tie_weight,
                              tie_projs=tie_projs, embedding=embedding)
    softmax.build()
    rng = np.random.default_rng(seed)  # non-zero biases so their slicing is checked too
    softmax.output_bias.assign(rng.normal(size=V).astype("float32"))
    softmax.cluster_bias.assign(rng.normal(size=2).astype("float32"))
    return embedding, softmax


def _np(x):
    return None if x is None else np.asarray(x)


def _reference_embedding(embedding, ids):
    out = np.zeros(ids.shape + (D_PROJ,), "float32")
    bounds = [(0, 10), (10, 20), (20, 30)] if embedding.div_val > 1 else [(0, V)]
    for i, (lo, hi) in enumerate(bounds):
        inside = (ids >= lo) & (ids < hi)
        emb = _np(embedding.tables[i])[np.clip(ids - lo, 0, hi - lo - 1)]
        proj = _np(embedding.projections[i])
        if proj is not None:
            emb = emb @ proj.T                      # F.linear(emb, proj), proj [d_proj, d_i]
        out += np.where(inside[..., None], emb, 0.0)
    return out * np.sqrt(D_PROJ)


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _reference_log_probs(softmax, hidden):
    """The original's forward, written for every word: head = shortlist + cluster logits, tail i uses head[-i]."""
    bias = _np(softmax.output_bias)
    bounds = [(0, 10), (10, 20), (20, 30)]

    def cluster(i):
        lo, hi = bounds[i]
        table = _np(softmax.tables[0])[lo:hi] if softmax.div_val == 1 else _np(softmax.tables[i])
        proj = _np(softmax.projections[i])
        h = hidden if proj is None else hidden @ proj
        return h, table, bias[lo:hi]

    h, table, b = cluster(0)
    head = _log_softmax(h @ np.concatenate([table, _np(softmax.cluster_weight)]).T
                        + np.concatenate([b, _np(softmax.cluster_bias)]))
    parts = [head[..., :10]]
    for i in (1, 2):
        h, table, b = cluster(i)
        parts.append(head[..., -i:][..., :1] + _log_softmax(h @ table.T + b))
    return np.concatenate(parts, -1)


@pytest.mark.parametrize("div_val,d_embed", CONFIGS)
def test_embedding_matches_the_original(div_val, d_embed):
    embedding, _ = _pair(div_val, d_embed)
    ids = np.random.default_rng(1).integers(0, V, size=(3, 7))
    np.testing.assert_allclose(np.asarray(embedding(ids)), _reference_embedding(embedding, ids), atol=1e-6)
    assert [tuple(t.shape) for t in embedding.tables] == (
        [(10, 12), (10, 6), (10, 3)] if div_val == 2 else [(V, d_embed)])


@pytest.mark.parametrize("div_val,d_embed", CONFIGS)
def test_log_probs_match_the_original_and_normalise(div_val, d_embed):
    _, softmax = _pair(div_val, d_embed)
    hidden = np.random.default_rng(2).normal(size=(2, 5, D_PROJ)).astype("float32")
    log_probs = np.asarray(softmax.log_probs(hidden))
    np.testing.assert_allclose(log_probs, _reference_log_probs(softmax, hidden), atol=1e-5)
    np.testing.assert_allclose(np.exp(log_probs).sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("div_val,d_embed", CONFIGS)
def test_nll_equals_gathered_log_probs(div_val, d_embed):
    _, softmax = _pair(div_val, d_embed)
    rng = np.random.default_rng(3)
    hidden = rng.normal(size=(3, 6, D_PROJ)).astype("float32")
    targets = rng.integers(0, V, size=(3, 6)).astype("int32")
    targets[0, :3] = [0, 15, 29]  # every cluster present
    expected = -np.take_along_axis(np.asarray(softmax.log_probs(hidden)), targets[..., None], -1)[..., 0]
    np.testing.assert_allclose(np.asarray(softmax.nll(hidden, targets)), expected, atol=1e-5)
    xla = tf.function(softmax.nll, jit_compile=True)(tf.constant(hidden), tf.constant(targets))
    np.testing.assert_allclose(np.asarray(xla), expected, atol=1e-5)


def test_nll_gradient_equals_the_full_softmax_gradient():
    _, softmax = _pair(2, 12)
    rng = np.random.default_rng(4)
    hidden = tf.constant(rng.normal(size=(2, 5, D_PROJ)).astype("float32"))
    targets = rng.integers(0, V, size=(2, 5)).astype("int32")
    grads = []
    for fn in (lambda: softmax.nll(hidden, targets),
               lambda: -tf.gather(softmax.log_probs(hidden), targets, batch_dims=2)):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(fn())
        grads.append(tape.gradient(loss, softmax.trainable_weights))
    assert [g is None for g in grads[0]] == [g is None for g in grads[1]]  # the embedding's head projection
    for a, b in zip(*grads):
        if a is not None:
            np.testing.assert_allclose(np.asarray(tf.convert_to_tensor(a)), np.asarray(tf.convert_to_tensor(b)),
                                       atol=1e-5)


def test_tied_weights_and_projections_are_the_same_variables():
    embedding, softmax = _pair(2, 12)  # default tie_projs [False, True, True]
    assert all(a is b for a, b in zip(softmax.tables, embedding.tables))
    assert softmax.projections[0] is not embedding.projections[0]
    assert softmax.projections[1] is embedding.projections[1] and softmax.projections[2] is embedding.projections[2]
    _, untied = _pair(2, 12, tie_projs=[False], tie_weight=False)
    assert not any(a is b for a, b in zip(untied.tables, untied.embedding.tables))
    own = {id(w) for w in untied.weights} - {id(w) for w in untied.embedding.weights}
    # bias, cluster weight and bias, 3 tables, 3 projections
    assert len(own) == 9
    _, single = _pair(1, 12, tie_projs=[True, True, True])
    assert all(p is single.embedding.projections[0] for p in single.projections)


def test_bad_cutoffs_are_refused():
    with pytest.raises(ZooError, match="cutoffs"):
        AdaptiveEmbedding(30, 8, 8, cutoffs=[10, 40])
    with pytest.raises(ZooError, match="div_val"):
        AdaptiveEmbedding(30, 8, 8, cutoffs=[10, 20], div_val=0)
    with pytest.raises(ZooError, match="div_val"):
        AdaptiveEmbedding(30, 4, 8, cutoffs=[10, 20], div_val=4)
    with pytest.raises(ZooError, match="embedding must be an AdaptiveEmbedding"):
        AdaptiveSoftmax(30, 8, 8, cutoffs=[10, 20], embedding=keras.layers.Embedding(30, 8))


@pytest.mark.parametrize("div_val,d_embed", CONFIGS)
def test_mixed_precision_embedding_equals_float32(div_val, d_embed):
    """(Keras 3.15's TF `ops.einsum` with "..." is wrong in float16: a regression guard.)"""
    embedding, _ = _pair(div_val, d_embed)
    keras.utils.set_random_seed(0)
    half = AdaptiveEmbedding(V, d_embed, D_PROJ, cutoffs=CUTOFFS, div_val=div_val, dtype="mixed_float16")
    half.build()
    for a, b in zip(half.weights, embedding.weights):
        a.assign(b)
    ids = np.random.default_rng(5).integers(0, V, size=(2, 6))
    out = half(ids)
    assert out.dtype == "float16"
    np.testing.assert_allclose(np.asarray(tf.cast(out, tf.float32)), np.asarray(embedding(ids)), atol=2e-3)

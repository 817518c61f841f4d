"""Tiny SUMBT models, dialogue batches with padded turns, and a NumPy re-implementation of the official forward
pass (SKTBrain/SUMBT BeliefTrackerSlotQueryMultiSlot.forward, PyTorch semantics) to compare against."""

import keras
import numpy as np

from zoo.models.bert import BertBackbone
from zoo.models.sumbt import SUMBT

TINY_BERT = dict(vocabulary_size=40, num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32, dropout=0.0,
                 max_sequence_length=16)
NUM_VALUES = (4, 3, 2)
PAD_ID = 1  # as KoBERT: padding is found through padding_mask, not ids > 0


def tiny_model(seed=0, num_values=NUM_VALUES, **overrides):
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    mask = np.arange(max(num_values))[None, :] < np.asarray(num_values)[:, None]
    slots = rng.normal(size=(len(num_values), TINY_BERT["hidden_dim"])).astype("float32")
    values = (rng.normal(size=mask.shape + (TINY_BERT["hidden_dim"],)) * mask[..., None]).astype("float32")
    config = dict(num_heads=4, hidden_dim=6, dropout=0.0, slot_names=["area", "food", "price range"][:len(num_values)])
    return SUMBT(BertBackbone(**TINY_BERT), slots, values, mask, **{**config, **overrides})


def dialogues(turns_per_dialogue=(3, 1, 2, 3), max_turns=3, length=8, seed=0, num_values=NUM_VALUES):
    """A batch dict: the three inputs [B, T, L] (padding id PAD_ID) and labels [B, T, S], -1 on padded turns."""
    rng = np.random.default_rng(seed)
    batch = len(turns_per_dialogue)
    lengths = rng.integers(3, length + 1, size=(batch, max_turns))
    real = np.arange(max_turns)[None, :] < np.asarray(turns_per_dialogue)[:, None]
    lengths = lengths * real
    mask = (np.arange(length) < lengths[..., None]).astype("int32")
    ids = np.where(mask > 0, rng.integers(2, TINY_BERT["vocabulary_size"], size=mask.shape), PAD_ID).astype("int32")
    segments = ((np.arange(length) >= (lengths[..., None] + 1) // 2) * mask).astype("int32")
    labels = np.stack([rng.integers(0, n, size=(batch, max_turns)) for n in num_values], -1)
    labels = np.where(real[..., None], labels, -1).astype("int32")
    return {"token_ids": ids, "segment_ids": segments, "padding_mask": mask, "labels": labels}


def inputs_of(batch):
    return {k: batch[k] for k in ("token_ids", "segment_ids", "padding_mask")}


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def attend_per_slot(model, tokens, mask, slot):
    """The official MultiHeadAttention for ONE slot vector (query length 1) over [N, L, H] utterances."""
    att = model.slot_attention
    heads, width = model.num_heads, tokens.shape[-1]
    d_k = width // heads

    def proj(dense, x):
        return x @ np.asarray(dense.kernel).reshape(width, width) + np.asarray(dense.bias).reshape(width)

    q = proj(att._query_dense, slot[None, :])  # [1, H]
    k, v = proj(att._key_dense, tokens), proj(att._value_dense, tokens)  # [N, L, H]
    out = np.zeros((len(tokens), width))
    for h in range(heads):
        part = slice(h * d_k, (h + 1) * d_k)
        scores = np.einsum("d,nld->nl", q[0, part], k[..., part]) / np.sqrt(d_k)
        scores = np.where(mask > 0, scores, -1e9)
        p = np.exp(scores - scores.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        out[:, part] = np.einsum("nl,nld->nd", p, v[..., part])
    return out @ np.asarray(att._output_dense.kernel).reshape(width, width) + np.asarray(att._output_dense.bias)


def reference_logits(model, inputs):
    """float64 [B, T, S, Vmax] logits computed the official way, one slot and one turn at a time."""
    ids = inputs["token_ids"]
    batch, turns, length = ids.shape
    flat = {k: v.reshape(-1, length) for k, v in inputs.items()}
    tokens = np.asarray(model.utterance_backbone(flat)["sequence_output"], "float64")
    tokens = tokens * flat["padding_mask"][..., None]
    slots = np.asarray(model.slot_table, "float64")
    values = np.asarray(model.value_table, "float64")
    cell = model.belief_rnn.cell
    kernel, recurrent, bias = (np.asarray(w, "float64") for w in (cell.kernel, cell.recurrent_kernel, cell.bias))
    units = recurrent.shape[0]
    gamma, beta = np.asarray(model.output_layer_norm.gamma), np.asarray(model.output_layer_norm.beta)
    logits = np.zeros((batch, turns) + values.shape[:2])
    for s in range(len(slots)):
        attended = attend_per_slot(model, tokens, flat["padding_mask"], slots[s]).reshape(batch, turns, -1)
        if model.zero_init_rnn:
            h = np.zeros((batch, units))
        else:
            dense = model.rnn_init_dense
            h = np.maximum(attended[:, 0] @ np.asarray(dense.kernel) + np.asarray(dense.bias), 0)
        c = np.zeros_like(h)
        for t in range(turns):
            x = attended[:, t]
            if model.rnn == "gru":  # torch.nn.GRU: r, z from input+hidden; n uses r * (W_hn h + b_hn)
                xi, hi = x @ kernel + bias[0], h @ recurrent + bias[1]
                z = _sigmoid(xi[:, :units] + hi[:, :units])
                r = _sigmoid(xi[:, units:2 * units] + hi[:, units:2 * units])
                n = np.tanh(xi[:, 2 * units:] + r * hi[:, 2 * units:])
                h = (1 - z) * n + z * h
            else:  # torch.nn.LSTM gates i, f, g, o (Keras order i, f, c, o)
                g = x @ kernel + h @ recurrent + bias
                i, f, o = _sigmoid(g[:, :units]), _sigmoid(g[:, units:2 * units]), _sigmoid(g[:, 3 * units:])
                c = f * c + i * np.tanh(g[:, 2 * units:3 * units])
                h = o * np.tanh(c)
            y = h @ np.asarray(model.output_dense.kernel) + np.asarray(model.output_dense.bias)
            y = (y - y.mean(-1, keepdims=True)) / np.sqrt(y.var(-1, keepdims=True) + 1e-5) * gamma + beta
            # torch.nn.PairwiseDistance(p=2, eps=1e-6)(value, hidden) = ||value - hidden + eps||
            dist = np.linalg.norm(values[s][None] - y[:, None] + 1e-6, axis=-1)
            logits[:, t, s] = np.where(model.value_mask[s], -dist, -1e9)
    return logits

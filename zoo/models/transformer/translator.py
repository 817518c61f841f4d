"""The translation task: a `TransformerBackbone` trained with label-smoothed cross-entropy, decoded by beam search."""

import keras
import tensorflow as tf
from keras import ops

from zoo.layers import Configurable
from zoo.losses import label_smoothed_cross_entropy
from zoo.ops import apply_gradients, weighted_mean

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3  # the shared subword vocabulary's special ids (zoo.data.subword)


def decoder_inputs(target_ids, bos_id=BOS_ID, pad_id=PAD_ID):
    """Teacher forcing: BOS followed by the target shifted right by one; the padding mask of the targets."""
    target_ids = ops.cast(target_ids, "int32")
    bos = ops.ones_like(target_ids[:, :1]) * bos_id
    inputs = ops.concatenate([bos, target_ids[:, :-1]], axis=1)
    return inputs, ops.cast(ops.not_equal(target_ids, pad_id), "int32")


@keras.saving.register_keras_serializable(package="zoo")
class Translator(Configurable, keras.Model):
    """Sequence-to-sequence training and decoding around a `TransformerBackbone`.

    Inputs (dict of int32 [batch, length]): `source_ids` and `target_ids`, right-padded with 0; each target ends
    with EOS and carries no BOS (the decoder input is BOS + the target shifted right). Output: `{"logits"}`.

    `train_step`: label-smoothed cross-entropy (ε = `label_smoothing`, 0.1 in the paper) averaged over the real
    target tokens of the *global* batch, so any replica count gives the same update (`zoo.ops.weighted_mean`);
    logs `loss`, `nll` (unsmoothed, per token) and `token_accuracy`. `test_step` updates the metrics `loss`,
    `nll` and `token_accuracy` (exact global means over target tokens); perplexity is exp(nll).
    `translate(source_ids, beam_size=4, alpha=0.6)` decodes with the cached beam search of `zoo.decoding` (greedy
    for `beam_size=1`), at most source length + `extra_length` tokens (the paper: +50), EOS included.

    Example:
        backbone = zoo.create_model("transformer_tiny", vocabulary_size=1000)
        model = Translator(backbone)
        model.compile(optimizer=keras.optimizers.Adam(TransformerSchedule(128), 0.9, 0.98, 1e-9))
        logs = model.train_step({"source_ids": src, "target_ids": tgt})   # or zoo.training.Trainer
        out = model.translate(src)          # {"ids": [batch, T], "scores", "lengths", "log_probs"}
    """

    def __init__(self, backbone, label_smoothing=0.1, clip_norm=None, **kwargs):
        # === Functional Model ===
        inputs = {name: keras.Input((None,), dtype="int32", name=name) for name in ("source_ids", "target_ids")}
        decoder_ids, decoder_mask = decoder_inputs(inputs["target_ids"])
        outputs = backbone({
            "encoder_token_ids": inputs["source_ids"],
            "encoder_padding_mask": ops.cast(ops.not_equal(inputs["source_ids"], PAD_ID), "int32"),
            "decoder_token_ids": decoder_ids,
            "decoder_padding_mask": decoder_mask,
        })
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.backbone = backbone
        self.label_smoothing = label_smoothing
        self.clip_norm = clip_norm

        # === Evaluation metrics ===
        self.loss_metric = keras.metrics.Mean(name="loss")
        self.nll_metric = keras.metrics.Mean(name="nll")
        self.accuracy_metric = keras.metrics.Mean(name="token_accuracy")

    def _per_token(self, data, training):
        """Smoothed and plain cross-entropies, hits and weights (1 = real target token), float32 [batch, T]."""
        logits = self({"source_ids": data["source_ids"], "target_ids": data["target_ids"]},
                      training=training)["logits"]
        labels = ops.cast(data["target_ids"], "int32")
        smoothed = label_smoothed_cross_entropy(labels, logits, self.label_smoothing)
        nll = label_smoothed_cross_entropy(labels, logits, 0.0)
        hits = ops.cast(ops.equal(ops.cast(ops.argmax(logits, -1), "int32"), labels), "float32")
        return smoothed, nll, hits, ops.cast(ops.not_equal(labels, PAD_ID), "float32")

    def train_step(self, data):
        with tf.GradientTape() as tape:
            smoothed, nll, hits, weights = self._per_token(data, training=True)
            share, loss = weighted_mean(smoothed, weights)
            scaled = self.optimizer.scale_loss(share)
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        apply_gradients(self.optimizer, grads, variables, self.clip_norm)
        _, nll_mean = weighted_mean(nll, weights)
        _, accuracy = weighted_mean(hits, weights)
        return {"loss": loss, "nll": nll_mean, "token_accuracy": accuracy}

    def test_step(self, data):
        """Updates `loss`, `nll` and `token_accuracy` over the real target tokens of one batch (inference mode)."""
        smoothed, nll, hits, weights = self._per_token(data, training=False)
        flat = lambda x: ops.reshape(x, (-1,))  # noqa: E731
        for metric, values in ((self.loss_metric, smoothed), (self.nll_metric, nll), (self.accuracy_metric, hits)):
            metric.update_state(flat(values), sample_weight=flat(weights))
        return {m.name: m.result() for m in (self.loss_metric, self.nll_metric, self.accuracy_metric)}

    def translate(self, source_ids, beam_size=4, alpha=0.6, extra_length=50, return_all_beams=False):
        """Decodes right-padded `source_ids` [batch, S]; see `zoo.decoding.beam_search` for the outputs.

        Each example may generate up to its source length + `extra_length` tokens (EOS included), at most the
        backbone's `max_sequence_length`. The decoding cache holds min(source width + `extra_length`,
        `max_sequence_length`) positions: a Python int when the source width is static (eagerly, XLA), else a
        run-time bound (a `tf.function` over any shape, the export)."""
        from zoo.decoding import beam_search, greedy_search

        source_ids = tf.cast(source_ids, tf.int32)
        mask = tf.cast(tf.not_equal(source_ids, PAD_ID), tf.int32)
        limit = self.backbone.max_sequence_length
        width = source_ids.shape[1]
        if width is not None:
            capacity = min(int(width) + extra_length, limit)
        else:
            capacity = tf.minimum(tf.shape(source_ids)[1] + extra_length, limit)
        max_lengths = tf.minimum(tf.reduce_sum(mask, axis=1) + extra_length, capacity)
        cache = self.backbone.init_cache(source_ids, mask, capacity)
        common = dict(bos_id=BOS_ID, eos_id=EOS_ID, max_lengths=max_lengths, max_length=capacity, pad_id=PAD_ID)
        if beam_size == 1:
            return greedy_search(self.backbone.decode_step, cache, **common)
        return beam_search(self.backbone.decode_step, cache, beam_size=beam_size, alpha=alpha,
                           return_all_beams=return_all_beams, **common)

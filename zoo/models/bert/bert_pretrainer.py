"""BERT pretraining model: masked LM (tied to the word embeddings) + next-sentence prediction."""

import keras
import tensorflow as tf
from keras import ops

from zoo.layers import Configurable, MaskedLMHead, truncated_normal_initializer
from zoo.models.bert.bert_backbone import BertBackbone, bert_activation
from zoo.ops import apply_gradients, weighted_mean

FEATURES = ("token_ids", "segment_ids", "padding_mask", "mask_positions")


@keras.saving.register_keras_serializable(package="zoo")
class BertPretrainer(Configurable, keras.Model):
    """A `BertBackbone` with the original pretraining heads and a distributed-exact `train_step`.

    Inputs: the backbone's three int32 [batch, seq] inputs plus `mask_positions` [batch, max_predictions].
    Outputs: `mlm_logits` [batch, max_predictions, vocab] and `nsp_logits` [batch, 2] (label 1 = random
    next sentence, as in google-research/bert and Hugging Face). The MLM transform uses the backbone's
    `activation` and `layer_norm_epsilon`, as both do.

    `train_step` takes one batch dict with the inputs and `mask_ids`, `mask_weights`, `nsp_labels`. The MLM
    loss is the mean over real masked positions only (Σ loss·weight / Σ weight over the *global* batch),
    the NSP loss the mean over the global batch, so any replica count gives the same update. `clip_norm`
    clips the global gradient norm (BERT: 1.0) across replicas (see `zoo.ops.clip_by_global_norm`).

    `test_step` (inference mode, for `zoo.training.Trainer`'s evaluation) takes the same batches and updates
    the model's metrics `mlm_accuracy` and `mlm_loss` (means over real masked positions, weighted by
    `mask_weights`), `nsp_accuracy` and `nsp_loss`; their results over all evaluation batches and replicas
    are the exact global means (`model.eval_metrics`; reset them before an evaluation).

    Example:
        backbone = zoo.create_model("bert_tiny", vocabulary_size=1000)
        model = BertPretrainer(backbone)
        model.compile(optimizer=keras.optimizers.AdamW(1e-4))
        logs = model.train_step(batch)   # or zoo.training.Trainer(model, ...).train()
    """

    def __init__(self, backbone, clip_norm=None, **kwargs):
        # === Layers ===
        self.backbone = backbone
        self.mlm_head = MaskedLMHead(
            backbone.token_embedding, activation=bert_activation(getattr(backbone, "activation", "gelu_approximate")),
            layer_norm_epsilon=getattr(backbone, "layer_norm_epsilon", 1e-12),
            kernel_initializer=truncated_normal_initializer(), dtype=backbone.dtype_policy, name="mlm_head")
        self.nsp_head = keras.layers.Dense(
            2, kernel_initializer=truncated_normal_initializer(), dtype=backbone.dtype_policy, name="nsp_head")

        # === Functional Model ===
        inputs = {name: keras.Input((None,), dtype="int32", name=name) for name in FEATURES}
        outputs = backbone({k: inputs[k] for k in ("token_ids", "segment_ids", "padding_mask")})
        mlm_logits = self.mlm_head(outputs["sequence_output"], mask_positions=inputs["mask_positions"])
        nsp_logits = self.nsp_head(outputs["pooled_output"])
        super().__init__(inputs=inputs, outputs={"mlm_logits": mlm_logits, "nsp_logits": nsp_logits}, **kwargs)

        # === Config ===
        self.clip_norm = clip_norm

        # === Evaluation metrics ===
        self.mlm_accuracy = keras.metrics.Mean(name="mlm_accuracy")
        self.mlm_loss = keras.metrics.Mean(name="mlm_loss")
        self.nsp_accuracy = keras.metrics.Mean(name="nsp_accuracy")
        self.nsp_loss = keras.metrics.Mean(name="nsp_loss")

    @property
    def eval_metrics(self):
        """The metrics `test_step` updates."""
        return [self.mlm_accuracy, self.mlm_loss, self.nsp_accuracy, self.nsp_loss]

    def _losses_and_hits(self, data, outputs):
        """Per-position MLM and per-example NSP cross-entropies and hits, float32."""
        mlm_logits = ops.cast(outputs["mlm_logits"], "float32")
        nsp_logits = ops.cast(outputs["nsp_logits"], "float32")
        mlm_ce = keras.losses.sparse_categorical_crossentropy(data["mask_ids"], mlm_logits, from_logits=True)
        nsp_ce = keras.losses.sparse_categorical_crossentropy(data["nsp_labels"], nsp_logits, from_logits=True)
        mlm_hits = ops.cast(ops.equal(ops.argmax(mlm_logits, -1), ops.cast(data["mask_ids"], "int64")), "float32")
        nsp_hits = ops.cast(ops.equal(ops.argmax(nsp_logits, -1), ops.cast(data["nsp_labels"], "int64")), "float32")
        return mlm_ce, nsp_ce, mlm_hits, nsp_hits

    def train_step(self, data):
        inputs = {k: data[k] for k in FEATURES}
        with tf.GradientTape() as tape:
            mlm_ce, nsp_ce, mlm_hits, nsp_hits = self._losses_and_hits(data, self(inputs, training=True))
            mlm_share, mlm_loss = weighted_mean(mlm_ce, data["mask_weights"])
            nsp_share, nsp_loss = weighted_mean(nsp_ce)
            scaled = self.optimizer.scale_loss(mlm_share + nsp_share)
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        apply_gradients(self.optimizer, grads, variables, self.clip_norm)

        _, mlm_accuracy = weighted_mean(mlm_hits, data["mask_weights"])
        _, nsp_accuracy = weighted_mean(nsp_hits)
        return {
            "loss": mlm_loss + nsp_loss,
            "mlm_loss": mlm_loss,
            "mlm_accuracy": mlm_accuracy,
            "nsp_loss": nsp_loss,
            "nsp_accuracy": nsp_accuracy,
        }

    def test_step(self, data):
        """Updates the evaluation metrics on one batch (inference mode); returns their results so far."""
        outputs = self({k: data[k] for k in FEATURES}, training=False)
        mlm_ce, nsp_ce, mlm_hits, nsp_hits = self._losses_and_hits(data, outputs)
        weights = ops.reshape(ops.cast(data["mask_weights"], "float32"), (-1,))
        self.mlm_accuracy.update_state(ops.reshape(mlm_hits, (-1,)), sample_weight=weights)
        self.mlm_loss.update_state(ops.reshape(mlm_ce, (-1,)), sample_weight=weights)
        self.nsp_accuracy.update_state(nsp_hits)
        self.nsp_loss.update_state(nsp_ce)
        return {m.name: m.result() for m in self.eval_metrics}


__all__ = ["BertBackbone", "BertPretrainer"]

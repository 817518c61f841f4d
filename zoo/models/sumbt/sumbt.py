"""SUMBT: slot-utterance matching belief tracker (Lee, Lee and Kim 2019, arXiv 1907.07421), as in
SKTBrain/SUMBT `code/BeliefTrackerSlotQueryMultiSlot.py`."""

import keras
import numpy as np
import tensorflow as tf

from zoo.errors import ZooError
from zoo.layers import Configurable
from zoo.models.sumbt import sumbt_metrics as sm
from zoo.ops import apply_used_gradients, weighted_mean

INPUTS = ("token_ids", "segment_ids", "padding_mask")
LAYER_NORM_EPSILON = 1e-5  # torch.nn.LayerNorm's default, which the official code keeps
DISTANCE_EPSILON = 1e-6  # torch.nn.PairwiseDistance(p=2, eps=1e-6)
PADDED_VALUE_LOGIT = -1e9


def torch_linear_initializers(fan_in):
    """(kernel, bias) initializers of a default `torch.nn.Linear`: both U(±1/sqrt(fan_in))."""
    bound = float(fan_in) ** -0.5
    return keras.initializers.RandomUniform(-bound, bound), keras.initializers.RandomUniform(-bound, bound)


def xavier_normal():
    """`torch.nn.init.xavier_normal_` (untruncated N(0, 2/(fan_in+fan_out))), the official GRU/LSTM weights."""
    return keras.initializers.VarianceScaling(1.0, "fan_avg", "untruncated_normal")


@keras.saving.register_keras_serializable(package="zoo")
class SUMBT(Configurable, keras.Model):
    """A fine-tuned utterance BERT, slot-utterance attention, an RNN over turns, and Euclidean matching
    against frozen value vectors.

    Per turn `[CLS] user [SEP] system [SEP]` goes through `utterance_backbone` (a `BertBackbone`); its
    last-layer token vectors, multiplied by `padding_mask`, are keys and values of a multi-head attention
    whose queries are the S frozen slot vectors (q/k/v/output projections with biases, scaled dot product,
    `num_heads` heads, no dropout, padding masked; one query position per slot, which equals the official
    code's repetition of the utterance once per slot). Each slot's attended vectors run through a GRU
    (Keras `reset_after=True`, PyTorch's GRU) over the dialogue's turns, started from
    h0 = Dropout(ReLU(Linear(attended vector of turn 0))) unless `zero_init_rnn` (then zeros); with
    `rnn="lstm"` the cell state starts at zeros, as the official code does. Then Dropout -> Linear(hidden ->
    H) -> LayerNorm (eps 1e-5, PyTorch's default), and the logits are minus the Euclidean distances to the
    slot's value vectors, -||v - x + 1e-6||_2 as `PairwiseDistance(p=2, eps=1e-6)(value, x)`, computed
    from the expanded square (no [.., values, H] difference tensor); padded values get -1e9.

    Weights are initialised as the official code: PyTorch's default Linear init (U(+-1/sqrt(fan_in)) for
    kernels and biases) for the attention and the two Linears, Xavier-normal RNN weights with zero biases.

    The slot and value tables are non-trainable weights of this model, so checkpoints and exports carry
    them (the frozen encoder that made them is not kept; see `encode_ontology`). `get_config` stores only
    `value_mask`; the tables come back with the weights.

    Args:
        utterance_backbone: a `BertBackbone`, fine-tuned.
        slot_vectors: float [S, H] or None (zeros, to be loaded with the weights).
        value_vectors: float [S, Vmax, H] or None (zeros).
        value_mask: bool [S, Vmax], True where the slot has that value.
        num_heads: attention heads (4). rnn: "gru" or "lstm". hidden_dim: RNN units (300).
        zero_init_rnn: start the RNN from zeros. dropout: the official hidden dropout (0.1).
        slot_names: S names for the per-slot metrics (`acc_<name>`); default slot_0, slot_1, ...
        clip_norm: global gradient-norm clipping across replicas (None: none, as the official code).

    Inputs: dict of int32 [batch, turns, seq] `token_ids`, `segment_ids`, `padding_mask` (1 = token).
    Outputs: `logits` float32 [batch, turns, S, Vmax], `predictions` int32 [batch, turns, S].
    `train_step`/`test_step` take these plus `labels` int32 [batch, turns, S] (-1 on padded turns); see
    `sumbt_metrics` for the loss and the accuracies, and `eval_metrics`.

    Example:
        backbone = zoo.create_model("bert_tiny", vocabulary_size=100)
        frozen = zoo.create_model("bert_tiny", vocabulary_size=100)   # pretrained weights in practice
        rows = lambda ids: {"token_ids": np.array(ids, "int32"), "segment_ids": 0 * np.array(ids, "int32"),
                            "padding_mask": (np.array(ids) > 0).astype("int32")}
        slots = rows([[2, 5, 3], [2, 6, 3]])                          # [CLS] area [SEP], [CLS] food [SEP]
        values = rows([[[2, 7, 3], [2, 8, 3]], [[2, 9, 3], [0, 0, 0]]])  # food has one value
        model = SUMBT(backbone, *encode_ontology(frozen, slots, values), slot_names=["area", "food"])
        batch = {**rows([[[2, 11, 3, 12, 3], [2, 13, 3, 0, 0]]]),     # 1 dialogue, 2 turns
                 "labels": np.array([[[0, 0], [1, 0]]], "int32")}
        model.compile(optimizer=keras.optimizers.Adam(5e-5))
        logs = model.train_step(batch)          # or zoo.training.Trainer(model, ...).train()
        model(batch)["predictions"].shape       # (1, 2, 2)
    """

    config_aliases = {"slot_vectors": "_tables_in_weights", "value_vectors": "_tables_in_weights",
                      "value_mask": "_value_mask_config"}

    def __init__(self, utterance_backbone, slot_vectors, value_vectors, value_mask, num_heads=4, rnn="gru",
                 hidden_dim=300, zero_init_rnn=False, dropout=0.1, slot_names=None, clip_norm=None, **kwargs):
        super().__init__(**kwargs)
        value_mask = np.asarray(value_mask, bool)
        width = utterance_backbone.hidden_dim
        if value_mask.ndim != 2 or not value_mask.any(-1).all():
            raise ZooError(f"value_mask must be bool [slots, max values] with at least one value per slot, got "
                           f"shape {value_mask.shape}; check the ontology")
        num_slots, max_values = value_mask.shape
        slot_vectors = np.zeros((num_slots, width), "float32") if slot_vectors is None else slot_vectors
        value_vectors = np.zeros((num_slots, max_values, width), "float32") if value_vectors is None else value_vectors
        if np.shape(slot_vectors) != (num_slots, width) or np.shape(value_vectors) != (num_slots, max_values, width):
            raise ZooError(f"slot/value vectors have shapes {np.shape(slot_vectors)}/{np.shape(value_vectors)}; "
                           f"expected ({num_slots}, {width})/({num_slots}, {max_values}, {width}) for this value "
                           "mask and the utterance backbone's hidden size; encode the ontology with a backbone "
                           "of the same hidden size")
        if rnn not in ("gru", "lstm"):
            raise ZooError(f"rnn must be 'gru' or 'lstm', got {rnn!r}")
        if width % num_heads:
            raise ZooError(f"num_heads={num_heads} must divide the backbone's hidden size {width}")
        slot_names = [f"slot_{i}" for i in range(num_slots)] if slot_names is None else list(slot_names)
        if len(slot_names) != num_slots:
            raise ZooError(f"slot_names has {len(slot_names)} names for {num_slots} slots")
        dtype = utterance_backbone.dtype_policy

        # === Layers ===
        self.utterance_backbone = utterance_backbone
        kernel, bias = torch_linear_initializers(width)
        self.slot_attention = keras.layers.MultiHeadAttention(
            num_heads, width // num_heads, kernel_initializer=kernel, bias_initializer=bias, dtype=dtype,
            name="slot_attention")
        self.slot_attention.build((None, num_slots, width), (None, None, width))
        self.rnn_init_dense = None
        if not zero_init_rnn:
            self.rnn_init_dense = keras.layers.Dense(
                hidden_dim, activation="relu", kernel_initializer=kernel, bias_initializer=bias, dtype=dtype,
                name="rnn_init_dense")
            self.rnn_init_dense.build((None, width))
        rnn_layer = keras.layers.GRU if rnn == "gru" else keras.layers.LSTM
        self.belief_rnn = rnn_layer(
            hidden_dim, return_sequences=True, kernel_initializer=xavier_normal(),
            recurrent_initializer=xavier_normal(), bias_initializer="zeros", dtype=dtype, name=f"belief_{rnn}",
            **({"unit_forget_bias": False} if rnn == "lstm" else {}))  # the official LSTM's biases start at 0
        self.belief_rnn.build((None, None, width))
        kernel, bias = torch_linear_initializers(hidden_dim)
        self.output_dense = keras.layers.Dense(
            width, kernel_initializer=kernel, bias_initializer=bias, dtype=dtype, name="output_dense")
        self.output_dense.build((None, hidden_dim))
        self.output_layer_norm = keras.layers.LayerNormalization(
            epsilon=LAYER_NORM_EPSILON, dtype=dtype, name="output_layer_norm")
        self.output_layer_norm.build((None, width))
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=dtype, name="dropout")

        # === Frozen lookup tables (non-trainable weights) ===
        self.slot_table = self.add_weight(shape=(num_slots, width), initializer="zeros", dtype="float32",
                                          trainable=False, autocast=False, name="slot_vectors")
        self.value_table = self.add_weight(shape=(num_slots, max_values, width), initializer="zeros",
                                           dtype="float32", trainable=False, autocast=False,
                                           name="value_vectors")
        self.slot_table.assign(np.asarray(slot_vectors, "float32"))
        self.value_table.assign(np.asarray(value_vectors, "float32"))
        self._value_mask = value_mask
        self.built = True

        # === Config ===
        self._tables_in_weights = None
        self._value_mask_config = value_mask.tolist()
        self.num_heads = num_heads
        self.rnn = rnn
        self.hidden_dim = hidden_dim
        self.zero_init_rnn = zero_init_rnn
        self.dropout = dropout
        self.slot_names = slot_names
        self.clip_norm = clip_norm

        # === Evaluation metrics ===
        self.loss_metric = keras.metrics.Mean(name="loss")
        self.joint_accuracy = keras.metrics.Mean(name="joint_accuracy")
        self.slot_accuracy = keras.metrics.Mean(name="slot_accuracy")
        self.per_slot_accuracy = [keras.metrics.Mean(name=sm.metric_name(n)) for n in slot_names]

    @property
    def num_slots(self):
        return self._value_mask.shape[0]

    @property
    def value_mask(self):
        """bool numpy [S, Vmax]."""
        return self._value_mask

    @property
    def eval_metrics(self):
        """The metrics `test_step` updates: loss, joint_accuracy, slot_accuracy, acc_<slot> for each slot."""
        return [self.loss_metric, self.joint_accuracy, self.slot_accuracy, *self.per_slot_accuracy]

    # === Forward ===

    def call(self, inputs, training=None):
        token_ids = tf.convert_to_tensor(inputs["token_ids"])
        shape = tf.shape(token_ids)
        batch, turns, length = shape[0], shape[1], shape[2]
        flat = {k: tf.reshape(tf.convert_to_tensor(inputs[k]), [-1, length]) for k in INPUTS}
        tokens = self.utterance_backbone(flat, training=training)["sequence_output"]  # [B*T, L, H]
        mask = flat["padding_mask"] > 0
        tokens = tokens * tf.cast(mask, tokens.dtype)[:, :, None]
        width = self.slot_table.shape[-1]
        queries = tf.broadcast_to(tf.cast(self.slot_table, tokens.dtype)[None], [batch * turns, self.num_slots, width])
        attention_mask = tf.broadcast_to(mask[:, None, :], [batch * turns, self.num_slots, length])
        attended = self.slot_attention(queries, tokens, tokens, attention_mask=attention_mask, training=training)
        # [B*T, S, H] -> [B*S, T, H]: one sequence over turns per (dialogue, slot).
        attended = tf.reshape(tf.transpose(tf.reshape(attended, [batch, turns, self.num_slots, width]), [0, 2, 1, 3]),
                              [batch * self.num_slots, turns, width])
        states = None
        if not self.zero_init_rnn:
            h0 = self.dropout_layer(self.rnn_init_dense(attended[:, 0]), training=training)
            states = [h0] if self.rnn == "gru" else [h0, tf.zeros_like(h0)]
        hidden = self.belief_rnn(attended, initial_state=states, training=training)
        hidden = self.output_layer_norm(self.output_dense(self.dropout_layer(hidden, training=training)))
        hidden = tf.transpose(tf.reshape(tf.cast(hidden, tf.float32), [batch, self.num_slots, turns, width]),
                              [0, 2, 1, 3])  # [B, T, S, H]
        logits = tf.where(self._value_mask, -self.distances(hidden), PADDED_VALUE_LOGIT)
        return {"logits": logits, "predictions": tf.argmax(logits, axis=-1, output_type=tf.int32)}

    def distances(self, hidden):
        """float32 [B, T, S, Vmax]: ||v - x + eps||_2 from `hidden` x [B, T, S, H] to every value vector v
        of its slot, as ||v - x||^2 + 2 eps sum(v - x) + H eps^2 (the square root floored at 1e-6). Both sides
        are first centred on the mean of the slot's values (distances do not change), so the dot product is
        small and the expanded square loses little to cancellation (float32, or TF32 matmuls on GPUs)."""
        mask = tf.cast(self._value_mask, self.value_table.dtype)[..., None]  # [S, Vmax, 1]
        centre = tf.reduce_sum(self.value_table * mask, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)  # [S, H]
        values = (self.value_table - centre[:, None, :]) * mask
        hidden = hidden - centre
        width = values.shape[-1]
        square = (tf.reduce_sum(hidden * hidden, -1)[..., None] + tf.reduce_sum(values * values, -1)
                  - 2.0 * tf.einsum("btsh,svh->btsv", hidden, values)
                  + 2.0 * DISTANCE_EPSILON * (tf.reduce_sum(values, -1) - tf.reduce_sum(hidden, -1)[..., None])
                  + width * DISTANCE_EPSILON ** 2)
        return tf.sqrt(tf.maximum(square, 1e-12))

    # === Steps ===

    def train_step(self, data):
        labels = data["labels"]
        with tf.GradientTape() as tape:
            outputs = self({k: data[k] for k in INPUTS}, training=True)
            share, loss = sm.slot_loss(sm.cross_entropy(outputs["logits"], labels), labels)
            scaled = self.optimizer.scale_loss(share)
        # The utterance BERT's pooler gets no gradient (unused, as in the official code): leave it out.
        apply_used_gradients(self.optimizer, tape.gradient(scaled, self.trainable_variables), self.trainable_variables,
                             self.clip_norm)
        predictions = outputs["predictions"]
        _, joint = weighted_mean(sm.joint_hits(predictions, labels), sm.turn_weights(labels))
        _, slot = weighted_mean(sm.slot_hits(predictions, labels), sm.slot_weights(labels))
        return {"loss": loss, "joint_accuracy": joint, "slot_accuracy": slot}

    def test_step(self, data):
        """Updates `eval_metrics` on one batch (inference mode); returns their results so far. `loss` is the
        mean over real turns of the cross-entropy summed over slots (the training loss when every real turn
        labels every slot)."""
        labels = data["labels"]
        outputs = self({k: data[k] for k in INPUTS}, training=False)
        ce = sm.cross_entropy(outputs["logits"], labels)
        turn_weights = sm.turn_weights(labels)
        slot_weights = sm.slot_weights(labels)
        hits = sm.slot_hits(outputs["predictions"], labels)
        self.loss_metric.update_state(tf.reduce_sum(ce, -1), sample_weight=turn_weights)
        self.joint_accuracy.update_state(sm.joint_hits(outputs["predictions"], labels), sample_weight=turn_weights)
        self.slot_accuracy.update_state(hits, sample_weight=slot_weights)
        for s, metric in enumerate(self.per_slot_accuracy):
            metric.update_state(hits[..., s], sample_weight=slot_weights[..., s])
        return {m.name: m.result() for m in self.eval_metrics}

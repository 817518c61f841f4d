"""A stacked recurrent language model: embedding, LSTM/GRU/simple-RNN layers, softmax (Zaremba et al. 2014).

    backbone = RNNLMBackbone(vocabulary_size=100, cell="lstm", num_layers=2, hidden_dim=32)
    ids = np.zeros((2, 5), "int32")
    logits = backbone(ids)                                                   # [2, 5, 100] float32
    logits, state = backbone.run(ids, initial_state=backbone.zero_state(2))  # state: [h1, c1, h2, c2]
    more, state = backbone.run(ids, initial_state=state)                     # continues the same streams

The recurrent layers are Keras' own (one bias per gate, cuDNN-able on a GPU), so the parameter counts are the
TF tutorial's: 4H(in+H+1) per LSTM layer, 3H(in+H+1) per GRU layer (`reset_after=False`, Cho et al.'s form;
+3H per layer with `reset_after=True`, the cuDNN form), H(in+H+1) per simple-RNN layer.
"""

import keras
from keras import ops

from zoo.errors import ZooError
from zoo.layers import Configurable

CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple_rnn": keras.layers.SimpleRNN}


@keras.saving.register_keras_serializable(package="zoo")
class RNNLMBackbone(Configurable, keras.Model):
    """Token ids [batch, T] -> next-token logits [batch, T, vocabulary] (float32 under any dtype policy).

    As Zaremba et al. (and the TF PTB tutorial): embedding -> `num_layers` recurrent layers -> dense softmax,
    dropout on the non-recurrent connections only (the embedding output, between layers and before the
    softmax), an independent mask per element and time step; no recurrent dropout, so evaluation
    (`training=False`) is deterministic.

    Args:
        vocabulary_size: V.
        cell: "lstm", "gru" or "simple_rnn".
        num_layers: stacked recurrent layers.
        hidden_dim: H, units of every recurrent layer.
        embedding_dim: width of the input embedding; None: H; 0: one-hot inputs, no embedding (char-rnn).
        dropout: rate on the non-recurrent connections (Zaremba: 0 small, 0.5 medium, 0.65 large).
        init_scale: every embedding, kernel, recurrent kernel and softmax weight and bias uniform in
            ±init_scale as the TF tutorial (recurrent-layer biases start at zero, as `BasicLSTMCell`'s);
            None: Keras' defaults.
        reset_after: GRU only; False (default): Cho et al.'s form, the reset gate applied to h before the
            recurrent matmul; True: Keras'/cuDNN's form with a second bias.
        unit_forget_bias: LSTM only; add 1 to the forget gate's initial bias (Keras' default). False (default)
            is the TF tutorial's `forget_bias=0`.
        tie_weights: share the embedding with the softmax (Press & Wolf; needs an embedding of width H); the
            softmax keeps its bias.
        dtype: dtype policy of every layer; logits are cast to float32.

    `run(token_ids, initial_state=None, mask=None, training=False)` returns `(logits, state)`, `state` a list
    of [batch, H] tensors, layer by layer (`[h, c]` per LSTM layer, `[h]` otherwise); with a `mask`
    ([batch, T], False at padding) the state stays at the last real step. `zero_state(batch_size)` is the
    initial state, `state_size` the number of state tensors. `supports_jit` is False where Keras picked cuDNN
    for the recurrent layers (a GPU): train without `jit_compile` there.
    """

    def __init__(self, vocabulary_size, cell="lstm", num_layers=2, hidden_dim=200, embedding_dim=None,
                 dropout=0.0, init_scale=None, reset_after=False, unit_forget_bias=False, tie_weights=False,
                 dtype=None, **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        if cell not in CELLS:
            raise ZooError(f"unknown cell {cell!r}; choose one of: {', '.join(CELLS)}")
        if num_layers < 1 or hidden_dim < 1 or vocabulary_size < 2:
            raise ZooError(f"an RNN LM needs num_layers >= 1, hidden_dim >= 1 and vocabulary_size >= 2, got "
                           f"{num_layers}, {hidden_dim}, {vocabulary_size}")
        if not 0.0 <= dropout < 1.0:
            raise ZooError(f"dropout must be in [0, 1), got {dropout}")
        width = hidden_dim if embedding_dim is None else embedding_dim
        if tie_weights and width != hidden_dim:
            raise ZooError(f"tie_weights needs embedding_dim == hidden_dim ({hidden_dim}), got {embedding_dim}")

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.cell = cell
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.embedding_dim = embedding_dim
        self.dropout = dropout
        self.init_scale = init_scale
        self.reset_after = reset_after
        self.unit_forget_bias = unit_forget_bias
        self.tie_weights = tie_weights
        self.states_per_layer = 2 if cell == "lstm" else 1
        self.state_size = num_layers * self.states_per_layer

        # === Layers ===
        def init(default):
            if init_scale is None:
                return default
            return keras.initializers.RandomUniform(-init_scale, init_scale)

        self.token_embedding = None
        if width:
            embedding = dict(embeddings_initializer=init("uniform"), dtype=dtype, name="token_embedding")
            if tie_weights:
                self.token_embedding = keras.layers.ReversibleEmbedding(vocabulary_size, width, tie_weights=True,
                                                                        **embedding)
            else:
                self.token_embedding = keras.layers.Embedding(vocabulary_size, width, **embedding)
            self.token_embedding.build((None, None))
        rnn_args = dict(return_sequences=True, return_state=True, kernel_initializer=init("glorot_uniform"),
                        recurrent_initializer=init("orthogonal"), dtype=dtype)
        if cell == "lstm":
            rnn_args["unit_forget_bias"] = unit_forget_bias
        if cell == "gru":
            rnn_args["reset_after"] = reset_after
        self.rnn_layers = []
        features = width or vocabulary_size
        for i in range(num_layers):
            layer = CELLS[cell](hidden_dim, name=f"{cell}_{i}", **rnn_args)
            layer.build((None, None, features))
            self.rnn_layers.append(layer)
            features = hidden_dim
        self.dropout_layers = [keras.layers.Dropout(dropout, dtype=dtype, name=f"dropout_{i}")
                               for i in range(num_layers + 1)]
        if tie_weights:
            self.output_bias = self.add_weight(shape=(vocabulary_size,), initializer=init("zeros"),
                                               name="output_bias")
            self.output_dense = None
        else:
            self.output_dense = keras.layers.Dense(vocabulary_size, kernel_initializer=init("glorot_uniform"),
                                                   bias_initializer=init("zeros"), dtype=dtype, name="softmax")
            self.output_dense.build((None, None, hidden_dim))
        # On a GPU Keras runs LSTM/GRU with cuDNN, which XLA cannot compile; the layers then say so.
        self.supports_jit = all(layer.supports_jit for layer in self.rnn_layers)
        self.built = True

    def build(self, input_shape=None):
        """Every weight is created in `__init__`; nothing to do."""
        self.built = True

    def zero_state(self, batch_size):
        """The initial state: `state_size` zero tensors [batch_size, hidden_dim] (float32)."""
        return [ops.zeros((batch_size, self.hidden_dim), "float32") for _ in range(self.state_size)]

    def call(self, token_ids, training=False):
        """Logits [batch, T, vocabulary] (float32) from the zero state."""
        return self.run(token_ids, training=training)[0]

    def run(self, token_ids, initial_state=None, mask=None, training=False):
        """`(logits, state)` from `initial_state` (a list of `state_size` [batch, H] tensors; None: zeros).

        `mask` ([batch, T] bool, False at padding, right-padded for cuDNN) keeps the state at the last real
        step; logits at masked steps are meaningless."""
        token_ids = ops.cast(token_ids, "int32")
        if self.token_embedding is None:
            x = ops.one_hot(token_ids, self.vocabulary_size, dtype=self.compute_dtype)
        else:
            x = self.token_embedding(token_ids)
        x = self.dropout_layers[0](x, training=training)
        if initial_state is not None and len(initial_state) != self.state_size:
            raise ValueError(f"initial_state must hold {self.state_size} tensors, got {len(initial_state)}")
        if mask is not None:
            mask = ops.cast(mask, "bool")
        state = []
        k = self.states_per_layer
        for i, layer in enumerate(self.rnn_layers):
            layer_state = None
            if initial_state is not None:
                layer_state = [ops.cast(s, self.compute_dtype) for s in initial_state[i * k:(i + 1) * k]]
            outputs = layer(x, initial_state=layer_state, mask=mask, training=training)
            x = outputs[0]
            state.extend(ops.cast(s, "float32") for s in outputs[1:])
            x = self.dropout_layers[i + 1](x, training=training)
        if self.tie_weights:
            logits = ops.cast(self.token_embedding(x, reverse=True), "float32") + ops.cast(self.output_bias, "float32")
        else:
            logits = ops.cast(self.output_dense(x), "float32")
        return logits, state

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.vocabulary_size,)

"""RNN language-model presets: Zaremba et al. 2014's PTB LSTMs, the same shapes with GRU and simple-RNN cells,
and Karpathy's char-rnn; `PAPER_TRAINING` holds each preset's training recipe.

    backbone = zoo.create_model("lstm_lm_small", vocabulary_size=10000)    # 4,651,600 parameters
    PAPER_TRAINING["lstm_lm_small"]["learning_rate"]                         # 1.0 (plain SGD)

Counts with untied embeddings at V = 10,000 (Keras layers, one bias per gate as the TF tutorial's
`BasicLSTMCell`): LSTM 4,651,600 / 19,775,200 / 66,022,000; GRU (`reset_after=False`, Cho et al.'s form)
4,491,200 / 18,083,900 / 57,019,000; simple RNN 4,170,400 / 14,701,300 / 39,013,000; char-rnn (2x128 LSTM,
one-hot inputs, V = 65) 239,297 (the Torch original, with two biases per gate, has 240,321).
"""

import functools

import numpy as np

from zoo.models.sequence.rnn_lm_backbone import RNNLMBackbone
from zoo.registry import Family, register

RNN_LM = Family(
    "rnn_lm",
    "Word-level RNN/LSTM/GRU language models (Zaremba et al. configurations, truncated BPTT)",
    paper="https://arxiv.org/abs/1409.2329",
    code="https://github.com/tensorflow/models/blob/v1.13.0/tutorials/rnn/ptb/ptb_word_lm.py",
)
CHAR_RNN = Family(
    "char_rnn",
    "Character-level LSTM language model (char-rnn: 2x128, one-hot inputs)",
    paper="https://karpathy.github.io/2015/05/21/rnn-effectiveness/",
    code="https://github.com/karpathy/char-rnn",
)

# Zaremba et al. / ptb_word_lm.py: layers, units, init_scale, dropout = 1 - keep_prob.
ZAREMBA = {
    "small": dict(num_layers=2, hidden_dim=200, init_scale=0.1, dropout=0.0),
    "medium": dict(num_layers=2, hidden_dim=650, init_scale=0.05, dropout=0.5),
    "large": dict(num_layers=2, hidden_dim=1500, init_scale=0.04, dropout=0.65),
}
ZAREMBA_TRAINING = {
    "small": dict(seq_length=20, global_batch_size=20, optimizer="sgd", learning_rate=1.0, lr_decay=0.5,
                  decay_after_epochs=4, epochs=13, clip_norm=5.0),
    "medium": dict(seq_length=35, global_batch_size=20, optimizer="sgd", learning_rate=1.0, lr_decay=0.8,
                   decay_after_epochs=6, epochs=39, clip_norm=5.0),
    "large": dict(seq_length=35, global_batch_size=20, optimizer="sgd", learning_rate=1.0, lr_decay=1 / 1.15,
                  decay_after_epochs=14, epochs=55, clip_norm=10.0),
}

PRESETS = {}
PAPER_TRAINING = {}
for _cell in ("lstm", "gru", "simple_rnn"):
    for _size, _config in ZAREMBA.items():
        PRESETS[f"{_cell}_lm_{_size}"] = dict(vocabulary_size=10000, cell=_cell, unit_forget_bias=False,
                                              reset_after=False, **_config)
        PAPER_TRAINING[f"{_cell}_lm_{_size}"] = dict(ZAREMBA_TRAINING[_size])
# char-rnn defaults: 2x128 LSTM, one-hot inputs, dropout 0, uniform(+-0.08) weights, forget-gate biases 1.
PRESETS["char_rnn"] = dict(vocabulary_size=65, cell="lstm", num_layers=2, hidden_dim=128, embedding_dim=0,
                           init_scale=0.08, dropout=0.0, unit_forget_bias=True)
# char-rnn clamps each gradient element to +-5; the zoo clips the global norm to 5 instead.
PAPER_TRAINING["char_rnn"] = dict(seq_length=50, global_batch_size=50, optimizer="rmsprop", learning_rate=2e-3,
                                  lr_decay=0.97, decay_after_epochs=10, epochs=50, clip_norm=5.0)

_METADATA = {
    "lstm_lm_small": (4_651_600, "Zaremba small: 2x200 LSTM, no dropout, PTB V=10k"),
    "lstm_lm_medium": (19_775_200, "Zaremba medium: 2x650 LSTM, dropout 0.5, PTB V=10k"),
    "lstm_lm_large": (66_022_000, "Zaremba large: 2x1500 LSTM, dropout 0.65, PTB V=10k"),
    "gru_lm_small": (4_491_200, "Zaremba small with GRU (reset_after=False, Cho's form): 2x200"),
    "gru_lm_medium": (18_083_900, "Zaremba medium with GRU (reset_after=False): 2x650, dropout 0.5"),
    "gru_lm_large": (57_019_000, "Zaremba large with GRU (reset_after=False): 2x1500, dropout 0.65"),
    "simple_rnn_lm_small": (4_170_400, "Zaremba small with a tanh simple RNN: 2x200"),
    "simple_rnn_lm_medium": (14_701_300, "Zaremba medium with a tanh simple RNN: 2x650, dropout 0.5"),
    "simple_rnn_lm_large": (39_013_000, "Zaremba large with a tanh simple RNN: 2x1500, dropout 0.65"),
    "char_rnn": (239_297, "char-rnn: 2x128 LSTM on one-hot characters, V=65 (tinyshakespeare)"),
}

SMALL = dict(vocabulary_size=50, hidden_dim=16)


def example_inputs(backbone, batch_size=2, seed=0):
    """Random token ids [batch_size, 7] (int32) for an `RNNLMBackbone`."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, backbone.vocabulary_size, size=(batch_size, 7)).astype("int32")


def build_rnn_lm(name, **overrides):
    """`RNNLMBackbone` with the preset's config; keyword arguments override it."""
    return RNNLMBackbone(**{**PRESETS[name], **overrides})


for _name, (_params, _description) in _METADATA.items():
    register(_name, family=CHAR_RNN if _name == "char_rnn" else RNN_LM, params=_params, description=_description,
             small=SMALL, example_inputs=example_inputs)(functools.partial(build_rnn_lm, _name))

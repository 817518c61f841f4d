"""Sequence models: RNN/LSTM/GRU language models (backbone, presets, the stateful LM task, serving).

    import zoo
    from zoo.models.sequence import LanguageModel
    backbone = zoo.create_model("lstm_lm_small", vocabulary_size=1000)
    model = LanguageModel(backbone, per_replica_batch_size=20, clip_norm=5.0)
"""

from zoo.models.sequence import rnn_lm_presets  # noqa: F401  (registers the presets)
from zoo.models.sequence.language_model import LanguageModel
from zoo.models.sequence.rnn_lm_backbone import RNNLMBackbone

__all__ = ["LanguageModel", "RNNLMBackbone"]

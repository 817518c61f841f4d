"""Sequence models: RNN/LSTM/GRU language models (backbone, presets, the stateful LM task, serving) and the
small probes of `recipes/long_term_dependency.py`. The Kalman filter and the HMM are layers
(`zoo.layers.LinearGaussianStateSpace`, `zoo.layers.HiddenMarkovModel`); `LikelihoodFit` trains either by
gradient descent on its negative log-likelihood.

    import zoo
    from zoo.models.sequence import LanguageModel
    backbone = zoo.create_model("lstm_lm_small", vocabulary_size=1000)
    model = LanguageModel(backbone, per_replica_batch_size=20, clip_norm=5.0)
"""

from zoo.models.sequence import rnn_lm_presets  # noqa: F401  (registers the presets)
from zoo.models.sequence.language_model import LanguageModel
from zoo.models.sequence.likelihood_fit import LikelihoodFit
from zoo.models.sequence.rnn_lm_backbone import RNNLMBackbone
from zoo.models.sequence.sequence_probe import SequenceProbe, gradient_norms, probe_parameters, solve_hidden_size

__all__ = ["LanguageModel", "LikelihoodFit", "RNNLMBackbone", "SequenceProbe", "gradient_norms", "probe_parameters",
           "solve_hidden_size"]

"""Transformer-XL (Dai et al. 2019): the backbone with adaptive input/softmax, presets, the language-model task
with memories carried across steps, and serving endpoints that stream memories.

    import zoo
    from zoo.models.transformer_xl import TransformerXLLanguageModel
    backbone = zoo.create_model("transformer_xl_tiny", vocabulary_size=1000)
    model = TransformerXLLanguageModel(backbone, per_replica_batch_size=8, mem_len=32)
"""

from zoo.models.transformer_xl import transformer_xl_presets  # noqa: F401  (registers the presets)
from zoo.models.transformer_xl.adaptive_embedding import AdaptiveEmbedding
from zoo.models.transformer_xl.adaptive_softmax import AdaptiveSoftmax
from zoo.models.transformer_xl.transformer_xl_backbone import TransformerXLBackbone
from zoo.models.transformer_xl.transformer_xl_lm import TransformerXLLanguageModel
from zoo.models.transformer_xl.transformer_xl_presets import PAPER_TRAINING

__all__ = ["AdaptiveEmbedding", "AdaptiveSoftmax", "PAPER_TRAINING", "TransformerXLBackbone",
           "TransformerXLLanguageModel"]

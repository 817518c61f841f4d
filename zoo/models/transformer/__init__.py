"""The Transformer (Vaswani et al. 2017): backbone with incremental decoding, translation task, presets."""

from zoo.models.transformer import transformer_presets  # noqa: F401  (registers the presets)
from zoo.models.transformer.transformer_backbone import TransformerBackbone
from zoo.models.transformer.translator import Translator

__all__ = ["TransformerBackbone", "Translator"]

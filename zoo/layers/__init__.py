"""Reusable Keras layers shared by model families (each with get_config)."""

from zoo.layers.masked_lm_head import MaskedLMHead
from zoo.layers.position_embedding import PositionEmbedding
from zoo.layers.transformer_encoder import TransformerEncoder

__all__ = ["MaskedLMHead", "PositionEmbedding", "TransformerEncoder"]

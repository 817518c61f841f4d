"""Reusable Keras layers and building blocks shared by model families (each with get_config, written once
in `zoo.layers.config.Configurable`)."""

from zoo.layers.config import Configurable
from zoo.layers.initializers import (TorchBiasUniform, normal_initializer, torch_kernel_initializer,
                                     truncated_normal_initializer)
from zoo.layers.masked_lm_head import MaskedLMHead
from zoo.layers.normalization import InstanceNormalization, torch_batch_norm
from zoo.layers.padding import ReflectionPadding2D
from zoo.layers.position_embedding import PositionEmbedding
from zoo.layers.transformer_encoder import TransformerEncoder

__all__ = [
    "Configurable",
    "InstanceNormalization",
    "MaskedLMHead",
    "PositionEmbedding",
    "ReflectionPadding2D",
    "TorchBiasUniform",
    "TransformerEncoder",
    "normal_initializer",
    "torch_batch_norm",
    "torch_kernel_initializer",
    "truncated_normal_initializer",
]

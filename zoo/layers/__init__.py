"""Reusable Keras layers and building blocks shared by model families (each with get_config, written once
in `zoo.layers.config.Configurable`)."""

from zoo.layers.cached_attention import CachedMultiHeadAttention
from zoo.layers.config import Configurable
from zoo.layers.drop_path import ScheduledDropPath, drop_path_progress
from zoo.layers.hmm import HiddenMarkovModel
from zoo.layers.hmm_emissions import CategoricalEmission, GaussianEmission
from zoo.layers.initializers import (TorchBiasUniform, clone_initializer, normal_initializer,
                                     torch_kernel_initializer, truncated_normal_initializer)
from zoo.layers.kalman import LinearGaussianStateSpace
from zoo.layers.masked_lm_head import MaskedLMHead
from zoo.layers.nas_ops import (AuxHead, Conv1x7x7x1, FactorizedReduction, IdentityOp, PoolOp, ReluConvBN,
                                ReluSepConvBN, SepConvStack, make_op)
from zoo.layers.normalization import InstanceNormalization, torch_batch_norm
from zoo.layers.padding import ReflectionPadding2D
from zoo.layers.position_embedding import PositionEmbedding
from zoo.layers.relative_attention import (RelativeMultiHeadAttention, RelativeTransformerBlock, rel_shift,
                                           relative_positions, sinusoid_encoding)
from zoo.layers.transformer_decoder import TransformerDecoder
from zoo.layers.transformer_encoder import TransformerEncoder

__all__ = [
    "AuxHead",
    "CachedMultiHeadAttention",
    "CategoricalEmission",
    "Configurable",
    "Conv1x7x7x1",
    "FactorizedReduction",
    "GaussianEmission",
    "HiddenMarkovModel",
    "IdentityOp",
    "InstanceNormalization",
    "LinearGaussianStateSpace",
    "MaskedLMHead",
    "PoolOp",
    "PositionEmbedding",
    "ReflectionPadding2D",
    "RelativeMultiHeadAttention",
    "RelativeTransformerBlock",
    "ReluConvBN",
    "ReluSepConvBN",
    "ScheduledDropPath",
    "SepConvStack",
    "TorchBiasUniform",
    "TransformerDecoder",
    "TransformerEncoder",
    "clone_initializer",
    "drop_path_progress",
    "make_op",
    "normal_initializer",
    "rel_shift",
    "relative_positions",
    "sinusoid_encoding",
    "torch_batch_norm",
    "torch_kernel_initializer",
    "truncated_normal_initializer",
]

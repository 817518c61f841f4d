"""Transformer presets (Vaswani et al. 2017, Table 3), registered as `transformer_base`, `transformer_big` and
`transformer_tiny`, with the paper's shared 37,000-piece BPE vocabulary of WMT'14 En-De.

    backbone = zoo.create_model("transformer_base", vocabulary_size=32000)

Counts (tied embeddings, Keras attention with biases, post-LN, no final layer norm): base 63,082,496 and big
214,245,376. The paper's Table 3 says 65M and 213M: no choice of biases or layer norms reaches 65M with a
37k tied vocabulary (it would take ~40.8k pieces); big comes out 1.2M above 213M.
"""

import functools

import numpy as np

from zoo.models.transformer.transformer_backbone import TransformerBackbone
from zoo.registry import Family, register

TRANSFORMER = Family(
    "transformer",
    "Transformer encoder-decoder for translation (beam search, label smoothing)",
    paper="https://arxiv.org/abs/1706.03762",
    code="https://github.com/tensorflow/tensor2tensor",
)

TRANSFORMER_PRESETS = {
    "transformer_base": dict(vocabulary_size=37000, num_layers=6, num_heads=8, hidden_dim=512, intermediate_dim=2048,
                             dropout=0.1, max_sequence_length=256),
    "transformer_big": dict(vocabulary_size=37000, num_layers=6, num_heads=16, hidden_dim=1024,
                            intermediate_dim=4096, dropout=0.3, max_sequence_length=256),
    # A CPU-sized model for the embedded task (the recipe's default).
    "transformer_tiny": dict(vocabulary_size=37000, num_layers=2, num_heads=4, hidden_dim=128, intermediate_dim=512,
                             dropout=0.1, max_sequence_length=128),
}

_METADATA = {
    "transformer_base": (63_082_496, "Transformer base: N=6, d_model 512, d_ff 2048, h 8, P_drop 0.1, 37k shared BPE"),
    "transformer_big": (214_245_376, "Transformer big: N=6, d_model 1024, d_ff 4096, h 16, P_drop 0.3, 37k shared BPE"),
    "transformer_tiny": (5_661_696, "Transformer for CPUs: N=2, d_model 128, d_ff 512, h 4 (37k vocabulary)"),
}

SMALL = dict(vocabulary_size=40, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32, dropout=0.0,
             max_sequence_length=24)


def example_inputs(backbone, batch_size=2, seed=0):
    """Random right-padded source and target batches for a `TransformerBackbone` (ids above the 4 specials)."""
    rng = np.random.default_rng(seed)
    out = {}
    for side, length in (("encoder", 9), ("decoder", 7)):
        lengths = rng.integers(2, length + 1, size=batch_size)
        mask = (np.arange(length)[None, :] < lengths[:, None]).astype("int32")
        out[f"{side}_token_ids"] = (rng.integers(4, backbone.vocabulary_size, size=(batch_size, length)) * mask
                                    ).astype("int32")
        out[f"{side}_padding_mask"] = mask
    return out


def build_transformer(name, **overrides):
    """`TransformerBackbone` with the preset's config; keyword arguments override it."""
    return TransformerBackbone(**{**TRANSFORMER_PRESETS[name], **overrides})


for _name, (_params, _description) in _METADATA.items():
    register(_name, family=TRANSFORMER, params=_params, description=_description, small=SMALL,
             example_inputs=example_inputs)(functools.partial(build_transformer, _name))

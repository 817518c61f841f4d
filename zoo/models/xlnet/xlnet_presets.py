"""XLNet presets (zihangdai/xlnet README release list; cased SentencePiece vocabulary of 32,000), registered as
`xlnet_base`, `xlnet_large` and `xlnet_tiny`; `PAPER_TRAINING` holds XLNet-Large's pretraining flags.

    backbone = zoo.create_model("xlnet_base", dropout=0.0)   # XLNetBackbone, 116,718,336 parameters
    backbone = zoo.create_model("xlnet_tiny", vocabulary_size=2000)

Counts (word embedding V·H + mask_emb H + per layer q, k, v, o, r kernels 5·H² without biases, u / v /
segment biases 3·H, segment encoding 2·H, two layer norms 4·H, feed-forward 2·H·I + I + H): base
116,718,336 (7,678,464 per layer), large 360,268,800 (13,645,824 per layer). The stated "110M" / "340M" are
rounded. The pretraining LM head adds only a 32,000 bias (its softmax weight is the word embedding).
"""

import functools

import numpy as np

from zoo.models.xlnet.xlnet_backbone import XLNetBackbone
from zoo.registry import Family, register

XLNET = Family(
    "xlnet",
    "XLNet encoder: two-stream relative attention, permutation LM, memories",
    paper="https://arxiv.org/abs/1906.08237",
    code="https://github.com/zihangdai/xlnet",
)

XLNET_PRESETS = {
    # xlnet_cased_L-12_H-768_A-12 / xlnet_cased_L-24_H-1024_A-16: d_head 64, gelu, untie_r, LN 1e-12.
    "xlnet_base": dict(vocabulary_size=32000, num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072),
    "xlnet_large": dict(vocabulary_size=32000, num_layers=24, num_heads=16, hidden_dim=1024, intermediate_dim=4096),
    # The BERT-Tiny shape (L=2, H=128, A=2) for CPU runs; recipes override the vocabulary.
    "xlnet_tiny": dict(vocabulary_size=32000, num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=512),
}

_LM_BIAS = "the pretraining LM head adds a 32,000 bias (softmax tied to the word embedding)"
_METADATA = {
    "xlnet_base": (116_718_336, f"XLNet-Base, cased: L=12, H=768, A=12; {_LM_BIAS}"),
    "xlnet_large": (360_268_800, f"XLNet-Large, cased: L=24, H=1024, A=16; {_LM_BIAS}"),
    "xlnet_tiny": (4_525_696, "XLNet-shaped tiny encoder: L=2, H=128, A=2, V=32,000"),
}

# XLNet-Large pretraining (README `train.py` flags; mem_len 384 confirmed by the authors in zihangdai/xlnet#59).
# train_batch_size is the global batch.
PAPER_TRAINING = {
    "xlnet_large": dict(global_batch_size=2048, seq_len=512, reuse_len=256, mem_len=384, perm_size=256,
                        num_predict=85, mask_alpha=6, mask_beta=1, bi_data=True, dropout=0.1, attention_dropout=0.1),
}

SMALL = dict(vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32, dropout=0.0,
             attention_dropout=0.0)


def example_inputs(backbone, batch_size=2, seed=0):
    """Random `token_ids`, `segment_ids` (A 0, B 1, <cls> 2, padding 4) and a left-padded `padding_mask`
    (1 = real) ending in `<cls>`, as the original classifier's inputs, for an `XLNetBackbone`."""
    rng = np.random.default_rng(seed)
    seq = 10
    lengths = rng.integers(4, seq + 1, size=batch_size)
    position = np.arange(seq)[None, :]
    mask = (position >= seq - lengths[:, None]).astype("int32")
    first_b = seq - lengths[:, None] // 2
    segments = np.where(position >= first_b, 1, 0)
    segments = np.where(position == seq - 1, 2, segments)
    return {
        "token_ids": (rng.integers(1, backbone.vocabulary_size, size=(batch_size, seq)) * mask).astype("int32"),
        "segment_ids": np.where(mask == 1, segments, 4).astype("int32"),
        "padding_mask": mask,
    }


def build_xlnet(name, **overrides):
    """`XLNetBackbone` with the preset's config; keyword arguments override it."""
    return XLNetBackbone(**{**XLNET_PRESETS[name], **overrides})


for _name, (_params, _description) in _METADATA.items():
    register(_name, family=XLNET, params=_params, description=_description, small=SMALL,
             example_inputs=example_inputs)(functools.partial(build_xlnet, _name))

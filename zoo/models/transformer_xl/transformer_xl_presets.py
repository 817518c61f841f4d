"""Transformer-XL presets: the released kimiyoung/transformer-xl configurations and a tiny one; `PAPER_TRAINING`
holds each preset's training and evaluation protocol (the run scripts' flags), written once here.

    backbone = zoo.create_model("transformer_xl_wt103_base")     # 151,107,538 parameters
    PAPER_TRAINING["transformer_xl_wt103_base"]["eval_mem_len"]   # 640 (pytorch/run_wt103_base.sh eval)

Counts (trainable parameters, as PyTorch's `sum(p.numel())`): wt103 base 151,107,538 (tied adaptive softmax,
div_val 1, d_embed = d_model so no projections); wt103 large 285,205,322 as configured (div_val 4, untie_r,
tie_projs [False, True, True, True]): adaptive tables 36,923,760 + input projections 1,392,640 + the untied
head output projection 1,048,576 + output biases 267,735 + cluster weights/biases 3,075 + 18 x 13,640,704
layers + 36,864 per-layer u/v. The 257M the old Hugging Face docs state does not match that config. enwik8
(204 byte symbols, plain tied softmax with a bias, one shared u/v): 12L 41,055,436, 24L 277,231,820.
"""

import functools

import numpy as np

from zoo.models.transformer_xl.transformer_xl_backbone import TransformerXLBackbone
from zoo.registry import Family, register

TRANSFORMER_XL = Family(
    "transformer_xl",
    "Transformer-XL language model (segment recurrence, relative positions, adaptive softmax)",
    paper="https://arxiv.org/abs/1901.02860",
    code="https://github.com/kimiyoung/transformer-xl",
)

WT103_CUTOFFS = [20000, 40000, 200000]
WT103_VOCABULARY = 267_735
ENWIK8_VOCABULARY = 204

PRESETS = {
    # pytorch/run_wt103_base.sh
    "transformer_xl_wt103_base": dict(
        vocabulary_size=WT103_VOCABULARY, num_layers=16, hidden_dim=410, num_heads=10, head_dim=41,
        intermediate_dim=2100, embedding_dim=410, cutoffs=WT103_CUTOFFS, div_val=1, untie_r=False,
        dropout=0.1, attention_dropout=0.0, mem_len=150),
    # pytorch/run_wt103_large.sh (+ the released model's untie_r and proj_share_all_but_first)
    "transformer_xl_wt103_large": dict(
        vocabulary_size=WT103_VOCABULARY, num_layers=18, hidden_dim=1024, num_heads=16, head_dim=64,
        intermediate_dim=4096, embedding_dim=1024, cutoffs=WT103_CUTOFFS, div_val=4,
        tie_projs=[False, True, True, True], untie_r=True, dropout=0.2, attention_dropout=0.2, mem_len=384),
    # pytorch/run_enwik8_base.sh
    "transformer_xl_enwik8_base": dict(
        vocabulary_size=ENWIK8_VOCABULARY, num_layers=12, hidden_dim=512, num_heads=8, head_dim=64,
        intermediate_dim=2048, dropout=0.1, attention_dropout=0.0, mem_len=512),
    # tf/sota/enwik8.sh shapes; the reference's 277M count needs one shared u/v
    "transformer_xl_enwik8_large": dict(
        vocabulary_size=ENWIK8_VOCABULARY, num_layers=24, hidden_dim=1024, num_heads=8, head_dim=128,
        intermediate_dim=3072, dropout=0.15, attention_dropout=0.15, mem_len=768),
    # A CPU-sized model of the same code paths (recipes' default), adaptive softmax included: the embedded
    # corpus has ~4,600 words, so (1000, 3000) gives a shortlist and two tail clusters.
    "transformer_xl_tiny": dict(
        vocabulary_size=10000, num_layers=4, hidden_dim=128, num_heads=4, head_dim=32, intermediate_dim=512,
        cutoffs=[1000, 3000], div_val=1, dropout=0.1, attention_dropout=0.0, mem_len=64),
}

# Training (train.py flags of the run scripts) and the paper's evaluation protocol (eval.py flags).
# Training uses every position's full context (clamp_len -1, same_length False), as train.py's defaults.
# learning_rate: Adam, cosine decay to 0 over max_step after warmup_step linear steps; clip 0.25.
_FULL_CONTEXT = dict(clamp_len=-1, same_length=False, clip_norm=0.25)
PAPER_TRAINING = {
    "transformer_xl_wt103_base": dict(
        tgt_len=150, mem_len=150, global_batch_size=60, learning_rate=2.5e-4, warmup_step=0, max_step=200000,
        eval_tgt_len=64, eval_mem_len=640, eval_clamp_len=400, eval_same_length=True, **_FULL_CONTEXT),
    "transformer_xl_wt103_large": dict(
        tgt_len=384, mem_len=384, global_batch_size=128, learning_rate=2.5e-4, warmup_step=16000,
        max_step=4000000, eval_tgt_len=128, eval_mem_len=1600, eval_clamp_len=1000, eval_same_length=True,
        **_FULL_CONTEXT),
    "transformer_xl_enwik8_base": dict(
        tgt_len=512, mem_len=512, global_batch_size=22, learning_rate=2.5e-4, warmup_step=0, max_step=400000,
        eval_tgt_len=80, eval_mem_len=2100, eval_clamp_len=820, eval_same_length=True, **_FULL_CONTEXT),
    # pytorch/run_enwik8_large.sh (train and eval).
    "transformer_xl_enwik8_large": dict(
        tgt_len=768, mem_len=768, global_batch_size=64, learning_rate=2.5e-4, warmup_step=4000, max_step=400000,
        eval_tgt_len=128, eval_mem_len=3800, eval_clamp_len=1000, eval_same_length=True, **_FULL_CONTEXT),
    "transformer_xl_tiny": dict(
        tgt_len=32, mem_len=64, global_batch_size=16, learning_rate=1e-3, warmup_step=40, max_step=400,
        eval_tgt_len=32, eval_mem_len=64, eval_clamp_len=-1, eval_same_length=False, **_FULL_CONTEXT),
}

_METADATA = {
    "transformer_xl_wt103_base": (151_107_538, "WikiText-103 base: 16L, d 410, 10x41 heads, adaptive softmax"),
    "transformer_xl_wt103_large": (285_205_322, "WikiText-103 large: 18L, d 1024, div_val 4, untie_r "
                                                "(285.2M as configured; the stated 257M does not match)"),
    "transformer_xl_enwik8_base": (41_055_436, "enwik8 12L: d 512, 8x64 heads, 204 byte symbols"),
    "transformer_xl_enwik8_large": (277_231_820, "enwik8 24L: d 1024, 8x128 heads, 204 byte symbols"),
    "transformer_xl_tiny": (2_147_090, "Tiny: 4L, d 128, 4x32 heads, V=10k, cutoffs 1000/3000 (CPU recipes)"),
}

SMALL_ADAPTIVE = dict(vocabulary_size=60, num_layers=2, hidden_dim=16, num_heads=2, head_dim=8,
                      intermediate_dim=32, embedding_dim=16, cutoffs=[20, 40], mem_len=4)
SMALL = {
    "transformer_xl_wt103_base": SMALL_ADAPTIVE,
    "transformer_xl_wt103_large": {**SMALL_ADAPTIVE, "embedding_dim": 32},
    "transformer_xl_enwik8_base": dict(vocabulary_size=50, num_layers=2, hidden_dim=16, num_heads=2, head_dim=8,
                                       intermediate_dim=32, mem_len=4),
    "transformer_xl_enwik8_large": dict(vocabulary_size=50, num_layers=2, hidden_dim=16, num_heads=2, head_dim=8,
                                        intermediate_dim=32, mem_len=4),
    "transformer_xl_tiny": dict(vocabulary_size=50, num_layers=2, hidden_dim=16, num_heads=2, head_dim=8,
                                intermediate_dim=32, cutoffs=[20, 40], mem_len=4),
}


def example_inputs(backbone, batch_size=2, seed=0):
    """Random token ids [batch_size, 7] (int32) for a `TransformerXLBackbone`."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, backbone.vocabulary_size, size=(batch_size, 7)).astype("int32")


def build_transformer_xl(name, **overrides):
    """`TransformerXLBackbone` with the preset's config; keyword arguments override it."""
    return TransformerXLBackbone(**{**PRESETS[name], **overrides})


for _name, (_params, _description) in _METADATA.items():
    register(_name, family=TRANSFORMER_XL, params=_params, description=_description, small=SMALL[_name],
             example_inputs=example_inputs)(functools.partial(build_transformer_xl, _name))

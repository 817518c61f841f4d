"""BERT presets (google-research/bert README configs, uncased WordPiece vocabulary of 30,522), registered
as `bert_tiny`, `bert_base` and `bert_large`, and KoBERT's (SKTBrain/KoBERT: BERT-base on an 8,002-piece
SentencePiece vocabulary, exact-erf GELU as its Hugging Face config), registered as `kobert` and `kobert_tiny`.

    backbone = zoo.create_model("bert_base", dropout=0.0)   # BertBackbone, 109,482,240 parameters
    backbone = zoo.create_model("kobert")                   # BertBackbone, 92,186,880 parameters
"""

import functools

import numpy as np

from zoo.models.bert.bert_backbone import BertBackbone
from zoo.registry import Family, register

BERT = Family(
    "bert",
    "BERT encoder with pooler",
    paper="https://arxiv.org/abs/1810.04805",
    code="https://github.com/google-research/bert",
)

KOBERT = Family(
    "kobert",
    "KoBERT: Korean BERT-base encoder with pooler, 8,002-piece SentencePiece vocabulary (no paper; the link "
    "is its model card)",
    paper="https://huggingface.co/skt/kobert-base-v1",
    code="https://github.com/SKTBrain/KoBERT",
)

BERT_PRESETS = {
    # L=2, H=128, A=2 ("BERT-Tiny" of the small-BERT release).
    "bert_tiny": dict(vocabulary_size=30522, num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=512),
    "bert_base": dict(vocabulary_size=30522, num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072),
    "bert_large": dict(vocabulary_size=30522, num_layers=24, num_heads=16, hidden_dim=1024, intermediate_dim=4096),
    # skt/kobert-base-v1 config.json: vocab_size 8002, hidden_act "gelu", layer_norm_eps 1e-12.
    "kobert": dict(vocabulary_size=8002, num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072,
                   activation="gelu"),
    "kobert_tiny": dict(vocabulary_size=8002, num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=512,
                        activation="gelu"),
}

# Family, trainable parameters with the pooler, and one line each.
_KOBERT_VOCABULARY = "8,002 SentencePiece pieces, [PAD] id 1 (the tokenizer's, zoo.data.bert_vocabulary)"
_METADATA = {
    "bert_tiny": (BERT, 4_385_920, "BERT-Tiny encoder (small-BERT release): L=2, H=128, A=2"),
    "bert_base": (BERT, 109_482_240, "BERT-Base encoder, uncased: L=12, H=768, A=12"),
    "bert_large": (BERT, 335_141_888, "BERT-Large encoder, uncased: L=24, H=1024, A=16"),
    "kobert": (KOBERT, 92_186_880, f"KoBERT encoder: L=12, H=768, A=12, exact GELU; {_KOBERT_VOCABULARY}"),
    "kobert_tiny": (KOBERT, 1_503_360, f"KoBERT-shaped tiny encoder: L=2, H=128, A=2, exact GELU; "
                                       f"{_KOBERT_VOCABULARY}"),
}

SMALL = dict(vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32, dropout=0.0,
             max_sequence_length=24)


def example_inputs(backbone, batch_size=2, seed=0):
    """Random `token_ids`, `segment_ids` and a right-padded `padding_mask` for a `BertBackbone`."""
    rng = np.random.default_rng(seed)
    seq = min(12, backbone.max_sequence_length)
    lengths = rng.integers(2, seq + 1, size=batch_size)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype("int32")
    return {
        "token_ids": (rng.integers(1, backbone.vocabulary_size, size=(batch_size, seq)) * mask).astype("int32"),
        "segment_ids": ((np.arange(seq)[None, :] >= lengths[:, None] // 2) * mask).astype("int32"),
        "padding_mask": mask,
    }


def build_bert(name, **overrides):
    """`BertBackbone` with the preset's config; keyword arguments override it."""
    return BertBackbone(**{**BERT_PRESETS[name], **overrides})


for _name, (_family, _params, _description) in _METADATA.items():
    register(_name, family=_family, params=_params, description=_description, small=SMALL,
             example_inputs=example_inputs)(functools.partial(build_bert, _name))

"""SUMBT preset `sumbt`: a BERT-Base utterance encoder and the paper's head (4 heads, GRU 300) with the WOZ 2.0
ontology's sizes (area 5, food 91, price range 3 values, each plus "dontcare" and "none"), value tables zero
until `encode_ontology` fills them.

    model = zoo.create_model("sumbt")                    # 113,271,012 trainable = BERT 109,482,240 + head 3,788,772
    model = zoo.create_model("sumbt", backbone_preset="kobert", num_values=[7, 93, 5])
    model = zoo.create_model("sumbt", backbone=dict(num_layers=2, num_heads=2, hidden_dim=16,
                                                    intermediate_dim=32, vocabulary_size=50), hidden_dim=8)
"""

import numpy as np

from zoo.models.bert.bert_backbone import BertBackbone
from zoo.models.bert.bert_presets import BERT_PRESETS
from zoo.models.sumbt.sumbt import SUMBT
from zoo.registry import Family, register

SUMBT_FAMILY = Family(
    "sumbt",
    "SUMBT belief tracker: fine-tuned BERT, slot-utterance attention, GRU over turns, Euclidean value matching",
    paper="https://arxiv.org/abs/1907.07421",
    code="https://github.com/SKTBrain/SUMBT",
)

WOZ_SLOTS = ("area", "food", "price range")
WOZ_NUM_VALUES = (7, 93, 5)  # listed values + "dontcare" + "none"

SMALL = dict(backbone=dict(vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
                           dropout=0.0, max_sequence_length=24),
             num_values=(3, 5, 2), hidden_dim=8, dropout=0.0)


def value_mask_for(num_values):
    """bool [S, max(num_values)]: True for each slot's first `num_values[s]` values."""
    num_values = np.asarray(num_values)
    return np.arange(num_values.max())[None, :] < num_values[:, None]


def build_sumbt(backbone_preset="bert_base", backbone=None, num_values=WOZ_NUM_VALUES, slot_names=None, **overrides):
    """`SUMBT` with a fresh utterance backbone (`backbone_preset` of the BERT presets, with the `backbone`
    overrides) and zero tables of `num_values` values per slot; other keyword arguments go to `SUMBT`."""
    # The official code uses pytorch_pretrained_bert, whose GELU is the exact (erf) one.
    encoder = BertBackbone(**{**BERT_PRESETS[backbone_preset], "activation": "gelu", **(backbone or {})})
    if slot_names is None:
        slot_names = WOZ_SLOTS if len(num_values) == len(WOZ_SLOTS) else None
    return SUMBT(encoder, None, None, value_mask_for(num_values), slot_names=slot_names, **overrides)


def example_inputs(model, batch_size=2, seed=0, turns=3):
    """Random dialogues [batch, turns, 10] of `[CLS] user [SEP] system [SEP]`-like rows; the last dialogue's
    final turn is padding."""
    rng = np.random.default_rng(seed)
    backbone = model.utterance_backbone
    length = min(10, backbone.max_sequence_length)
    lengths = rng.integers(4, length + 1, size=(batch_size, turns))
    lengths[-1, -1] = 0 if turns > 1 else lengths[-1, -1]
    mask = (np.arange(length) < lengths[..., None]).astype("int32")
    ids = rng.integers(1, backbone.vocabulary_size, size=mask.shape).astype("int32") * mask
    segments = ((np.arange(length) >= lengths[..., None] // 2) * mask).astype("int32")
    return {"token_ids": ids, "segment_ids": segments, "padding_mask": mask}


register("sumbt", family=SUMBT_FAMILY, params=113_271_012, params_detail={"utterance_backbone": 109_482_240},
         description="BERT-Base utterance encoder + SUMBT head (hidden 300), WOZ 2.0 ontology sizes",
         small=SMALL, example_inputs=example_inputs)(build_sumbt)

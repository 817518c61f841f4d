"""BERT: backbone (registered as bert_tiny, bert_base, bert_large) and pretraining model."""

from zoo.models.bert.bert_backbone import BertBackbone
from zoo.models.bert.bert_presets import BERT_PRESETS
from zoo.models.bert.bert_pretrainer import BertPretrainer
from zoo.registry import register


def _preset_builder(name):
    def build(**overrides):
        return BertBackbone(**{**BERT_PRESETS[name], **overrides})

    build.__name__ = name
    build.__doc__ = f"BertBackbone with the {name} config; keyword arguments override it."
    return build


for _name in BERT_PRESETS:
    register(_name)(_preset_builder(_name))

__all__ = ["BertBackbone", "BertPretrainer", "BERT_PRESETS"]

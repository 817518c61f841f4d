"""BERT: backbone (registered as bert_tiny, bert_base, bert_large; see `bert_presets`) and pretraining model."""

from zoo.models.bert.bert_backbone import BertBackbone
from zoo.models.bert.bert_presets import BERT_PRESETS
from zoo.models.bert.bert_pretrainer import BertPretrainer

__all__ = ["BertBackbone", "BertPretrainer", "BERT_PRESETS"]

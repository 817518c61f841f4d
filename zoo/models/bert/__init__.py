"""BERT: backbone (registered as bert_tiny, bert_base, bert_large, and KoBERT's kobert, kobert_tiny; see
`bert_presets`), pretraining model, and loading of local Hugging Face / keras-hub checkpoints
(`bert_checkpoints`)."""

from zoo.models.bert.bert_backbone import BertBackbone
from zoo.models.bert.bert_checkpoints import backbone_config, checkpoint_vocabulary, load_bert_weights
from zoo.models.bert.bert_presets import BERT_PRESETS
from zoo.models.bert.bert_pretrainer import BertPretrainer

__all__ = ["BertBackbone", "BertPretrainer", "BERT_PRESETS", "backbone_config", "checkpoint_vocabulary",
           "load_bert_weights"]

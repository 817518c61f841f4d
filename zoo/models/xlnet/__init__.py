"""XLNet: backbone (registered as xlnet_tiny, xlnet_base, xlnet_large; see `xlnet_presets`), permutation-LM
pretrainer, classifier, serving endpoints, and loading of keras-hub `XLNetBackbone` weights
(`xlnet_checkpoints`).

A new module of this family adds its public names to the imports and to `__all__` below.
"""

from zoo.layers.segment_memory import cache_memories  # re-exported: the one implementation, shared with Transformer-XL
from zoo.models.xlnet.xlnet_backbone import XLNetBackbone
from zoo.models.xlnet.xlnet_checkpoints import load_keras_hub_weights
from zoo.models.xlnet.xlnet_classifier import XLNetClassifier
from zoo.models.xlnet.xlnet_presets import PAPER_TRAINING, XLNET_PRESETS
from zoo.models.xlnet.xlnet_pretrainer import XLNetPretrainer

__all__ = ["PAPER_TRAINING", "XLNET_PRESETS", "XLNetBackbone", "XLNetClassifier", "XLNetPretrainer", "cache_memories",
           "load_keras_hub_weights"]

"""Architecture-search image classifiers: NASNet-A and PNASNet-5 (one cell language, `cell`), RandWire
(random graphs, `randwire`), and the task model that trains any of them (`ImageClassifier`).

Importing the package registers every preset declared in its `*_presets` modules.

    import zoo
    from zoo.models.nas import ImageClassifier
    network = zoo.create_model("nasnet_a_mobile", num_classes=10)     # images in [-1, 1] -> {"logits"}
    model = ImageClassifier(network, total_steps=10_000)              # slim's losses, drop-path schedule
"""

import importlib
import pkgutil

from zoo.models.nas.cell import NASNET_A_NORMAL, NASNET_A_REDUCTION, PNASNET_5, CellSpec, NASCell
from zoo.models.nas.image_classifier import ImageClassifier, image_classifier_names
from zoo.models.nas.nasnet import NASNet
from zoo.models.nas.pnasnet import PNASNet
from zoo.models.nas.randwire import RandWire

for _info in pkgutil.iter_modules(__path__):
    if _info.name.endswith("_presets"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["CellSpec", "ImageClassifier", "NASCell", "NASNet", "NASNET_A_NORMAL", "NASNET_A_REDUCTION",
           "PNASNet", "PNASNET_5", "RandWire", "image_classifier_names"]

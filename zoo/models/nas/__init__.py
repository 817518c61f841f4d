"""Architecture-search image classifiers: NASNet-A and PNASNet-5 (one cell language, `cell`) and RandWire
(random graphs, `randwire`).

Importing the package registers every preset declared in its `*_presets` modules.
"""

import importlib
import pkgutil

from zoo.models.nas.cell import NASNET_A_NORMAL, NASNET_A_REDUCTION, PNASNET_5, CellSpec, NASCell
from zoo.models.nas.nasnet import NASNet
from zoo.models.nas.pnasnet import PNASNet
from zoo.models.nas.randwire import RandWire

for _info in pkgutil.iter_modules(__path__):
    if _info.name.endswith("_presets"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["CellSpec", "NASCell", "NASNet", "NASNET_A_NORMAL", "NASNET_A_REDUCTION", "PNASNet", "PNASNET_5",
           "RandWire"]

"""RandWire presets, registered as `randwire_small` (C=78), `randwire_regular_109` and `randwire_regular_154`:
WS(4, 0.75) graphs with N=32 and fixed seeds (one per stage), so that a preset is always the same network.
Keyword overrides change anything else (another generator, other seeds, a smaller network):

    model = zoo.create_model("randwire_small", generator="er", generator_params={"p": 0.2}, seeds=[7, 8, 9])
    tiny = zoo.create_model("randwire_small", channels=8, num_nodes=6, image_size=32, num_classes=10)

The counts below are exact for the fixed seeds; over random seeds the small WS(4, 0.75) network has
5.60M ± 0.06M parameters over 10 seed triples (the paper: 5.6 ± 0.1M over 5 graphs).
"""

import functools

import numpy as np

from zoo.models.nas.randwire import RandWire
from zoo.registry import Family, register

RANDWIRE = Family(
    "randwire",
    "RandWire: randomly wired networks (WS/ER/BA graphs from networkx); no official code, follows the paper "
    "and JiaminRen/RandWireNN",
    paper="https://arxiv.org/abs/1904.01569",
    code="https://github.com/JiaminRen/RandWireNN",
)

_WS = dict(num_nodes=32, generator="ws", generator_params={"k": 4, "p": 0.75})

# name: (config, trainable parameters for the fixed seeds, one line)
RANDWIRE_PRESETS = {
    "randwire_small": (dict(regime="small", channels=78, seeds=[0, 1, 2], **_WS), 5_651_922,
                       "RandWire small regime, WS(4, 0.75), N=32, C=78 (paper 5.6M, 583M mult-adds)"),
    "randwire_regular_109": (dict(regime="regular", channels=109, seeds=[0, 1, 2, 3], **_WS), 31_346_373,
                             "RandWire regular regime, WS(4, 0.75), N=32, C=109 (paper 31.9M, 4.0B mult-adds)"),
    "randwire_regular_154": (dict(regime="regular", channels=154, seeds=[0, 1, 2, 3], **_WS), 60_344_604,
                             "RandWire regular regime, WS(4, 0.75), N=32, C=154 (paper 61.5M, 7.9B mult-adds)"),
}

# Small configs of the same code paths (tests, well under a second each): 32x32 images, C=8, WS(2, 0.75)
# rings of 4 nodes (the regular regime: 3 in its first stage, then 6).
_SMALL = {
    "small": dict(channels=8, num_nodes=4, generator_params={"k": 2, "p": 0.75}, image_size=32, num_classes=10),
    "regular": dict(channels=8, num_nodes=6, generator_params={"k": 2, "p": 0.75}, image_size=32, num_classes=10),
}


def build_randwire(name, **overrides):
    """The preset `name` as a `RandWire` network; keyword arguments override its config."""
    config = dict(RANDWIRE_PRESETS[name][0])
    config["generator_params"] = dict(config["generator_params"])
    return RandWire(**{**config, **overrides})


def example_inputs(model, batch_size=2, seed=0):
    """A batch of random images in [-1, 1] at the model's image size, for `model(images)`."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, (batch_size, model.image_size, model.image_size, 3)).astype("float32")


for _name, (_config, _params, _description) in RANDWIRE_PRESETS.items():
    register(_name, family=RANDWIRE, params=_params, description=_description, small=_SMALL[_config["regime"]],
             example_inputs=example_inputs)(functools.partial(build_randwire, _name))

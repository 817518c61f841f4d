"""NASNet-A and PNASNet-5 presets, registered as `nasnet_a_mobile`, `nasnet_a_large`, `nasnet_a_cifar`,
`pnasnet_5_large` and `pnasnet_5_mobile`.

`params` are trainable parameters without the auxiliary head (aux_head=False, the preset default), checked
in tests: NASNet-A Mobile/Large equal keras.applications' NASNetMobile/NASNetLarge (5,289,978 / 88,753,150
trainable; 5,326,716 / 88,949,818 total) and TF-slim's build_nasnet_mobile/large; NASNet-A CIFAR (10
classes) 3,346,538 = TF-slim's build_nasnet_cifar; PNASNet-5 Large 86,057,668 (imgclsmob) and Mobile
5,064,487 = TF-slim's build_pnasnet_large/mobile. drop_path_rate and dropout are slim's training values
(1 - drop_path_keep_prob, 1 - dense_dropout_keep_prob).

    net = zoo.create_model("nasnet_a_mobile", num_classes=10, aux_head=True, drop_path_rate=0.1)
"""

import functools

import numpy as np

from zoo.models.nas.nasnet import NASNet
from zoo.models.nas.pnasnet import PNASNet
from zoo.registry import Family, register

NASNET = Family(
    "nasnet",
    "NASNet-A: searched normal/reduction cells (keras.applications structure, + aux head, drop path)",
    paper="https://arxiv.org/abs/1707.07012",
    code="https://github.com/tensorflow/models/tree/master/research/slim/nets/nasnet",
)
PNASNET = Family(
    "pnasnet",
    "PNASNet-5: progressive-search cell (TF-slim structure)",
    paper="https://arxiv.org/abs/1712.00559",
    code="https://github.com/tensorflow/models/tree/master/research/slim/nets/nasnet",
)

PRESETS = {
    "nasnet_a_mobile": (NASNet, dict(image_size=224, penultimate_filters=1056, num_blocks=4, stem_filters=32,
                                     skip_reduction=False, drop_path_rate=0.0, dropout=0.5)),
    "nasnet_a_large": (NASNet, dict(image_size=331, penultimate_filters=4032, num_blocks=6, stem_filters=96,
                                    skip_reduction=True, drop_path_rate=0.3, dropout=0.5)),
    "nasnet_a_cifar": (NASNet, dict(num_classes=10, image_size=32, penultimate_filters=768, num_blocks=6,
                                    stem_filters=96, stem="cifar", skip_reduction=False, drop_path_rate=0.4,
                                    dropout=0.0, padding="same", bn_momentum=0.9, bn_epsilon=1e-5)),
    "pnasnet_5_large": (PNASNet, dict(image_size=331, num_cells=12, filters=216, stem_multiplier=3.0,
                                      drop_path_rate=0.4, dropout=0.5)),
    "pnasnet_5_mobile": (PNASNet, dict(image_size=224, num_cells=9, filters=54, stem_multiplier=1.0,
                                       drop_path_rate=0.0, dropout=0.5)),
}

_METADATA = {
    "nasnet_a_mobile": (NASNET, 5_289_978, "NASNet-A Mobile (4 @ 1056), 224×224 = keras.applications NASNetMobile"),
    "nasnet_a_large": (NASNET, 88_753_150, "NASNet-A Large (6 @ 4032), 331×331 = keras.applications NASNetLarge"),
    "nasnet_a_cifar": (NASNET, 3_346_538, "NASNet-A CIFAR-10 (6 @ 768), 32×32, TF-slim cifar config"),
    "pnasnet_5_large": (PNASNET, 86_057_668, "PNASNet-5 Large (F=216, 12 cells), 331×331"),
    "pnasnet_5_mobile": (PNASNET, 5_064_487, "PNASNet-5 Mobile (F=54, 9 cells), 224×224"),
}

# Tiny configs of the same code (tests: forward, config round trip, .keras save/load): 1 cell per stage, few
# filters, 32×32, and two-block cells (sep conv, pools, identity, a block reading a block) to keep the layer
# count low; the full NASNet-A and PNASNet-5 cells are tested in tests/models/nas.
TINY_NORMAL = {"blocks": [[0, 1, "sep_3x3", "identity"], [2, 1, "avg_pool_3x3", "max_pool_3x3"]],
               "concat": [1, 3]}
TINY_REDUCTION = {"blocks": [[0, 1, "sep_3x3", "max_pool_3x3"], [2, 0, "identity", "avg_pool_3x3"]],
                  "concat": [2, 3]}
_SMALL_NASNET = dict(num_classes=10, image_size=32, penultimate_filters=32, num_blocks=1, stem_filters=8,
                     drop_path_rate=0.1, dropout=0.0, normal_cell=TINY_NORMAL, reduction_cell=TINY_REDUCTION)
_SMALL_PNASNET = dict(num_classes=10, image_size=32, num_cells=3, filters=8, stem_multiplier=0.25,
                      drop_path_rate=0.1, dropout=0.0, cell=TINY_REDUCTION)
SMALL = {
    "nasnet_a_mobile": _SMALL_NASNET,
    "nasnet_a_large": _SMALL_NASNET,
    "nasnet_a_cifar": _SMALL_NASNET,
    "pnasnet_5_large": _SMALL_PNASNET,
    "pnasnet_5_mobile": _SMALL_PNASNET,
}


def example_inputs(model, batch_size=2, seed=0):
    """Random float images in [-1, 1] of shape (batch_size, image_size, image_size, 3)."""
    rng = np.random.default_rng(seed)
    size = model.image_size
    return rng.uniform(-1.0, 1.0, size=(batch_size, size, size, 3)).astype("float32")


def build(name, **overrides):
    """The preset's network; keyword arguments override its config."""
    cls, config = PRESETS[name]
    return cls(**{**config, "name": name, **overrides})


for _name, (_family, _params, _description) in _METADATA.items():
    register(_name, family=_family, params=_params, description=_description, small=SMALL[_name],
             example_inputs=example_inputs)(functools.partial(build, _name))

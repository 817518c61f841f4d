"""NASNet-A (Zoph et al. 2018, "Learning Transferable Architectures for Scalable Image Recognition").

The ImageNet structure is keras.applications' `NASNet` exactly (same layers, same counts, weights port with
`zoo.models.nas.keras_applications`): stem conv 3×3 stride 2 VALID + BN, two stem reduction cells (filters
F/m², F/m), N normal cells, a reduction cell, N normal, a reduction, N normal, ReLU, global average pool,
dropout, Dense. F = penultimate_filters / 24 (6 concatenated states × m² with m = filter_multiplier).
Added for training (TF-slim `nasnet.py`): the auxiliary head after the last cell before the second
reduction, ScheduledDropPath after every op but identity (cell index counts stem and reduction cells), and
the CIFAR variant (`stem="cifar"`: a 3×3 conv + BN stem and no stem cells, as slim's `cifar` config).

Image sizes: every size ≥ 32 works (keras.applications' minimum); keras' `correct_pad` padding makes odd
sizes reduce as ceil(n/2) like the factorized-reduction path, so both parities are valid. The auxiliary head
needs a 5×5 map before the second reduction: image_size ≥ 67 for the ImageNet stem.

Example:
    net = NASNet(num_classes=10, image_size=32, penultimate_filters=96, num_blocks=1, stem_filters=8)
    net(np.zeros((2, 32, 32, 3), "float32"))["logits"].shape   # (2, 10)
"""

import numbers

import keras

from zoo.errors import ZooError
from zoo.layers.config import Configurable
from zoo.layers.nas_ops import BN_EPSILON, BN_MOMENTUM, AuxHead, batch_norm
from zoo.layers.normalization import synchronize_batch_norm
from zoo.models.nas.cell import CellSpec, NASCell, classifier_head


def _reduce(n):
    return -(-n // 2)


@keras.saving.register_keras_serializable(package="zoo")
class NASNet(Configurable, keras.Model):
    """NASNet-A image classifier network (functional; the zoo's image-classifier network contract).

    Args:
        num_classes: classifier outputs.
        image_size: input height = width (images in [-1, 1], not rescaled here).
        penultimate_filters: channels of the last cell's output (keras.applications' "P" of N @ P).
        num_blocks: normal cells per stage ("N").
        stem_filters: filters of the stem convolution.
        skip_reduction: the normal cell after a reduction reads the reduction's own H_{c-2} instead of its
            input (keras.applications NASNetLarge, slim's skip_reduction_layer_input).
        filter_multiplier: filter growth at each reduction.
        stem: "imagenet" (conv 3×3 s2 VALID + 2 reduction cells) or "cifar" (conv 3×3 SAME + BN).
        aux_head: add `aux_logits` (slim's auxiliary classifier).
        drop_path_rate: final ScheduledDropPath rate (slim 1 - drop_path_keep_prob); 0 disables.
        dropout: before the classifier.
        padding: "zeros" (keras.applications: strided ops pad explicitly) or "same" (slim).
        bn_momentum, bn_epsilon: of every BatchNormalization (slim CIFAR: 0.9, 1e-5).
        normal_cell, reduction_cell: cell specs (names, dicts or JSON; see `zoo.models.nas.cell`).
        sync_batch_norm: every BatchNormalization computes training statistics over all replicas (TF
            backend), so N replicas train as one device at the same global batch.
        dtype: dtype policy; logits are float32.

    Outputs: {"logits": (batch, num_classes)} and "aux_logits" when aux_head.
    """

    def __init__(self, num_classes=1000, image_size=224, penultimate_filters=1056, num_blocks=4, stem_filters=32,
                 skip_reduction=False, filter_multiplier=2, stem="imagenet", aux_head=False, drop_path_rate=0.0,
                 dropout=0.5, padding="zeros", bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON,
                 normal_cell="nasnet_a_normal", reduction_cell="nasnet_a_reduction", sync_batch_norm=False,
                 dtype=None, **kwargs):
        normal, reduction = CellSpec.get(normal_cell), CellSpec.get(reduction_cell)
        divisor = len(normal.concat) * filter_multiplier ** 2
        if penultimate_filters % divisor:
            raise ZooError(f"penultimate_filters {penultimate_filters} must be a multiple of {divisor} "
                           f"(concatenated states × filter_multiplier²)")
        if stem not in ("imagenet", "cifar"):
            raise ZooError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ZooError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        _check_image_size("NASNet", image_size, stem == "imagenet", aux_head)
        filters = penultimate_filters // divisor
        common = dict(padding=padding, bn_momentum=bn_momentum, bn_epsilon=bn_epsilon, dtype=dtype)
        total = 3 * num_blocks + 2 + (2 if stem == "imagenet" else 0)
        plan = []  # (name, spec, filters, strides)
        if stem == "imagenet":
            plan += [("reduction_stem_1", reduction, filters // filter_multiplier ** 2, 2),
                     ("reduction_stem_2", reduction, filters // filter_multiplier, 2)]
        for stage in range(3):
            f = filters * filter_multiplier ** stage
            if stage:
                plan.append((f"reduction_reduce_{stage * num_blocks}", reduction, f, 2))
            plan += [(f"normal_{stage * num_blocks + i + min(stage, 1)}", normal, f, 1) for i in range(num_blocks)]
        self.cells = [NASCell(spec, f, s, drop_path_rate, (i + 1) / total, name=name, **common)
                      for i, (name, spec, f, s) in enumerate(plan)]
        aux_after = f"normal_{2 * num_blocks}"

        images = keras.Input((image_size, image_size, 3), name="images")
        if stem == "imagenet":
            self.stem_conv = keras.layers.Conv2D(stem_filters, 3, strides=2, padding="valid", use_bias=False,
                                                 kernel_initializer="he_normal", name="stem_conv1", dtype=dtype)
        else:
            self.stem_conv = keras.layers.Conv2D(stem_filters, 3, padding="same", use_bias=False,
                                                 kernel_initializer="he_normal", name="stem_conv1", dtype=dtype)
        self.stem_bn = batch_norm("stem_bn1", bn_momentum, bn_epsilon, dtype=dtype)
        x, p = self.stem_bn(self.stem_conv(images)), None
        outputs = {}
        for cell in self.cells:
            x_in = x
            x = cell(x if p is None else [x, p])
            if not (skip_reduction and cell.strides == 2 and not cell.name.startswith("reduction_stem")):
                p = x_in
            if aux_head and cell.name == aux_after:
                self.aux = AuxHead(num_classes, bn_momentum, bn_epsilon, name="aux_head", dtype=dtype)
                outputs["aux_logits"] = self.aux(x)
        self.classifier, logits = classifier_head(x, num_classes, dropout, dtype)
        super().__init__(inputs=images, outputs={"logits": logits, **outputs}, dtype=dtype, **kwargs)
        if sync_batch_norm:
            synchronize_batch_norm(self)

        self.num_classes, self.image_size = num_classes, image_size
        self.penultimate_filters, self.num_blocks, self.stem_filters = penultimate_filters, num_blocks, stem_filters
        self.skip_reduction, self.filter_multiplier, self.stem = skip_reduction, filter_multiplier, stem
        self.aux_head, self.drop_path_rate, self.dropout, self.padding = aux_head, drop_path_rate, dropout, padding
        self.bn_momentum, self.bn_epsilon = bn_momentum, bn_epsilon
        self.normal_cell, self.reduction_cell = normal.to_config(), reduction.to_config()
        self.sync_batch_norm = sync_batch_norm


def _check_image_size(family, image_size, imagenet_stem, aux_head):
    """One-line ZooError for a size the network cannot take (too small, or too small for the aux head)."""
    if not isinstance(image_size, numbers.Integral) or image_size < 32:
        raise ZooError(f"{family} image_size {image_size!r} is too small: use an int of at least 32")
    size = (image_size - 3) // 2 + 1 if imagenet_stem else image_size
    size = _reduce(_reduce(size)) if imagenet_stem else size
    size = _reduce(size)  # the first reduction: the aux head sits before the second
    if aux_head and (size - 5) // 3 + 1 < 1:
        least = 67 if imagenet_stem else 9
        raise ZooError(f"{family} image_size {image_size} leaves a {size}×{size} map for the auxiliary head, "
                       f"which needs 5×5: use image_size >= {least} or aux_head=False")

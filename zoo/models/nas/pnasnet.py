"""PNASNet-5 (Liu et al. 2018, "Progressive Neural Architecture Search"), as TF-slim `nets/nasnet/pnasnet.py`.

One cell (`cell.PNASNET_5`) serves as normal cell and, with stride 2, as reduction cell. Structure: stem conv
3×3 stride 2 VALID (32·stem_multiplier filters) + BN, two stem cells (stride 2, filters F/4 and F/2), then
`num_cells` cells with reductions at slim's `calc_reduction_layers` (Large [4, 8], Mobile [3, 6]; filters
double at each), ReLU, global average pool, dropout, Dense. Every cell reads the output two cells back
(`skip_reduction_layer_input`), adjusted by a factorized reduction when it is larger; ops use SAME padding;
drop path "v3" (ScheduledDropPath, cell index counting the stem cells, total num_cells + 2); the auxiliary
head sits after the cell before the second reduction. Each cell outputs 5·F·scale channels (Large: 4320,
Mobile: 1080 at the end). `stem="cifar"` (PNAS's CIFAR networks, and searched cells on small images): a 3×3
SAME conv + BN stem and no stem cells (drop path then counts num_cells cells).

Counts (1000 classes), checked against TF-slim's own build_pnasnet_large/mobile (run in graph mode with
tf-slim; same number of trainable variables with the same sizes): Large 86,057,668 trainable without the
auxiliary head (= imgclsmob's count), 90,643,884 with it, 86,234,656 total; Mobile 5,064,487 trainable
without the auxiliary head, 7,477,263 with it, 5,098,151 total.

Example:
    net = PNASNet(num_classes=10, image_size=32, num_cells=3, filters=8, stem_multiplier=0.25)
    net(np.zeros((2, 32, 32, 3), "float32"))["logits"].shape   # (2, 10)
"""

import keras

from zoo.errors import ZooError
from zoo.layers.config import Configurable
from zoo.layers.nas_ops import BN_EPSILON, BN_MOMENTUM, AuxHead, batch_norm
from zoo.layers.normalization import synchronize_batch_norm
from zoo.models.nas.cell import CellSpec, NASCell, classifier_head
from zoo.models.nas.nasnet import _check_image_size


def calc_reduction_layers(num_cells, num_reduction_layers):
    """Indices of the cells that reduce (slim `nasnet_utils.calc_reduction_layers`): 12, 2 → [4, 8]."""
    return [int(float(k) / (num_reduction_layers + 1) * num_cells) for k in range(1, num_reduction_layers + 1)]


@keras.saving.register_keras_serializable(package="zoo")
class PNASNet(Configurable, keras.Model):
    """PNASNet-5 image classifier network (functional; the zoo's image-classifier network contract).

    Args:
        num_classes: classifier outputs.
        image_size: input height = width (images in [-1, 1], not rescaled here).
        num_cells: cells after the stem (reduction cells included).
        filters: F, the filters of the first stage (slim num_conv_filters).
        stem_multiplier: the stem conv has int(32 · stem_multiplier) filters.
        num_reduction_layers: reductions among the cells.
        filter_scaling_rate: filter growth at each reduction.
        skip_reduction_layer_input: a reduction cell also reads the output two cells back (slim's flag).
        aux_head: add `aux_logits`.
        drop_path_rate: final ScheduledDropPath rate (slim 1 - drop_path_keep_prob); 0 disables.
        dropout: before the classifier.
        padding: "same" (slim) or "zeros".
        bn_momentum, bn_epsilon: of every BatchNormalization.
        cell: the cell spec (name, dict or JSON); a searched cell plugs in here.
        stem: "imagenet" (conv 3×3 stride 2 VALID + BN, then two stride-2 stem cells) or "cifar" (conv 3×3
            SAME + BN, no stem cells).
        sync_batch_norm: every BatchNormalization computes training statistics over all replicas (TF
            backend), so N replicas train as one device at the same global batch.
        dtype: dtype policy; logits are float32.

    Outputs: {"logits": (batch, num_classes)} and "aux_logits" when aux_head.
    """

    def __init__(self, num_classes=1000, image_size=331, num_cells=12, filters=216, stem_multiplier=3.0,
                 num_reduction_layers=2, filter_scaling_rate=2.0, skip_reduction_layer_input=True, aux_head=False,
                 drop_path_rate=0.0, dropout=0.5, padding="same", bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON,
                 cell="pnasnet_5", sync_batch_norm=False, stem="imagenet", dtype=None, **kwargs):
        spec = CellSpec.get(cell)
        if stem not in ("imagenet", "cifar"):
            raise ZooError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ZooError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        if num_cells < 1:
            raise ZooError(f"num_cells must be at least 1, got {num_cells}")
        _check_image_size("PNASNet", image_size, stem == "imagenet", aux_head)
        reductions = calc_reduction_layers(num_cells, num_reduction_layers)
        stem_cells = 2 if stem == "imagenet" else 0
        total = num_cells + stem_cells
        common = dict(padding=padding, bn_momentum=bn_momentum, bn_epsilon=bn_epsilon, dtype=dtype)

        images = keras.Input((image_size, image_size, 3), name="images")
        self.stem_conv = keras.layers.Conv2D(int(32 * stem_multiplier), 3, strides=2 if stem_cells else 1,
                                             padding="valid" if stem_cells else "same", use_bias=False, name="conv0",
                                             dtype=dtype)
        self.stem_bn = batch_norm("conv0_bn", bn_momentum, bn_epsilon, dtype=dtype)
        x = self.stem_bn(self.stem_conv(images))
        outputs_so_far = [None, x]
        self.cells = []

        def run(name, scale, strides, prev, index):
            cell = NASCell(spec, int(filters * scale), strides, drop_path_rate, (index + 1) / total, name=name,
                           **common)
            self.cells.append(cell)
            return cell(outputs_so_far[-1] if prev is None else [outputs_so_far[-1], prev])

        scale = 1.0 / filter_scaling_rate ** 2
        for i in range(stem_cells):
            outputs_so_far.append(run(f"cell_stem_{i}", scale, 2, outputs_so_far[-2], i))
            scale *= filter_scaling_rate
        outputs = {}
        scale, prev = 1.0, None
        aux_after = reductions[1] - 1 if len(reductions) >= 2 else None
        for i in range(num_cells):
            reduce = i in reductions
            if reduce:
                scale *= filter_scaling_rate
            if skip_reduction_layer_input or not reduce:
                prev = outputs_so_far[-2]
            outputs_so_far.append(run(f"cell_{i}", scale, 2 if reduce else 1, prev, i + stem_cells))
            if aux_head and i == aux_after:
                self.aux = AuxHead(num_classes, bn_momentum, bn_epsilon, name="aux_head", dtype=dtype)
                outputs["aux_logits"] = self.aux(outputs_so_far[-1])
        self.classifier, logits = classifier_head(outputs_so_far[-1], num_classes, dropout, dtype)
        super().__init__(inputs=images, outputs={"logits": logits, **outputs}, dtype=dtype, **kwargs)
        if sync_batch_norm:
            synchronize_batch_norm(self)

        self.num_classes, self.image_size, self.num_cells, self.filters = num_classes, image_size, num_cells, filters
        self.stem_multiplier, self.num_reduction_layers = stem_multiplier, num_reduction_layers
        self.filter_scaling_rate, self.skip_reduction_layer_input = filter_scaling_rate, skip_reduction_layer_input
        self.aux_head, self.drop_path_rate, self.dropout, self.padding = aux_head, drop_path_rate, dropout, padding
        self.bn_momentum, self.bn_epsilon, self.cell = bn_momentum, bn_epsilon, spec.to_config()
        self.sync_batch_norm, self.stem = sync_batch_norm, stem

"""PNASNet-5: structure (TF-slim pnasnet.py) and exact counts."""

import numpy as np
import pytest

from zoo.models.nas.nas_presets import build
from zoo.models.nas.pnasnet import PNASNet, calc_reduction_layers
from tests.models.nas.slim_reference import slim_shapes, trainable


def test_reduction_layers_as_slim():
    assert calc_reduction_layers(12, 2) == [4, 8]
    assert calc_reduction_layers(9, 2) == [3, 6]


def test_tiny_structure():
    net = PNASNet(num_classes=10, image_size=67, num_cells=3, filters=8, stem_multiplier=0.25, drop_path_rate=0.2,
                  aux_head=True)
    # stem cells at F/4, F/2 (int(8 · scale)); reductions at cells [1, 2] double F; every cell outputs 5 states
    assert [(c.name, c.filters, c.strides) for c in net.cells] == [
        ("cell_stem_0", 2, 2), ("cell_stem_1", 4, 2), ("cell_0", 8, 1), ("cell_1", 16, 2), ("cell_2", 32, 2)]
    assert [tuple(c.output.shape[1:]) for c in net.cells] == [(17, 17, 10), (9, 9, 20), (9, 9, 40), (5, 5, 80),
                                                              (3, 3, 160)]
    # drop path "v3": total cells num_cells + 2, the stem cells counted first
    assert [c.cell_ratio for c in net.cells] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    # H_{c-2}: none for the first stem cell, a factorized reduction when it is larger, a 1×1 when only wider
    adjust = [type(c.adjust).__name__ if c.adjust is not None else None for c in net.cells]
    assert adjust == [None, "FactorizedReduction", "FactorizedReduction", "ReluConvBN", "FactorizedReduction"]
    outputs = net(np.zeros((2, 67, 67, 3), "float32"))  # odd sizes work: 67 is the least with the aux head
    assert outputs["logits"].shape == (2, 10) and outputs["aux_logits"].shape == (2, 10)


@pytest.mark.slow
def test_large_counts_and_channels():
    net = build("pnasnet_5_large")
    ours, slim = slim_shapes(net, "pnasnet_large")
    assert ours == slim  # every trainable and moving-variable shape, as many times as TF-slim has it
    # imgclsmob's count = TF-slim build_pnasnet_large(1000 classes) trainable without the aux head
    assert trainable(net) == 86_057_668
    assert net.count_params() == 86_234_656
    assert tuple(net.cells[-1].output.shape[1:]) == (11, 11, 4320)
    assert trainable(build("pnasnet_5_large", aux_head=True)) == 90_643_884  # slim, with its aux head


@pytest.mark.slow
def test_mobile_counts_and_channels():
    net = build("pnasnet_5_mobile")
    ours, slim = slim_shapes(net, "pnasnet_mobile")
    assert ours == slim
    assert trainable(net) == 5_064_487  # TF-slim build_pnasnet_mobile(1000 classes) without the aux head
    assert net.count_params() == 5_098_151
    assert tuple(net.cells[-1].output.shape[1:]) == (7, 7, 1080)
    assert trainable(build("pnasnet_5_mobile", aux_head=True)) == 7_477_263

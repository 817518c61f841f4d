"""NASNet-A: structure and parity with keras.applications (random init, no download), counts, aux head, drop
path, image sizes."""

import keras
import numpy as np
import pytest
from keras.src.applications import nasnet as keras_nasnet

from zoo.errors import ZooError
from zoo.layers.drop_path import ScheduledDropPath
from zoo.models.nas.keras_applications import port_keras_nasnet
from zoo.models.nas.nas_presets import build
from zoo.models.nas.nasnet import NASNet
from tests.models.nas.slim_reference import slim_shapes, total, trainable

TINY = dict(image_size=32, penultimate_filters=96, num_blocks=1, stem_filters=8)


def randomize_batch_norm(model, seed=0):
    """Non-trivial moving statistics and betas, so that the parity covers inference BN."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if w.path.endswith("moving_variance"):
            w.assign(rng.uniform(0.5, 2.0, w.shape))
        elif w.path.endswith(("moving_mean", "beta")):
            w.assign(rng.normal(0.0, 0.2, w.shape))


def ported_difference(reference, ours, batch=2, seed=0):
    randomize_batch_norm(reference, seed)
    written = port_keras_nasnet(reference, ours)
    assert written == len(reference.weights)
    size = ours.image_size
    images = np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, 3)).astype("float32")
    expected = reference(images).numpy()
    actual = ours(images)["logits"].numpy()
    assert np.abs(expected).max() > 0.1
    return float(np.abs(actual - expected).max())


@pytest.fixture(scope="module")
def tiny_pair():
    keras.utils.set_random_seed(0)
    reference = keras_nasnet.NASNet(input_shape=(32, 32, 3), penultimate_filters=96, num_blocks=1,
                                    stem_block_filters=8, skip_reduction=True, weights=None, classes=10,
                                    classifier_activation=None, default_size=32)
    ours = NASNet(num_classes=10, skip_reduction=True, drop_path_rate=0.3, dropout=0.0, **TINY)
    return reference, ours


def test_tiny_parity_with_keras_applications(tiny_pair):
    reference, ours = tiny_pair
    assert (trainable(ours), total(ours)) == (trainable(reference), total(reference))
    assert ported_difference(reference, ours) < 1e-5


def test_drop_path_placement_follows_slim(tiny_pair):
    _, ours = tiny_pair
    names = [cell.name for cell in ours.cells]
    assert names == ["reduction_stem_1", "reduction_stem_2", "normal_0", "reduction_reduce_1", "normal_2",
                     "reduction_reduce_2", "normal_3"]
    for index, cell in enumerate(ours.cells):  # cell index counts stem and reduction cells: total 7
        ops = [op for block in cell._spec.blocks for op in block[2:4]]
        drops = [d for d in cell.drops]
        assert [d is None for d in drops] == [op == "identity" for op in ops]
        assert all(isinstance(d, ScheduledDropPath) and d.cell_ratio == pytest.approx((index + 1) / 7)
                   and d.rate == 0.3 for d in drops if d is not None)


def test_outputs_aux_head_config_and_port_refusal(tiny_pair):
    plain = NASNet(num_classes=10, stem="cifar", **TINY)
    with_aux = NASNet(num_classes=10, stem="cifar", aux_head=True, **TINY)
    images = np.zeros((2, 32, 32, 3), "float32")
    assert set(plain(images)) == {"logits"}
    outputs = with_aux(images)
    assert set(outputs) == {"logits", "aux_logits"} and outputs["aux_logits"].shape == (2, 10)
    # the aux head (16×16×48 cell output → pool 4×4 → 128 → 768 over 4×4 → 10) adds exactly its weights
    aux = 48 * 128 + 2 * 128 + 4 * 4 * 128 * 768 + 2 * 768 + 768 * 10 + 10
    assert trainable(with_aux) - trainable(plain) == aux
    clone = NASNet.from_config(with_aux.get_config())
    assert clone.aux_head and clone.stem == "cifar" and clone.normal_cell == with_aux.normal_cell
    with pytest.raises(ZooError, match="has no cell 'stem_1' in our NASNet"):
        port_keras_nasnet(tiny_pair[0], plain)  # ours has the CIFAR stem: no stem cells


def test_image_size_and_config_errors_are_one_line():
    for kwargs, message in [(dict(image_size=20), "NASNet image_size 20 is too small"),
                            (dict(image_size=64, aux_head=True), "NASNet image_size 64 leaves a 4×4 map"),
                            (dict(penultimate_filters=100), "penultimate_filters 100 must be a multiple of 24"),
                            (dict(stem="tiny"), "stem must be 'imagenet' or 'cifar'")]:
        with pytest.raises(ZooError, match=message) as info:
            NASNet(**kwargs)
        assert "\n" not in str(info.value)


@pytest.mark.slow
def test_mobile_counts_and_parity():
    keras.utils.set_random_seed(1)
    reference = keras.applications.NASNetMobile(weights=None, classifier_activation=None)
    ours = build("nasnet_a_mobile", dropout=0.0)
    assert (trainable(ours), total(ours)) == (5_289_978, 5_326_716)
    assert slim_shapes(ours, "nasnet_mobile")[0] == slim_shapes(ours, "nasnet_mobile")[1]
    assert (trainable(reference), total(reference)) == (5_289_978, 5_326_716)
    difference = ported_difference(reference, ours, seed=1)
    print(f"NASNet-A Mobile 224: max |logits - keras.applications| = {difference:.2e}")
    assert difference < 1e-5


@pytest.mark.slow
def test_large_counts_and_parity():
    keras.utils.set_random_seed(2)
    reference = keras.applications.NASNetLarge(weights=None, classifier_activation=None)
    ours = build("nasnet_a_large", dropout=0.0)
    assert (trainable(ours), total(ours)) == (88_753_150, 88_949_818)
    assert (trainable(reference), total(reference)) == (88_753_150, 88_949_818)
    difference = ported_difference(reference, ours, batch=1, seed=2)
    print(f"NASNet-A Large 331: max |logits - keras.applications| = {difference:.2e}")
    assert difference < 1e-5


@pytest.mark.slow
def test_cifar_and_aux_counts_match_slim():
    # TF-slim build_nasnet_cifar (10 classes): 3,346,538 trainable, 4,978,036 with the aux head
    cifar = build("nasnet_a_cifar")
    assert trainable(cifar) == 3_346_538
    ours, slim = slim_shapes(cifar, "nasnet_cifar")
    assert ours == slim  # every trainable and moving-variable shape, as many times as TF-slim has it
    assert trainable(build("nasnet_a_cifar", aux_head=True)) == 4_978_036
    # TF-slim build_nasnet_mobile with its aux head: 7,701,218
    assert trainable(build("nasnet_a_mobile", aux_head=True)) == 7_701_218

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests.models.gan.gan_helpers import adam, changed_weights, images, snapshot
from zoo.errors import ZooError
from zoo.layers.normalization import InstanceNormalization
from zoo.models.gan import CycleGAN, PatchGANDiscriminator, ResnetGenerator

TINY = dict(image_size=24, filters=2, num_blocks=1, discriminator_filters=2, pool_size=3)


def _count(model):
    return sum(int(np.prod(v.shape)) for v in model.weights)


def _tiny(**overrides):
    keras.utils.set_random_seed(0)
    model = zoo.create_model("cyclegan", **{**TINY, **overrides})
    model.compile(generator_optimizer=adam(), discriminator_optimizer=adam())
    model.build_optimizer_state()
    return model


def test_official_parameter_counts_and_patch_map():
    assert _count(ResnetGenerator(num_blocks=9)) == 11_378_179
    assert _count(ResnetGenerator(num_blocks=6)) == 7_837_699
    discriminator = PatchGANDiscriminator()
    assert _count(discriminator) == 2_764_737
    assert discriminator(tf.zeros((1, 256, 256, 3))).shape == (1, 30, 30, 1)
    assert ResnetGenerator(filters=8, num_blocks=2)(tf.zeros((1, 36, 36, 3))).shape == (1, 36, 36, 3)
    assert zoo.create_model("cyclegan").image_size == 256 and zoo.create_model("cyclegan_6blocks").image_size == 128


def _torch_conv(x, w, stride, pad):
    """PyTorch Conv2d (zero padding) on one channel, in numpy."""
    x = np.pad(x, pad)
    k = w.shape[0]
    n = (x.shape[0] - k) // stride + 1
    return np.array([[np.sum(x[i * stride:i * stride + k, j * stride:j * stride + k] * w) for j in range(n)]
                     for i in range(n)])


def _torch_conv_transpose(x, w, stride, pad, output_padding):
    """PyTorch ConvTranspose2d on one channel, in numpy: out[s*i - pad + k] += x[i] * w[k]."""
    n, k = x.shape[0], w.shape[0]
    size = (n - 1) * stride - 2 * pad + k + output_padding
    out = np.zeros((size, size))
    for i in range(n):
        for j in range(n):
            for u in range(k):
                for v in range(k):
                    r, c = stride * i - pad + u, stride * j - pad + v
                    if 0 <= r < size and 0 <= c < size:
                        out[r, c] += x[i, j] * w[u, v]
    return out


def test_resampling_matches_pytorch_geometry():
    """The stride-2 conv and transposed conv sample the same pixels as PyTorch's (k3, s2, p1[, op1])."""
    generator = ResnetGenerator(filters=1, num_blocks=1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 6)).astype("float32")
    w = rng.normal(size=(3, 3)).astype("float32")

    down = keras.Model(generator.get_layer("down_1_pad").input, generator.get_layer("down_1_conv").output)
    conv = generator.get_layer("down_1_conv")
    kernel = np.zeros(conv.kernel.shape, "float32")
    kernel[:, :, 0, 0] = w
    conv.kernel.assign(kernel)
    got = down(x[None, :, :, None])[0, :, :, 0]
    np.testing.assert_allclose(got, _torch_conv(x, w, 2, 1), atol=1e-5)

    up = keras.Model(generator.get_layer("up_2_deconv").input, generator.get_layer("up_2_crop").output)
    deconv = generator.get_layer("up_2_deconv")
    kernel = np.zeros(deconv.kernel.shape, "float32")
    kernel[:, :, 0, 0] = w  # Keras' transposed kernel is spatially the same map (no flip) as PyTorch's
    deconv.kernel.assign(kernel)
    inputs = np.zeros((1, 6, 6, deconv.kernel.shape[-1]), "float32")
    inputs[0, :, :, 0] = x
    got = up(inputs)[0, :, :, 0]
    np.testing.assert_allclose(got, _torch_conv_transpose(x, w, 2, 1, 1), atol=1e-5)


def test_instance_norm():
    x = tf.random.normal((2, 5, 5, 3)) * 4.0 + 2.0
    y = InstanceNormalization()(x).numpy()
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(1, 2)), 1.0, atol=1e-3)
    plain, affine = InstanceNormalization(), InstanceNormalization(center=True, scale=True)
    plain(x), affine(x)
    assert not plain.weights and len(affine.trainable_weights) == 2
    assert InstanceNormalization.from_config(affine.get_config()).get_config() == affine.get_config()


def test_discriminator_step_changes_only_discriminators():
    model = _tiny()
    before = snapshot(model)
    a, b = images((2, 24, 24, 3), 0) * 2 - 1, images((2, 24, 24, 3), 1) * 2 - 1
    model.discriminator_step(a, b, tf.tanh(b), tf.tanh(a))
    changed = changed_weights(before, model)
    assert all(changed["discriminator_a"]) and all(changed["discriminator_b"])
    assert not any(changed["generator_a"]) and not any(changed["generator_b"])
    assert int(model.fake_a_pool.count) == 2 and int(model.fake_b_pool.count) == 2


def test_generator_step_changes_only_generators_and_loss_weights():
    model = _tiny()
    before = snapshot(model)
    a, b = images((2, 24, 24, 3), 0) * 2 - 1, images((2, 24, 24, 3), 1) * 2 - 1
    logs, fake_a, fake_b = model.generator_step(a, b)
    changed = changed_weights(before, model)
    assert all(changed["generator_a"]) and all(changed["generator_b"])
    assert not any(changed["discriminator_a"]) and not any(changed["discriminator_b"])
    logs = {k: float(v) for k, v in logs.items()}
    expected = (logs["g_gan_a"] + logs["g_gan_b"] + 10 * (logs["cycle_a"] + logs["cycle_b"])
                + 5 * (logs["identity_a"] + logs["identity_b"]))
    assert logs["g_loss"] == pytest.approx(expected, rel=1e-5)
    assert fake_a.shape == fake_b.shape == (2, 24, 24, 3)
    no_identity = _tiny(lambda_identity=0.0)
    assert "identity_a" not in no_identity.generator_step(a, b)[0]


def test_bad_inputs():
    with pytest.raises(ZooError, match="multiple of 4"):
        zoo.create_model("cyclegan", image_size=30)
    with pytest.raises(ZooError, match="no option"):
        zoo.create_model("cyclegan", arch="discogan")
    model = _tiny()
    with pytest.raises(ZooError, match="too small for a 3-layer PatchGAN; use at least 24"):
        zoo.create_model("cyclegan", image_size=20)
    with pytest.raises(ZooError, match=r"\[batch, 24, 24, 3\].*image_size=32"):
        model.train_step({"a": images((2, 32, 32, 3), 0), "b": images((2, 32, 32, 3), 1)})


@pytest.mark.slow
@pytest.mark.distributed
def test_two_replicas_equal_one_device(mirrored):
    """Two train steps (G then D through the global pool) on 2 replicas equal two on one device."""
    batches = [{"a": images((4, 24, 24, 3), 2 * k), "b": images((4, 24, 24, 3), 2 * k + 1)} for k in range(2)]

    single = _tiny()
    step = tf.function(single.train_step)
    single_logs = [step(batch) for batch in batches][-1]

    with mirrored.scope():
        replicated = _tiny()
    run = tf.function(lambda d: mirrored.run(replicated.train_step, args=(d,)))
    for batch in batches:
        logs = run(mirrored.experimental_distribute_values_from_function(
            lambda ctx, b=batch: {k: v[2 * ctx.replica_id_in_sync_group:][:2] for k, v in b.items()}))
    for key, value in single_logs.items():
        for replica_value in mirrored.experimental_local_results(logs[key]):
            np.testing.assert_allclose(replica_value, value, rtol=1e-4, atol=1e-6, err_msg=key)
    for x, y in zip(single.weights, replicated.weights):  # includes the pools
        layer = x.path.split("/")[-2]
        if x.path.endswith("bias") and layer not in ("head_conv", "conv_1", "conv_out"):
            # A bias followed by instance norm has an exactly zero gradient; Adam turns its round-off into
            # full-size steps, so it is not reproducible (it is in the reference too, and has no effect).
            continue
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-4, atol=2e-5, err_msg=x.path)


def test_config_round_trip():
    model = zoo.create_model("cyclegan_6blocks", **{**TINY, "num_blocks": 2}, lambda_identity=0.0)
    clone = CycleGAN.from_config(model.get_config())
    assert clone.lambda_identity == 0.0 and clone.generator_a.num_blocks == 2 and clone.pool_size == 3
    assert _count(clone) == _count(model)

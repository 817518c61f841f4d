import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
import zoo.ops
from tests.layers.policy_helpers import assert_policy_round_trip
from tests.models.gan.gan_helpers import adam, changed_weights, images, snapshot
from zoo.errors import ZooError
from zoo.models.gan import DiscoGAN, DiscoGANDiscriminator, DiscoGANGenerator

TINY = dict(filters=4)


def _count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


def _tiny(name="discogan", **overrides):
    keras.utils.set_random_seed(0)
    model = zoo.create_model(name, **TINY, **overrides)
    model.compile(generator_optimizer=adam(), discriminator_optimizer=adam())
    model.build_optimizer_state()
    return model


def test_official_parameter_counts():
    generator = DiscoGANGenerator()
    assert _count(generator.trainable_variables) == 5_513_856
    assert _count(generator.weights) == 5_516_544  # + BatchNorm moving statistics
    assert _count(DiscoGANGenerator(bottleneck_units=100).trainable_variables) == 7_153_480
    discriminator = DiscoGANDiscriminator()
    assert _count(discriminator.trainable_variables) == 2_765_568
    assert _count(discriminator.weights) == 2_767_360
    out = discriminator(tf.zeros((2, 64, 64, 3)))
    assert out["probability"].shape == (2, 1, 1, 1)
    assert [tuple(f.shape) for f in out["features"]] == [(2, 16, 16, 128), (2, 8, 8, 256), (2, 4, 4, 512)]
    assert not any("bias" in v.path for v in generator.weights + discriminator.weights)
    assert generator(tf.zeros((1, 64, 64, 3))).shape == (1, 64, 64, 3)


def test_presets_and_bad_options():
    assert {"discogan", "discogan_bottleneck", "discogan_recongan", "discogan_gan"} <= set(zoo.list_models("disco*"))
    assert zoo.create_model("discogan_gan", **TINY).arch == "gan"
    assert zoo.create_model("discogan_bottleneck", **TINY).generator_a.bottleneck_units == 100
    with pytest.raises(ZooError, match="unknown model 'discogan_xl'"):
        zoo.create_model("discogan_xl")
    with pytest.raises(ZooError, match="multiple of 16"):
        zoo.create_model("discogan", image_size=50)
    with pytest.raises(ZooError, match="unknown DiscoGAN arch 'cyclegan'"):
        zoo.create_model("discogan", arch="cyclegan", **TINY)
    with pytest.raises(ZooError, match="unknown DiscoGAN loss"):
        zoo.create_model("discogan", loss="mine", **TINY)
    with pytest.raises(ZooError, match="no option"):
        zoo.create_model("discogan", blocks=3)
    with pytest.raises(ZooError, match="compile"):
        zoo.create_model("discogan", **TINY).train_step({"a": images((3, 2, 64, 64, 3), 0),
                                                         "b": images((3, 2, 64, 64, 3), 1)})


def test_discriminator_step_changes_only_discriminators():
    model = _tiny()
    before = snapshot(model)
    logs = model.discriminator_step(images((4, 64, 64, 3), 0), images((4, 64, 64, 3), 1), tf.constant(0, "int64"))
    changed = changed_weights(before, model)
    assert all(changed["discriminator_a"]) and all(changed["discriminator_b"])
    assert not any(changed["generator_a"]) and not any(changed["generator_b"])
    assert set(logs) == {"d_loss_a", "d_loss_b"}


def test_generator_step_changes_only_generators_and_code_loss():
    model = _tiny()
    before = snapshot(model)
    logs = model.generator_step(images((4, 64, 64, 3), 0), images((4, 64, 64, 3), 1), tf.constant(1, "int64"))
    changed = changed_weights(before, model)
    assert all(changed["generator_a"]) and all(changed["generator_b"])
    assert not any(changed["discriminator_a"]) and not any(changed["discriminator_b"])
    logs = {k: float(v) for k, v in logs.items()}
    rate = 0.01  # starting_rate during the curriculum
    expected = sum((0.1 * logs[f"gan_{t}"] + 0.9 * logs[f"fm_{t}"]) * (1 - rate) + rate * logs[f"recon_{s}"]
                   for t, s in (("b", "a"), ("a", "b")))
    assert logs["g_loss"] == pytest.approx(expected, rel=1e-5)


def test_paper_loss_and_single_direction_archs():
    model = _tiny(loss="paper")
    logs = {k: float(v) for k, v in model.generator_step(
        images((4, 64, 64, 3), 0), images((4, 64, 64, 3), 1), tf.constant(1, "int64")).items()}
    assert logs["g_loss"] == pytest.approx(logs["gan_a"] + logs["gan_b"] + logs["recon_a"] + logs["recon_b"], 1e-5)
    assert "rate" not in logs
    gan = _tiny("discogan_gan")
    before = snapshot(gan)
    gan.generator_step(images((4, 64, 64, 3), 0), images((4, 64, 64, 3), 1), tf.constant(1, "int64"))
    gan.discriminator_step(images((4, 64, 64, 3), 0), images((4, 64, 64, 3), 1), tf.constant(0, "int64"))
    changed = changed_weights(before, gan)
    assert all(changed["generator_b"]) and all(changed["discriminator_b"])
    assert not any(changed["generator_a"]) and not any(changed["discriminator_a"])  # A -> B only
    recon = _tiny("discogan_recongan")
    assert [n.name for n in recon.generator_nets] == ["generator_a", "generator_b"]
    assert [n.name for n in recon.discriminator_nets] == ["discriminator_b"]


def test_rate_curriculum():
    model = zoo.create_model("discogan", gan_curriculum=6, **TINY)
    assert [round(float(model.rate(tf.constant(i, "int64"))), 4) for i in (0, 5, 6, 100)] == [0.01, 0.01, 0.5, 0.5]


def test_train_step_checks_image_shapes():
    model = _tiny()
    with pytest.raises(ZooError, match=r"\[\.\.\., 64, 64, 3\].*image_size=32"):
        model.train_step({"a": images((3, 2, 32, 32, 3), 0), "b": images((3, 2, 32, 32, 3), 1)})
    with pytest.raises(ZooError, match="update_interval=3"):
        model.train_step({"a": images((2, 64, 64, 3), 0), "b": images((2, 64, 64, 3), 1)})


@pytest.mark.slow
@pytest.mark.distributed
def test_two_replicas_equal_one_device(mirrored):
    """One train step (a D iteration then a G iteration) on 2 replicas equals one on one device."""
    a, b = images((2, 4, 64, 64, 3), 0), images((2, 4, 64, 64, 3), 1)

    single = _tiny(update_interval=2)
    single_logs = tf.function(single.train_step)({"a": a, "b": b})

    with mirrored.scope():
        replicated = _tiny(update_interval=2)
    data = mirrored.experimental_distribute_values_from_function(
        lambda ctx: {"a": a[:, 2 * ctx.replica_id_in_sync_group:][:, :2],
                     "b": b[:, 2 * ctx.replica_id_in_sync_group:][:, :2]})
    logs = tf.function(lambda d: mirrored.run(replicated.train_step, args=(d,)))(data)
    for key, value in single_logs.items():
        for replica_value in mirrored.experimental_local_results(logs[key]):
            np.testing.assert_allclose(replica_value, value, rtol=1e-4, atol=1e-6, err_msg=key)
    for x, y in zip(single.weights, replicated.weights):  # atol: a tenth of one Adam step (lr 2e-4)
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-4, atol=2e-5, err_msg=x.path)
    # One step done: the discriminators' optimizer (model.optimizer) counts steps, the generators' iterations.
    assert replicated.optimizer is replicated.discriminator_optimizer
    assert int(replicated.optimizer.iterations.numpy()) == 1
    assert int(replicated.generator_optimizer.iterations.numpy()) == 1


@pytest.mark.slow
def test_iterations_follow_the_global_step():
    """Step s runs iterations s·3 .. s·3 + 2: the rate switches when an iteration reaches gan_curriculum, both
    when train_step is called directly (step = optimizer iterations) and under a Trainer's step."""
    model = _tiny(gan_curriculum=6)
    assert model.optimizer is model.discriminator_optimizer
    a, b = images((3, 2, 64, 64, 3), 0), images((3, 2, 64, 64, 3), 1)
    step = tf.function(model.train_step)
    rates = [round(float(step({"a": a, "b": b})["rate"]), 4) for _ in range(3)]
    assert rates == [0.01, 0.01, 0.5]  # last generator iterations 2, 5, 8
    assert int(zoo.ops.global_step(model)) == 3
    assert int(model.generator_optimizer.iterations) == 6
    model = _tiny(gan_curriculum=6)
    with zoo.ops.driving_step(tf.Variable(1, dtype=tf.int64)):  # iterations 3, 4, 5: below the curriculum
        assert round(float(model.train_step({"a": a, "b": b})["rate"]), 4) == 0.01
    with zoo.ops.driving_step(tf.Variable(2, dtype=tf.int64)):  # iterations 6, 7, 8
        assert round(float(model.train_step({"a": a, "b": b})["rate"]), 4) == 0.5


def test_config_round_trip():
    model = zoo.create_model("discogan_recongan", loss="paper", **TINY)
    clone = DiscoGAN.from_config(model.get_config())
    assert clone.arch == "recongan" and clone.loss_mode == "paper" and clone.generator_a.filters == 4
    assert _count(clone.weights) == _count(model.weights)


def test_mixed_float16_policy_round_trips():
    clone = assert_policy_round_trip(lambda: zoo.create_model("discogan", **TINY))
    assert clone.generator_a.get_layer("encoder_conv_1").compute_dtype == "float16"
    assert_policy_round_trip(lambda: zoo.create_model("cyclegan_6blocks", image_size=32, filters=4,
                                                      discriminator_filters=4))

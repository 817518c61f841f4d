"""Every registered model, from its registry metadata (`zoo.model_info`): a forward pass at its small config,
the `get_config` -> `from_config` round trip, `.keras` save/load (safe mode on) with identical outputs, and
the full-size preset's trainable parameter count against the count the registry quotes."""

import gc

import keras
import numpy as np
import pytest

import zoo
from zoo.registry import trainable_params

NAMES = zoo.list_models()

# (test, model name) -> reason, for failures in a model class's code; strict, so a fix shows up as XPASS.
KNOWN_FAILURES = {}
_SEEN = {}


def _params(test):
    return [pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[test, name]))
            if (test, name) in KNOWN_FAILURES else name for name in NAMES]


@pytest.fixture(autouse=True)
def _free_memory():
    yield
    keras.backend.clear_session()
    gc.collect()


def _small(name, test):
    """The small model and its inputs; skips when an earlier name of this test built the same model (the
    BERT presets differ only in what the small overrides replace)."""
    info = zoo.model_info(name)
    keras.utils.set_random_seed(0)
    model = info.create(small=True)
    try:
        key = (test, type(model), repr({k: v for k, v in model.get_config().items() if k != "name"}))
    except Exception:  # a broken get_config is test_get_config_round_trip's to report
        key = (test, name)
    if _SEEN.setdefault(key, name) != name:
        pytest.skip(f"{name}'s small model is {_SEEN[key]}'s")
    return model, info.example_inputs(model, batch_size=2, seed=0)


def _outputs(model, inputs):
    return [keras.ops.convert_to_numpy(x) for x in keras.tree.flatten(model(inputs))]


def test_every_model_has_complete_metadata():
    assert NAMES, "no model registered"
    for name in NAMES:
        info = zoo.model_info(name)
        assert info.name == name and info.description and info.small and callable(info.example_inputs), name
        assert info.paper.startswith("https://") and info.code.startswith("https://"), name


@pytest.mark.parametrize("name", _params("forward"))
def test_forward_pass_at_small_config(name):
    model, inputs = _small(name, "forward")
    first = _outputs(model, inputs)
    assert first and all(o.shape[0] == 2 and np.isfinite(o).all() for o in first)
    for a, b in zip(first, _outputs(model, inputs)):  # inference is deterministic
        np.testing.assert_array_equal(a, b)
    assert 0 < trainable_params(model) < zoo.model_info(name).params


@pytest.mark.parametrize("name", _params("config"))
def test_get_config_round_trip(name):
    model, inputs = _small(name, "config")
    expected = _outputs(model, inputs)
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    clone(inputs)  # builds subclassed models
    clone.set_weights(model.get_weights())
    for a, b in zip(expected, _outputs(clone, inputs)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", _params("keras_file"))
def test_keras_file_save_load(name, tmp_path):
    model, inputs = _small(name, "keras_file")
    expected = _outputs(model, inputs)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe_mode=True
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    for a, b in zip(expected, _outputs(loaded, inputs)):
        np.testing.assert_array_equal(a, b)


# Building a full-size model costs about 1 s of CPU per 10M parameters (initializers), and the searched and
# random architectures' hundreds of layers take 2-4 s to wire even at 5M: those builds are slow.
SLOW_PARAMS = 50_000_000
DEEP_GRAPH_FAMILIES = ("nasnet", "pnasnet", "randwire")


def _slow_build(name):
    info = zoo.model_info(name)
    return info.params > SLOW_PARAMS or info.family.name in DEEP_GRAPH_FAMILIES


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if _slow_build(n) else n for n in NAMES])
def test_full_size_parameter_count(name):
    info = zoo.model_info(name)
    model = zoo.create_model(name)
    assert trainable_params(model) == info.params
    for part, count in info.params_detail.items():
        assert trainable_params(getattr(model, part)) == count, part

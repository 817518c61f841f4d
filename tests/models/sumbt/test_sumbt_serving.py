import numpy as np
import pytest
import tensorflow as tf

from tests.models.sumbt.sumbt_cases import dialogues, inputs_of, tiny_model
from tests.tf_only import run_tf_only
from zoo.training.export import export_saved_model
from zoo.models.sumbt.sumbt_serving import serving_endpoints


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_model()
    path = export_saved_model(str(tmp_path_factory.mktemp("sumbt") / "export"), model, serving_endpoints(model))
    return model, path


def _expected(model, inputs):
    out = model(inputs)
    return np.asarray(out["predictions"]), np.where(model.value_mask, -np.asarray(out["logits"]), -1.0)


@pytest.mark.slow
def test_loads_with_tensorflow_only_and_matches_keras(exported, tmp_path):
    model, path = exported
    inputs = inputs_of(dialogues())
    np.savez(tmp_path / "inputs.npz", **inputs)
    result = run_tf_only(f"""
        import json, numpy as np, tensorflow as tf
        fn = tf.saved_model.load({path!r}).signatures["serving_default"]
        data = np.load({str(tmp_path / "inputs.npz")!r})
        out = fn(**{{k: tf.constant(data[k]) for k in data.files}})
        print(json.dumps({{"inputs": sorted(fn.structured_input_signature[1]), "outputs": sorted(out),
                           "dtypes": [out[k].dtype.name for k in sorted(out)],
                           "predictions": out["predictions"].numpy().tolist(),
                           "distances": out["distances"].numpy().tolist()}}))
    """)
    assert result["inputs"] == ["padding_mask", "segment_ids", "token_ids"]
    assert result["outputs"] == ["distances", "predictions"] and result["dtypes"] == ["float32", "int32"]
    predictions, distances = _expected(model, inputs)
    np.testing.assert_array_equal(result["predictions"], predictions)
    np.testing.assert_allclose(result["distances"], distances, rtol=1e-5, atol=1e-5)
    assert np.asarray(result["distances"])[..., 1, 3:].tolist() == np.full((4, 3, 1), -1.0).tolist()


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(segment_ids=d["segment_ids"][:, :2]), "segment_ids must have the shape"),
    (lambda d: d.update(token_ids=d["token_ids"] + 100), r"token_ids must be in \[0, 40\)"),
    (lambda d: d.update(padding_mask=d["padding_mask"] * 3), "padding_mask must hold 0"),
    (lambda d: d.update({k: v[:, :0] for k, v in d.items()}), "at least one turn"),
])
def test_served_model_checks_its_inputs(exported, change, message):
    model, path = exported
    fn = tf.saved_model.load(path).signatures["serving_default"]
    inputs = inputs_of(dialogues())
    ok = fn(**{k: tf.constant(v) for k, v in inputs.items()})
    np.testing.assert_array_equal(ok["predictions"].numpy(), _expected(model, inputs)[0])
    change(inputs)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        fn(**{k: tf.constant(v) for k, v in inputs.items()})

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests.tf_only import run_tf_only
from zoo.errors import ZooError
from zoo.models.bert.bert_serving import serving_endpoints
from zoo.training import export

TINY = dict(vocabulary_size=30, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16, dropout=0.0,
            max_sequence_length=16)


@pytest.fixture(scope="module")
def backbone():
    keras.utils.set_random_seed(0)
    return zoo.create_model("bert_tiny", **TINY)


@pytest.fixture()
def vocab(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"] + [f"w{i}" for i in range(25)]) + "\n")
    return str(path)


def test_tf_serving_layout_versions_and_assets(tmp_path, backbone, vocab):
    base = str(tmp_path / "export")
    first = export.export_saved_model(base, backbone, serving_endpoints(backbone), assets={"vocab.txt": vocab})
    second = export.export_saved_model(base, backbone, serving_endpoints(backbone), assets={"vocab.txt": vocab})
    assert first.endswith(os.sep + "1") and second.endswith(os.sep + "2")
    for path in (first, second):
        assert os.path.exists(os.path.join(path, "saved_model.pb"))
        assert os.path.isdir(os.path.join(path, "variables"))
        assert open(os.path.join(path, "assets", "vocab.txt")).read() == open(vocab).read()
    assert sorted(os.listdir(base)) == ["1", "2"]  # no temporary directories left behind


def test_existing_version_is_never_overwritten(tmp_path, backbone):
    base = str(tmp_path / "export")
    path = export.export_saved_model(base, backbone, serving_endpoints(backbone), version=7)
    stamp = os.path.getmtime(os.path.join(path, "saved_model.pb"))
    with pytest.raises(ZooError, match="already exists"):
        export.export_saved_model(base, backbone, serving_endpoints(backbone), version=7)
    assert os.path.getmtime(os.path.join(path, "saved_model.pb")) == stamp


def test_failed_write_leaves_nothing(tmp_path, backbone, monkeypatch):
    base = str(tmp_path / "export")
    export.export_saved_model(base, backbone, serving_endpoints(backbone))

    def crash(obj, path, *args, **kwargs):  # dies half-way through writing
        os.makedirs(os.path.join(path, "variables"))
        open(os.path.join(path, "saved_model.pb"), "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        export.export_saved_model(base, backbone, serving_endpoints(backbone))
    assert sorted(os.listdir(base)) == ["1"]


@pytest.mark.slow
def test_loads_with_tensorflow_only_and_matches_keras(tmp_path, backbone, vocab):
    path = export.export_saved_model(str(tmp_path / "export"), backbone, serving_endpoints(backbone),
                                     assets={"vocab.txt": vocab})
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 30, size=(2, 10)).astype("int32")
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    ids = ids * mask
    segments = np.zeros_like(ids)
    segments[:, 5:] = 1
    np.savez(tmp_path / "inputs.npz", token_ids=ids, segment_ids=segments * mask, padding_mask=mask)
    result = run_tf_only(f"""
        import json, numpy as np, tensorflow as tf
        model = tf.saved_model.load({path!r})
        fn = model.signatures["serving_default"]
        data = np.load({str(tmp_path / "inputs.npz")!r})
        out = fn(**{{k: tf.constant(data[k]) for k in data.files}})
        print(json.dumps({{"inputs": sorted(fn.structured_input_signature[1]),
                           "outputs": sorted(out),
                           "pooled": out["pooled_output"].numpy().tolist(),
                           "sequence": out["sequence_output"].numpy().tolist()}}))
    """)
    assert result["inputs"] == ["padding_mask", "segment_ids", "token_ids"]
    assert result["outputs"] == ["pooled_output", "sequence_output"]
    expected = backbone({"token_ids": ids, "segment_ids": segments * mask, "padding_mask": mask})
    np.testing.assert_allclose(result["pooled"], np.asarray(expected["pooled_output"]), atol=1e-5)
    np.testing.assert_allclose(result["sequence"], np.asarray(expected["sequence_output"]), atol=1e-5)


@pytest.mark.parametrize("name, token_ids, segment_ids, padding_mask, message", [
    ("negative id", [[1, -3, 2]], [[0, 0, 0]], [[1, 1, 1]], r"token_ids must be in \[0, 30\)"),
    ("id past the vocabulary", [[1, 30, 2]], [[0, 0, 0]], [[1, 1, 1]], r"token_ids must be in \[0, 30\)"),
    ("too long", [[1] * 17], [[0] * 17], [[1] * 17], "at most 16 tokens long"),
    ("bad segment", [[1, 2]], [[0, 2]], [[1, 1]], r"segment_ids must be in \[0, 2\)"),
    ("bad mask", [[1, 2]], [[0, 0]], [[1, 5]], "padding_mask must hold 0"),
    ("shapes differ", [[1, 2, 3]], [[0, 0]], [[1, 1, 1]], "segment_ids must have the shape of token_ids"),
    ("empty batch", np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3)), "send at least one sequence"),
])
def test_served_bert_checks_its_inputs(tmp_path_factory, backbone, name, token_ids, segment_ids, padding_mask,
                                       message):
    path = getattr(test_served_bert_checks_its_inputs, "path", None)
    if path is None:  # one export for every case
        path = export.export_saved_model(str(tmp_path_factory.mktemp("served")), backbone, serving_endpoints(backbone))
        test_served_bert_checks_its_inputs.path = path
    serve = tf.saved_model.load(path).signatures["serving_default"]
    ok = serve(token_ids=tf.constant([[1, 5, 2]]), segment_ids=tf.constant([[0, 0, 1]]),
               padding_mask=tf.constant([[1, 1, 1]]))
    assert ok["pooled_output"].shape == (1, 8)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serve(token_ids=tf.constant(token_ids, tf.int32), segment_ids=tf.constant(segment_ids, tf.int32),
              padding_mask=tf.constant(padding_mask, tf.int32))

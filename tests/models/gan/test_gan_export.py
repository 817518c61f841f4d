import os

import keras
import numpy as np
import pytest

import zoo
from tests.tf_only import run_tf_only
from zoo.data import images
from zoo.training.export import export_saved_model


@pytest.mark.slow
def test_generators_serve_floats_and_png_bytes_without_keras(tmp_path):
    """DiscoGAN and CycleGAN generators load with TensorFlow alone; `serving_default` matches Keras and
    `translate_bytes` round-trips PNGs (8-bit input in, the translation rounded to 8 bits out)."""
    keras.utils.set_random_seed(0)
    models = {"discogan": (zoo.create_model("discogan", filters=4), 64),
              "cyclegan": (zoo.create_model("cyclegan", image_size=24, filters=2, num_blocks=1,
                                            discriminator_filters=2), 24)}
    rng = np.random.default_rng(0)
    paths, expected = {}, {}
    for name, (model, size) in models.items():
        endpoints = images.translation_endpoints(lambda x, m=model: m.translate_direction(x, "a2b"), size)
        paths[name] = export_saved_model(str(tmp_path / name / "a2b"), model.generator_a, endpoints)
        assert paths[name].endswith(os.path.join("a2b", "1"))
        pixels = rng.integers(0, 256, (2, size, size, 3)).astype("uint8")
        np.save(tmp_path / f"{name}.npy", pixels)
        floats = pixels.astype("float32") / 255.0
        expected[name] = model.translate_direction(floats, "a2b").numpy()
    result = run_tf_only(f"""
        import json, numpy as np, tensorflow as tf
        out = {{}}
        for name, path in {paths!r}.items():
            model = tf.saved_model.load(path)
            pixels = np.load({str(tmp_path)!r} + "/" + name + ".npy")
            served = model.signatures["serving_default"](images=tf.constant(pixels / 255.0, tf.float32))
            encoded = tf.stack([tf.io.encode_png(p) for p in pixels])
            png = model.signatures["translate_bytes"](image_bytes=encoded)["png_bytes"].numpy()
            out[name] = {{"served": served["images"].numpy().tolist(),
                         "decoded": [tf.io.decode_png(b).numpy().tolist() for b in png],
                         "signatures": sorted(model.signatures)}}
        print(json.dumps(out))
    """)
    for name in models:
        assert result[name]["signatures"] == ["serving_default", "translate_bytes"]
        np.testing.assert_allclose(np.array(result[name]["served"]), expected[name], atol=1e-5)
        np.testing.assert_allclose(np.array(result[name]["decoded"]), np.round(expected[name] * 255), atol=1.0)

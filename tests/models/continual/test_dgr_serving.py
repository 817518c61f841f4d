"""DGR exports load in a TensorFlow-only process and match Keras, for floats and for image bytes."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests.tf_only import run_tf_only
from zoo.data import digits, images
from zoo.models.continual import dgr_serving
from zoo.training.export import export_saved_model


@pytest.mark.slow
def test_solver_and_generator_serve_without_keras(tmp_path):
    keras.utils.set_random_seed(0)
    scholar = zoo.create_model("dgr", preset="digits", generator=dict(channels=4), critic=dict(channels=4),
                               solver=dict(depth=4, channels=16))
    solver_dir = export_saved_model(str(tmp_path / "solver"), scholar.solver,
                                    dgr_serving.solver_endpoints(scholar.solver, images.decode_image_batch))
    generator_dir = export_saved_model(str(tmp_path / "generator"), scholar.generator,
                                       dgr_serving.generator_endpoints(scholar, images.encode_png_batch))
    assert solver_dir.endswith("solver/1") and generator_dir.endswith("generator/1")

    _, (test_x, _) = digits.load_digits()
    pixels = np.round(test_x[:5] * 255).astype(np.uint8)  # what a PNG can hold
    pngs = [tf.io.encode_png(p).numpy() for p in pixels]
    quantized = pixels.astype(np.float32) / 255.0
    noise = np.random.default_rng(1).normal(size=(3, 32)).astype(np.float32)
    np.save(tmp_path / "inputs.npy", {"images": quantized, "noise": noise, "pngs": pngs}, allow_pickle=True)

    out = run_tf_only(f"""
        import json
        import numpy as np
        import tensorflow as tf
        inputs = np.load({str(tmp_path / "inputs.npy")!r}, allow_pickle=True).item()
        solver = tf.saved_model.load({solver_dir!r})
        generator = tf.saved_model.load({generator_dir!r})
        floats = solver.signatures["serving_default"](images=tf.constant(inputs["images"]))
        from_bytes = solver.signatures["classify_bytes"](image_bytes=tf.constant(inputs["pngs"]))
        generated = generator.signatures["serving_default"](noise=tf.constant(inputs["noise"]))["images"]
        pngs = generator.signatures["generate_png"](noise=tf.constant(inputs["noise"]))["png_bytes"]
        decoded = [tf.io.decode_png(p).numpy().tolist() for p in pngs.numpy()]
        print(json.dumps({{
            "probabilities": floats["probabilities"].numpy().tolist(),
            "classes": floats["classes"].numpy().tolist(),
            "bytes_probabilities": from_bytes["probabilities"].numpy().tolist(),
            "images": generated.numpy().tolist(), "decoded": decoded,
            "signatures": sorted(solver.signatures) + sorted(generator.signatures)}}))
    """)
    assert out["signatures"] == ["classify_bytes", "serving_default", "generate_png", "serving_default"]
    expected = tf.nn.softmax(scholar.solver(quantized, training=False)).numpy()
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    np.testing.assert_allclose(out["bytes_probabilities"], expected, atol=1e-5)  # PNG bytes round-trip
    assert out["classes"] == np.argmax(expected, -1).tolist()
    keras_images = scholar.generator(noise * scholar.noise_scale, training=False).numpy()
    np.testing.assert_allclose(out["images"], keras_images, atol=1e-5)
    decoded = np.asarray(out["decoded"], np.float32) / 255.0
    assert decoded.shape == (3, 8, 8, 1) and np.abs(decoded - keras_images).max() <= 0.5 / 255 + 1e-6
    json.dumps(scholar.get_config())  # the whole scholar config is JSON-able

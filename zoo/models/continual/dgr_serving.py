"""Serving signatures for a DGR scholar's solver and generator.

The image codec is passed in (`zoo.data.images.decode_image_batch` / `encode_png_batch`), so the model
family imports no data code.
"""

import tensorflow as tf


def solver_endpoints(solver, decode_images):
    """Endpoints for `zoo.training.export.export_saved_model` of a solver (images -> class logits).

    - `serving_default`: `images` float32 [batch, S, S, C] in [0, 1];
    - `classify_bytes`: `image_bytes` [batch] JPEG/PNG strings, decoded by `decode_images(bytes, S, S, C)`
      (resized to S×S).
    Both return `probabilities` float32 [batch, classes] and `classes` int32 [batch].
    """
    size, channels = solver.input_shape[1], solver.input_shape[3]

    def classify(images):
        probabilities = tf.nn.softmax(tf.cast(solver(images, training=False), tf.float32))
        return {"probabilities": probabilities, "classes": tf.argmax(probabilities, -1, output_type=tf.int32)}

    def classify_bytes(image_bytes):
        return classify(decode_images(image_bytes, size, size, channels))

    return {
        "serving_default": (classify, [tf.TensorSpec([None, size, size, channels], tf.float32, name="images")]),
        "classify_bytes": (classify_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")]),
    }


def generator_endpoints(scholar, encode_png):
    """Endpoints for the scholar's generator.

    - `serving_default`: `noise` float32 [batch, noise_dim] ~ N(0, 1) (multiplied by the scholar's
      `noise_scale` inside, as in training) -> `images` float32 [batch, S, S, C] in [0, 1];
    - `generate_png`: the same `noise` -> `png_bytes` [batch], made by `encode_png(images)`.
    """
    generator, scale = scholar.generator, scholar.noise_scale

    def generate(noise):
        return tf.cast(generator(noise * scale, training=False), tf.float32)

    def serve(noise):
        return {"images": generate(noise)}

    def serve_png(noise):
        return {"png_bytes": encode_png(generate(noise))}

    spec = [tf.TensorSpec([None, generator.input_shape[-1]], tf.float32, name="noise")]
    return {"serving_default": (serve, spec), "generate_png": (serve_png, spec)}

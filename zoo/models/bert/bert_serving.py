"""Serving signatures for a BERT backbone: numbers in, numbers out (no tokenizer ops in the graph)."""

import tensorflow as tf

SERVING_INPUTS = ("token_ids", "segment_ids", "padding_mask")


def serving_endpoints(backbone):
    """Endpoints for `zoo.training.export.export_saved_model`.

    `serving_default` takes int32 `token_ids`, `segment_ids`, `padding_mask` [batch, seq] (seq up to the
    position table, 512 for the presets) and returns float32 `sequence_output` and `pooled_output`.
    Inputs are checked in the graph (TF ops only, so TF Serving loads it as it is): the three share one
    shape, ids lie in [0, vocabulary) and [0, segments), the mask is 0/1 and the length fits the position
    table; a bad request fails with a message saying what was expected, not a gather or shape error.
    """

    def serve(token_ids, segment_ids, padding_mask):
        token_ids, segment_ids, padding_mask = check_inputs(backbone, token_ids, segment_ids, padding_mask)
        outputs = backbone(
            {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}, training=False)
        return {k: tf.cast(v, tf.float32) for k, v in outputs.items()}

    signature = [tf.TensorSpec([None, None], tf.int32, name=name) for name in SERVING_INPUTS]
    return {"serving_default": (serve, signature)}


def check_inputs(backbone, token_ids, segment_ids, padding_mask):
    """The three inputs, after in-graph assertions with messages a TF Serving client can act on."""
    vocabulary, segments, length = backbone.vocabulary_size, backbone.num_segments, backbone.max_sequence_length
    shape = tf.shape(token_ids)
    checks = [
        tf.debugging.assert_equal(tf.shape(segment_ids), shape, message="segment_ids must have the shape of token_ids"),
        tf.debugging.assert_equal(tf.shape(padding_mask), shape, message="padding_mask must have the shape of token_ids"),
        tf.debugging.assert_positive(shape[0], message="send at least one sequence"),
        tf.debugging.assert_less_equal(shape[1], length, message=f"sequences must be at most {length} tokens long "
                                       "(the position table); truncate them"),
        tf.debugging.assert_non_negative(token_ids, message=f"token_ids must be in [0, {vocabulary})"),
        tf.debugging.assert_less(token_ids, vocabulary, message=f"token_ids must be in [0, {vocabulary})"),
        tf.debugging.assert_non_negative(segment_ids, message=f"segment_ids must be in [0, {segments})"),
        tf.debugging.assert_less(segment_ids, segments, message=f"segment_ids must be in [0, {segments})"),
        tf.debugging.assert_equal(tf.reduce_all((padding_mask == 0) | (padding_mask == 1)), True,
                                  message="padding_mask must hold 0 (padding) or 1 (token)"),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(token_ids), tf.identity(segment_ids), tf.identity(padding_mask)

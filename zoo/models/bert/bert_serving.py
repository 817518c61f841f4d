"""Serving signatures for a BERT backbone: numbers in, numbers out (no tokenizer ops in the graph)."""

import tensorflow as tf

SERVING_INPUTS = ("token_ids", "segment_ids", "padding_mask")


def serving_endpoints(backbone):
    """Endpoints for `zoo.training.export.export_saved_model`.

    `serving_default` takes int32 `token_ids`, `segment_ids`, `padding_mask` [batch, seq] (seq up to the
    position table, 512 for the presets) and returns float32 `sequence_output` and `pooled_output`.
    """

    def serve(token_ids, segment_ids, padding_mask):
        outputs = backbone(
            {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}, training=False)
        return {k: tf.cast(v, tf.float32) for k, v in outputs.items()}

    signature = [tf.TensorSpec([None, None], tf.int32, name=name) for name in SERVING_INPUTS]
    return {"serving_default": (serve, signature)}

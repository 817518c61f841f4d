"""Serving signatures for XLNet: the backbone's content stream and the classifier (numbers in, numbers out;
TensorFlow ops only, so TF Serving or a process importing only `tensorflow` loads the export).

    export_saved_model("/tmp/export/xlnet", backbone, backbone_endpoints(backbone))
    export_saved_model("/tmp/export/xlnet_sst2", classifier, classifier_endpoints(classifier),
                       assets={"spiece.model": spm_path})
"""

import tensorflow as tf

from zoo.models.xlnet.xlnet_classifier import LEFT_PADDED

SERVING_INPUTS = ("token_ids", "segment_ids", "padding_mask")


def _signature():
    return [tf.TensorSpec([None, None], tf.int32, name=name) for name in SERVING_INPUTS]


def check_inputs(vocabulary_size, token_ids, segment_ids, padding_mask):
    """The three inputs after in-graph assertions whose messages a TF Serving client can act on: one shape,
    ids in [0, vocabulary), segment ids >= 0, a 0/1 mask, LEFT padding (the last position real: the classifier
    summarises it as the `<cls>`). (Relative positions: any length is accepted.)"""
    shape = tf.shape(token_ids)
    checks = [
        tf.debugging.assert_equal(tf.shape(segment_ids), shape,
                                  message="segment_ids must have the shape of token_ids"),
        tf.debugging.assert_equal(tf.shape(padding_mask), shape,
                                  message="padding_mask must have the shape of token_ids"),
        tf.debugging.assert_positive(shape[0], message="send at least one sequence"),
        tf.debugging.assert_non_negative(token_ids, message=f"token_ids must be in [0, {vocabulary_size})"),
        tf.debugging.assert_less(token_ids, vocabulary_size, message=f"token_ids must be in [0, {vocabulary_size})"),
        tf.debugging.assert_non_negative(segment_ids, message="segment_ids must be >= 0 (A=0, B=1, CLS=2, PAD=4)"),
        tf.debugging.assert_equal(tf.reduce_all((padding_mask == 0) | (padding_mask == 1)), True,
                                  message="padding_mask must hold 0 (padding) or 1 (token)"),
        tf.debugging.assert_equal(padding_mask[:, -1], 1, message=LEFT_PADDED),
    ]
    with tf.control_dependencies(checks):
        return {"token_ids": tf.identity(token_ids), "segment_ids": tf.identity(segment_ids),
                "padding_mask": tf.identity(padding_mask)}


def backbone_endpoints(backbone):
    """Endpoints for `zoo.training.export.export_saved_model(export_dir, backbone, ...)`.

    `serving_default` takes int32 `token_ids`, `segment_ids`, `padding_mask` (1 = real token) [batch, seq],
    left-padded as in fine-tuning, and returns float32 `sequence_output` [batch, seq, hidden]: the content
    stream (no memory, no dropout).
    """

    def serve(token_ids, segment_ids, padding_mask):
        inputs = check_inputs(backbone.vocabulary_size, token_ids, segment_ids, padding_mask)
        return {"sequence_output": tf.cast(backbone(inputs, training=False), tf.float32)}

    return {"serving_default": (serve, _signature())}


def classifier_endpoints(classifier):
    """Endpoints for `zoo.training.export.export_saved_model(export_dir, classifier, ...)`.

    `serving_default` takes the backbone's three int32 inputs and returns float32 `logits` [batch, classes],
    `probabilities` (softmax) and int32 `predictions` (argmax); a regression model (`num_classes=1`)
    returns float32 `predictions` [batch] only.
    """

    def serve(token_ids, segment_ids, padding_mask):
        inputs = check_inputs(classifier.backbone.vocabulary_size, token_ids, segment_ids, padding_mask)
        logits = tf.cast(classifier(inputs, training=False), tf.float32)
        if classifier.num_classes == 1:
            return {"predictions": logits[:, 0]}
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1),
                "predictions": tf.argmax(logits, axis=-1, output_type=tf.int32)}

    return {"serving_default": (serve, _signature())}


def serving_endpoints(model):
    """`classifier_endpoints` for an `XLNetClassifier`, `backbone_endpoints` for an `XLNetBackbone`."""
    return classifier_endpoints(model) if hasattr(model, "num_classes") else backbone_endpoints(model)


__all__ = ["backbone_endpoints", "check_inputs", "classifier_endpoints", "serving_endpoints"]

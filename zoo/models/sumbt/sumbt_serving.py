"""Serving signature for SUMBT: a dialogue's turn token ids in, per-slot value ids and distances out."""

import tensorflow as tf

from zoo.models.bert.bert_serving import SERVING_INPUTS, check_inputs


def serving_endpoints(model):
    """Endpoints for `zoo.training.export.export_saved_model`.

    `serving_default` takes int32 `token_ids`, `segment_ids`, `padding_mask` [batch, turns, seq] (each turn
    `[CLS] user [SEP] system [SEP]`, turns in dialogue order) and returns `predictions` int32
    [batch, turns, slots] (each slot's value index in the ontology) and `distances` float32
    [batch, turns, slots, max values] (Euclidean distance to each value vector; -1 where the slot has fewer
    values). The belief state of turn t depends on turns 0..t only. Inputs are checked in the graph as
    `zoo.models.bert.bert_serving.check_inputs` does (one shape for the three, ids and mask in range, length
    within the position table), plus at least one turn.

    Example:
        export_saved_model("/tmp/export/sumbt", model, serving_endpoints(model),
                           assets={"ontology.json": "/tmp/run/ontology.json"})
    """
    backbone = model.utterance_backbone

    def serve(token_ids, segment_ids, padding_mask):
        shape = tf.shape(token_ids)
        checks = [
            tf.debugging.assert_equal(tf.shape(segment_ids), shape,
                                      message="segment_ids must have the shape of token_ids [batch, turns, seq]"),
            tf.debugging.assert_equal(tf.shape(padding_mask), shape,
                                      message="padding_mask must have the shape of token_ids [batch, turns, seq]"),
            tf.debugging.assert_positive(shape[1], message="send at least one turn per dialogue"),
        ]
        with tf.control_dependencies(checks):
            flat = [tf.reshape(x, [-1, shape[2]]) for x in (token_ids, segment_ids, padding_mask)]
        flat = check_inputs(backbone, *flat)
        inputs = {name: tf.reshape(x, shape) for name, x in zip(SERVING_INPUTS, flat)}
        outputs = model(inputs, training=False)
        distances = tf.where(model.value_mask, -outputs["logits"], -1.0)
        return {"predictions": outputs["predictions"], "distances": tf.cast(distances, tf.float32)}

    signature = [tf.TensorSpec([None, None, None], tf.int32, name=name) for name in SERVING_INPUTS]
    return {"serving_default": (serve, signature)}

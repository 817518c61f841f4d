"""Serving signatures for a `Translator`: source token ids in, beam-search target ids and scores out.

Only TensorFlow ops are in the graph, so TF Serving (or a process importing only `tensorflow`) loads it as it
is. Text in and out would need the SentencePiece ops of tensorflow-text inside the SavedModel, which a
TensorFlow-only process cannot load; the subword model ships in the export's assets instead, for clients to
tokenize with the `sentencepiece` library (ids: pad 0, unk 1, BOS 2, EOS 3).
"""

import tensorflow as tf


def serving_endpoints(translator, beam_size=4, alpha=0.6, extra_length=50):
    """Endpoints for `zoo.training.export.export_saved_model`.

    `serving_default` takes int32 `source_ids` [batch, length]: subword ids of each source sentence followed
    by EOS (3), right-padded with 0, at most the model's `max_sequence_length` long. It returns `target_ids`
    int32 [batch, longest output] (EOS included, then 0), `lengths` int32 [batch] (tokens including EOS) and
    `scores` float32 [batch] (log-probability / GNMT length penalty), decoded with beam `beam_size` and
    length penalty `alpha`, each output at most source length + `extra_length` tokens. `translate_greedy`
    is the same with greedy decoding (`scores` are then log-probabilities). A bad request fails with a
    message that says what was expected.
    """

    def endpoint(beam):
        def serve(source_ids):
            source_ids = check_source_ids(translator.backbone, source_ids)
            out = translator.translate(source_ids, beam_size=beam, alpha=alpha, extra_length=extra_length)
            longest = tf.maximum(tf.reduce_max(out["lengths"]), 1)
            return {"target_ids": out["ids"][:, :longest], "lengths": out["lengths"],
                    "scores": tf.cast(out["scores"], tf.float32)}

        return serve, [tf.TensorSpec([None, None], tf.int32, name="source_ids")]

    return {"serving_default": endpoint(beam_size), "translate_greedy": endpoint(1)}


def check_source_ids(backbone, source_ids):
    """`source_ids` after in-graph assertions with messages a TF Serving client can act on."""
    vocabulary, length = backbone.vocabulary_size, backbone.max_sequence_length
    shape = tf.shape(source_ids)
    checks = [
        tf.debugging.assert_positive(shape[0], message="send at least one sentence"),
        tf.debugging.assert_positive(shape[1], message="source_ids must hold at least one token (EOS = 3)"),
        tf.debugging.assert_less_equal(shape[1], length, message=f"sources must be at most {length} tokens long "
                                       "(the model's max_sequence_length); split or truncate them"),
        tf.debugging.assert_non_negative(source_ids, message=f"source_ids must be in [0, {vocabulary})"),
        tf.debugging.assert_less(source_ids, vocabulary, message=f"source_ids must be in [0, {vocabulary})"),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(source_ids)

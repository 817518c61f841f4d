"""Serving a Transformer-XL language model with streamed memories (TF Serving layout, TF ops only).

    endpoints = serving_endpoints(lm)
    export_saved_model("/tmp/export/txl", lm.backbone, endpoints, assets={"vocab.txt": vocab_path})

A client keeps the returned `memories` and `memory_length` and sends them back with the next segment, so a
long text is scored segment by segment with the paper's evaluation settings (the LM's eval_mem_len,
eval_clamp_len, eval_same_length). The first request sends zeros with memory_length 0.
"""

import tensorflow as tf


def _checked(backbone, token_ids, memory_length=None, slots=None, memories=None):
    vocabulary = backbone.vocabulary_size
    shape = tf.shape(token_ids)
    checks = [
        tf.debugging.assert_positive(shape[0], message="token_ids must hold at least one row"),
        tf.debugging.assert_non_negative(token_ids, message=f"token_ids must be in [0, {vocabulary})"),
        tf.debugging.assert_less(token_ids, vocabulary, message=f"token_ids must be in [0, {vocabulary})"),
    ]
    if memory_length is not None:
        checks += [
            tf.debugging.assert_equal(tf.shape(memory_length)[0], shape[0],
                                      message="give one memory_length per row of token_ids"),
            tf.debugging.assert_non_negative(memory_length, message=f"memory_length must be in [0, {slots}]"),
            tf.debugging.assert_less_equal(memory_length, slots, message=f"memory_length must be in [0, {slots}]"),
        ]
    if memories is not None:
        checks.append(tf.debugging.assert_equal(tf.shape(memories)[1], shape[0],
                                                message="memories [L,B,M,H] must have as many rows B as token_ids"))
    with tf.control_dependencies(checks):
        return tf.identity(token_ids)


def serving_endpoints(lm):
    """Endpoints for `zoo.training.export.export_saved_model(export_dir, lm.backbone, endpoints, ...)`.

    `serving_default(token_ids [B,T] int32, memories [L,B,M,H] float32, memory_length [B] int32)` with
    M = lm.eval_mem_len -> `log_probs` [B,T,V] (float32, of the next token at every position), `memories`
    [L,B,M,H] and `memory_length` [B] to send with the next segment of the same rows. `log_probs(token_ids)`
    scores token ids from empty memory. Ids outside [0, V) fail with an InvalidArgumentError naming the range.
    """
    backbone = lm.backbone
    layers, slots, hidden = backbone.num_layers, lm.eval_mem_len, backbone.hidden_dim
    settings = dict(mem_len=slots, clamp_len=lm.eval_clamp_len, same_length=lm.eval_same_length, training=False)

    def serve(token_ids, memories, memory_length):
        token_ids = _checked(backbone, token_ids, memory_length, slots, memories)
        states = tf.unstack(memories, num=layers, axis=0) if layers else []
        outputs, new_memories, new_length = backbone.run(token_ids, states, memory_length, **settings)
        return {"log_probs": backbone.adaptive_softmax.log_probs(outputs),
                "memories": tf.stack(new_memories, axis=0), "memory_length": new_length}

    def score(token_ids):
        token_ids = _checked(backbone, token_ids)
        outputs, _, _ = backbone.run(token_ids, **settings)
        return {"log_probs": backbone.adaptive_softmax.log_probs(outputs)}

    ids = tf.TensorSpec([None, None], tf.int32, name="token_ids")
    return {
        "serving_default": (serve, [ids, tf.TensorSpec([layers, None, slots, hidden], tf.float32, name="memories"),
                                    tf.TensorSpec([None], tf.int32, name="memory_length")]),
        "log_probs": (score, [ids]),
    }

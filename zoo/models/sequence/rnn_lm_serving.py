"""Serving and sampling for an `RNNLMBackbone`: next-token log-probabilities and sampled continuations.

    endpoints = serving_endpoints(backbone)
    export_saved_model("/tmp/export/lm", backbone, endpoints, assets={"vocab.txt": vocab_path})
    ids = generate(backbone, np.array([[5, 6, 7]]), np.array([3]), num_tokens=20, temperature=0.8, seed=0)

Only TensorFlow ops are in the graph, so a process that imports only `tensorflow` (TF Serving) loads it; the
vocabulary ships in the export's assets for clients to map ids to text.
"""

import weakref

import numpy as np
import tensorflow as tf


def check_token_ids(backbone, token_ids, lengths, name):
    """`(token_ids, lengths)` after in-graph checks whose messages a TF Serving client can act on: ids in
    [0, V), 1 <= lengths <= T, one length per row."""
    vocabulary = backbone.vocabulary_size
    shape = tf.shape(token_ids)
    checks = [
        tf.debugging.assert_positive(shape[0], message=f"{name} must hold at least one row"),
        tf.debugging.assert_non_negative(token_ids, message=f"{name} must be in [0, {vocabulary})"),
        tf.debugging.assert_less(token_ids, vocabulary, message=f"{name} must be in [0, {vocabulary})"),
        tf.debugging.assert_equal(tf.shape(lengths)[0], shape[0], message="give one length per row"),
        tf.debugging.assert_positive(lengths, message="every length must be at least 1"),
        tf.debugging.assert_less_equal(lengths, shape[1], message=f"lengths must be at most the width of {name}"),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(token_ids), tf.identity(lengths)


def prompt_state(backbone, token_ids, lengths):
    """Runs right-padded prompts; returns `(log_probs [B,T,V], next_log_probs [B,V], state)`, the state after
    each row's last real token and the log-probabilities of the token that follows it."""
    mask = tf.sequence_mask(lengths, tf.shape(token_ids)[1])
    logits, state = backbone.run(token_ids, mask=mask, training=False)
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    next_log_probs = tf.gather(log_probs, lengths - 1, axis=1, batch_dims=1)
    return log_probs, next_log_probs, state


def sample_tokens(backbone, prompt_ids, prompt_lengths, num_tokens, temperature, seed):
    """[B, num_tokens] int32 tokens following each prompt, drawn from softmax(logits / temperature) with
    stateless seeds (`seed`, step), so one seed always gives the same continuation; temperature <= 0 is greedy
    (argmax). Works eagerly and in a graph (`num_tokens` may be a tensor)."""
    prompt_ids = tf.cast(prompt_ids, tf.int32)
    prompt_lengths = tf.cast(prompt_lengths, tf.int32)
    _, next_log_probs, state = prompt_state(backbone, prompt_ids, prompt_lengths)
    temperature = tf.cast(temperature, tf.float32)
    seed = tf.cast(seed, tf.int32)
    num_tokens = tf.cast(num_tokens, tf.int32)
    batch = tf.shape(prompt_ids)[0]

    def draw(log_probs, step):
        greedy = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        scaled = log_probs / tf.maximum(temperature, 1e-6)
        drawn = tf.random.stateless_categorical(scaled, 1, seed=tf.stack([seed, step]), dtype=tf.int32)[:, 0]
        return tf.where(temperature > 0, drawn, greedy)

    def body(step, log_probs, state, tokens):
        token = draw(log_probs, step)
        tokens = tokens.write(step, token)
        logits, state = backbone.run(token[:, None], initial_state=state, training=False)
        log_probs = tf.nn.log_softmax(tf.cast(logits[:, 0], tf.float32), axis=-1)
        return step + 1, log_probs, state, tokens

    tokens = tf.TensorArray(tf.int32, size=num_tokens, element_shape=tf.TensorShape([None]))
    _, _, _, tokens = tf.while_loop(
        lambda step, *_: step < num_tokens, body, (tf.constant(0), next_log_probs, state, tokens),
        shape_invariants=(tf.TensorShape([]), next_log_probs.shape, [s.shape for s in state],
                          tf.TensorShape(None)))
    return tf.reshape(tf.transpose(tokens.stack()), (batch, num_tokens))


def serving_endpoints(backbone):
    """Endpoints for `zoo.training.export.export_saved_model(export_dir, backbone, endpoints, assets=...)`.

    `serving_default(token_ids [B,T] int32, lengths [B] int32)`: right-padded token ids and each row's length
    (>= 1) -> `log_probs` [B,T,V] (log-probabilities of the next token at every position; rows past their
    length hold padding's) and `next_log_probs` [B,V] (those after each row's last real token).
    `sample(prompt_ids [B,T] int32, prompt_lengths [B] int32, num_tokens int32, temperature float32,
    seed int32)` -> `token_ids` [B, num_tokens]: a continuation of each prompt (temperature <= 0: greedy).
    Ids outside [0, V) fail with an InvalidArgumentError naming the range.
    """

    def serve(token_ids, lengths):
        token_ids, lengths = check_token_ids(backbone, token_ids, lengths, "token_ids")
        log_probs, next_log_probs, _ = prompt_state(backbone, token_ids, lengths)
        return {"log_probs": log_probs, "next_log_probs": next_log_probs}

    def sample(prompt_ids, prompt_lengths, num_tokens, temperature, seed):
        prompt_ids, prompt_lengths = check_token_ids(backbone, prompt_ids, prompt_lengths, "prompt_ids")
        checked = tf.debugging.assert_non_negative(num_tokens, message="num_tokens must be >= 0")
        with tf.control_dependencies([checked]):
            num_tokens = tf.identity(num_tokens)
        return {"token_ids": sample_tokens(backbone, prompt_ids, prompt_lengths, num_tokens, temperature, seed)}

    ids = lambda name: tf.TensorSpec([None, None], tf.int32, name=name)  # noqa: E731
    lengths = lambda name: tf.TensorSpec([None], tf.int32, name=name)  # noqa: E731
    return {
        "serving_default": (serve, [ids("token_ids"), lengths("lengths")]),
        "sample": (sample, [ids("prompt_ids"), lengths("prompt_lengths"), tf.TensorSpec([], tf.int32, "num_tokens"),
                            tf.TensorSpec([], tf.float32, "temperature"), tf.TensorSpec([], tf.int32, "seed")]),
    }


_SAMPLERS = weakref.WeakKeyDictionary()  # backbone -> its traced sampler, so repeated calls do not retrace


def generate(backbone, prompt_ids, prompt_lengths, num_tokens=100, temperature=0.8, seed=0):
    """Samples `num_tokens` tokens after each right-padded prompt (as the `sample` endpoint); numpy int32
    [B, num_tokens]. `prompt_lengths` None: every row is full length."""
    prompt_ids = np.asarray(prompt_ids, np.int32)
    if prompt_ids.ndim == 1:
        prompt_ids = prompt_ids[None]
    if prompt_lengths is None:
        prompt_lengths = np.full(prompt_ids.shape[0], prompt_ids.shape[1], np.int32)
    if backbone not in _SAMPLERS:
        def sampler(ids, lengths, n, t, s):
            ids, lengths = check_token_ids(backbone, ids, lengths, "prompt_ids")
            return sample_tokens(backbone, ids, lengths, n, t, s)

        _SAMPLERS[backbone] = tf.function(sampler, reduce_retracing=True)
    out = _SAMPLERS[backbone](tf.constant(prompt_ids), tf.constant(np.asarray(prompt_lengths, np.int32)),
                              tf.constant(int(num_tokens), tf.int32), tf.constant(float(temperature), tf.float32),
                              tf.constant(int(seed), tf.int32))
    return out.numpy()

"""Hidden Markov model algorithms on per-step emission log-likelihoods, in `keras.ops` (log space).

Every function takes `log_initial` [K] (log p(z_0)), `log_transition` [K, K] (row i: log p(z_t | z_{t-1} = i))
and `emission_log_probs` [B, T, K] (log p(x_t | z_t = k)). A mask [B, T] is bool with TFP's convention:
True = the step is ignored (padded, or the observation is missing). `masked_emissions` zeroes the masked
steps' emission terms, so they only move the chain: the log-likelihood and the posteriors of the unmasked
steps of a right-padded row equal those of the unpadded sequence (as `tfd.HiddenMarkovModel(mask=...)`).
Trailing masked steps (after a row's last unmasked one) are padding: Viterbi gives them -1 and EM counts
no transitions into them. Written for `jit`/XLA: fixed shapes, `ops.scan` over time.

    import numpy as np
    from zoo.layers import hmm_ops
    lp = np.log([[[0.5, 0.1], [0.5, 0.1], [0.1, 0.6]]])            # [B=1, T=3, K=2]
    log_init, log_trans = np.log([0.6, 0.4]), np.log([[0.9, 0.1], [0.2, 0.8]])
    ll = hmm_ops.forward(log_init, log_trans, lp)[1]              # [1]
    path, score = hmm_ops.viterbi(log_init, log_trans, lp)       # [[0, 0, 0]]: staying is likelier
"""

import functools

import keras
import numpy as np
from keras import ops
from keras.backend import standardize_dtype


def masked_emissions(emission_log_probs, mask=None):
    """`emission_log_probs` with the masked steps' terms set to 0 (the observation is ignored there)."""
    if mask is None:
        return emission_log_probs
    return ops.where(ops.expand_dims(mask, -1), ops.zeros_like(emission_log_probs), emission_log_probs)


def lengths_from_mask(mask, num_steps):
    """[B] int32: one past each row's last unmasked step (0 for a fully masked row); `num_steps` without a mask."""
    if mask is None:
        return None
    index = ops.arange(1, num_steps + 1, dtype="int32")
    return ops.max(ops.where(mask, ops.zeros_like(index), index), axis=1)


def _log_matmul(log_a, matrix):
    """log(exp(log_a) @ matrix) for log_a [B, K] and a probability matrix [K, K], stable by the row maximum.
    One matmul instead of a [B, K, K] logsumexp: the forward pass's inner step."""
    top = ops.max(log_a, axis=-1, keepdims=True)
    top = ops.where(ops.isfinite(top), top, ops.zeros_like(top))
    return ops.log(ops.matmul(ops.exp(log_a - top), matrix)) + top


def _time_major(x):
    return ops.moveaxis(x, 1, 0)


def _scan(step, init, xs, reverse=False, keep=True):
    """Runs `carry = step(carry, x)` over the leading axis of `xs` (a tensor or tuple); returns (last carry,
    every carry stacked in `xs` order, or None when not `keep`). `tf.scan`/`tf.foldl` on TensorFlow (Keras'
    TF `scan` passes its carry through a TensorArray every step), `keras.ops.scan` elsewhere."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if keep:
            stacked = tf.scan(step, xs, initializer=init, reverse=reverse)
            last = tf.nest.map_structure(lambda s: s[0] if reverse else s[-1], stacked)
            return last, stacked
        fold = tf.foldr if reverse else tf.foldl
        return fold(step, xs, initializer=init), None

    def body(carry, x):
        new = step(carry, x)
        return new, (new if keep else None)

    return ops.scan(body, init, xs, reverse=reverse)


def _first_step_flags(lp):
    """[T] bool, True at t = 0 (scans run over every step, so one-step sequences need no special case)."""
    return ops.arange(ops.shape(lp)[1]) == 0


def forward(log_initial, log_transition, emission_log_probs):
    """The forward algorithm. Returns (log_alpha [B, T, K] = log p(x_0..t, z_t), log_likelihood [B]).
    Mask first with `masked_emissions`."""
    lp = emission_log_probs
    transition = ops.exp(log_transition)
    start = ops.expand_dims(log_initial, 0) + ops.zeros_like(lp[:, 0])

    def step(alpha, inputs):
        e, first = inputs
        return ops.where(first, start, _log_matmul(alpha, transition)) + e

    last, log_alpha = _scan(step, start, (_time_major(lp), _first_step_flags(lp)))
    return _time_major(log_alpha), ops.logsumexp(last, axis=-1)


def log_likelihood(log_initial, log_transition, emission_log_probs):
    """[B] log p(x_0..T-1) by the forward algorithm, carrying only the last step (for training).

    Scaled form (Rabiner): the carry is p(z_t | x_0..t) and the log-normaliser; the emission terms are
    exponentiated once for all steps outside the loop, so a step is one matmul, a product and a sum."""
    lp = emission_log_probs
    transition = ops.exp(log_transition)
    top = ops.max(lp, axis=-1, keepdims=True)  # [B, T, 1]
    top = ops.where(ops.isfinite(top), top, ops.zeros_like(top))
    scaled = ops.exp(lp - top)  # each step's emissions, largest 1
    tiny = ops.convert_to_tensor(np.finfo(standardize_dtype(lp.dtype)).tiny, lp.dtype)
    first = ops.expand_dims(ops.exp(log_initial), 0) * scaled[:, 0]
    norm0 = ops.maximum(ops.sum(first, axis=-1), tiny)

    def step(carry, e):
        p, log_norm = carry
        q = ops.matmul(p, transition) * e
        norm = ops.maximum(ops.sum(q, axis=-1), tiny)
        return q / ops.expand_dims(norm, -1), log_norm + ops.log(norm)

    (_, log_norm), _ = _scan(step, (first / ops.expand_dims(norm0, -1), ops.log(norm0)),
                             _time_major(scaled[:, 1:]), keep=False)
    return log_norm + ops.sum(top[..., 0], axis=1)


def backward(log_transition, emission_log_probs):
    """The backward algorithm: log_beta [B, T, K] = log p(x_t+1..T-1 | z_t). Mask first."""
    lp = emission_log_probs
    transition_t = ops.transpose(ops.exp(log_transition))
    following = ops.concatenate([lp[:, 1:], ops.zeros_like(lp[:, :1])], axis=1)  # e_{t+1}, 0 at the end
    is_last = ops.flip(_first_step_flags(lp), 0)
    zero = ops.zeros_like(lp[:, 0])

    def step(beta, inputs):
        e, last = inputs
        return ops.where(last, zero, _log_matmul(beta + e, transition_t))

    _, log_beta = _scan(step, zero, (_time_major(following), is_last), reverse=True)
    return _time_major(log_beta)


def posterior_marginals(log_initial, log_transition, emission_log_probs):
    """Forward-backward: (p(z_t | x) [B, T, K], log_likelihood [B]). Mask first."""
    log_alpha, ll = forward(log_initial, log_transition, emission_log_probs)
    log_beta = backward(log_transition, emission_log_probs)
    return ops.softmax(log_alpha + log_beta, axis=-1), ll


def viterbi(log_initial, log_transition, emission_log_probs, lengths=None):
    """Most probable state path: (paths [B, T] int32, log p(path, x) [B]). Mask first (masked steps inside a
    row are decoded from the chain alone); steps at or after `lengths` [B] (see `lengths_from_mask`) are
    padding: the path there is -1 and they add nothing to the score, so a padded row decodes as its prefix."""
    lp = emission_log_probs
    num_states = ops.shape(lp)[-1]
    num_steps = ops.shape(lp)[1]
    states = ops.arange(num_states, dtype="int32")
    steps = ops.arange(num_steps, dtype="int32")
    if lengths is None:
        active = ops.ones((num_steps, ops.shape(lp)[0]), dtype="bool")
    else:
        active = ops.expand_dims(steps, 1) < ops.expand_dims(lengths, 0)
    start = ops.expand_dims(log_initial, 0) + ops.zeros_like(lp[:, 0])
    transition = ops.expand_dims(log_transition, 0)
    identity = ops.expand_dims(states, 0) + ops.zeros_like(ops.cast(start, "int32"))

    def step(carry, inputs):
        delta, _ = carry
        e, on, first = inputs
        scores = ops.expand_dims(delta, -1) + transition  # [B, from, to]
        best = ops.max(scores, axis=1) + e
        back = ops.cast(ops.argmax(scores, axis=1), "int32")
        on = ops.logical_and(ops.expand_dims(on, -1), ops.logical_not(first))
        return ops.where(first, start + e, ops.where(on, best, delta)), ops.where(on, back, identity)

    (delta, _), (_, backs) = _scan(step, (start, identity), (_time_major(lp), active, steps == 0))
    last = ops.cast(ops.argmax(delta, axis=-1), "int32")
    # backs[t] points from step t to t - 1; shifted, pointers[t] leads from t + 1 to t (identity at the end)
    pointers = ops.concatenate([backs[1:], ops.expand_dims(identity, 0)], axis=0)

    def trace(state, back):
        return ops.squeeze(ops.take_along_axis(back, ops.expand_dims(state, -1), axis=-1), -1)

    _, paths = _scan(trace, last, pointers, reverse=True)
    paths = ops.where(active, paths, -ops.ones_like(paths))
    score = ops.max(delta, axis=-1)
    if lengths is not None:  # a fully padded row has the empty path, probability 1 (its log-likelihood is 0 too)
        score = ops.where(lengths > 0, score, ops.zeros_like(score))
    return ops.transpose(paths), score


def em_statistics(log_initial, log_transition, emission_log_probs, mask=None):
    """The E-step of Baum-Welch on a batch. Returns a dict:
    `log_likelihood` [B]; `posteriors` [B, T, K] (p(z_t | x), zero at masked steps: the emission weights);
    `initial_counts` [K] (Σ_b p(z_0)); `transition_counts` [K, K] (expected transitions i -> j, over the
    steps before each row's length)."""
    lp = masked_emissions(emission_log_probs, mask)
    num_steps = ops.shape(lp)[1]
    log_alpha, ll = forward(log_initial, log_transition, lp)
    log_beta = backward(log_transition, lp)
    gamma = ops.softmax(log_alpha + log_beta, axis=-1)
    dtype = gamma.dtype
    if mask is None:
        observed = ops.ones(ops.shape(lp)[:2], dtype=dtype)
        moves = ops.ones_like(observed[:, 1:])
        started = ops.ones_like(observed[:, 0])
    else:
        observed = ops.cast(ops.logical_not(mask), dtype)
        lengths = lengths_from_mask(mask, num_steps)
        moves = ops.cast(ops.expand_dims(ops.arange(1, num_steps, dtype="int32"), 0) < ops.expand_dims(lengths, 1),
                         dtype)
        started = ops.cast(lengths > 0, dtype)
    # log xi[b, t, i, j] = alpha_{t-1}(i) + log A_ij + e_t(j) + beta_t(j) - ll
    log_xi = (ops.expand_dims(log_alpha[:, :-1], -1) + log_transition
              + ops.expand_dims(lp[:, 1:] + log_beta[:, 1:], 2)
              - ops.reshape(ll, (-1, 1, 1, 1)))
    xi = ops.exp(log_xi) * ops.reshape(moves, (ops.shape(moves)[0], -1, 1, 1))
    return {
        "log_likelihood": ll,
        "posteriors": gamma * ops.expand_dims(observed, -1),
        "initial_counts": ops.sum(gamma[:, 0] * ops.expand_dims(started, -1), axis=0),
        "transition_counts": ops.sum(xi, axis=(0, 1)),
    }


def sample_chain(initial, transition, uniforms):
    """States [B, T] int32 drawn by inverse CDF from `uniforms` [B, T] in [0, 1), for probability vectors
    `initial` [K] and `transition` [K, K] (deterministic given the uniforms)."""
    u = ops.cast(uniforms, initial.dtype)
    num_states = ops.shape(transition)[-1]
    first_cdf = ops.expand_dims(ops.cumsum(initial), 0) + ops.zeros_like(u[:, :1])
    cdf_rows = ops.cumsum(transition, axis=-1)

    def step(state, inputs):
        u_t, first = inputs
        cdf = ops.where(first, first_cdf, ops.take(cdf_rows, state, axis=0))
        count = ops.sum(ops.cast(cdf <= ops.expand_dims(u_t, -1), "int32"), axis=-1)
        return ops.minimum(count, num_states - 1)

    _, states = _scan(step, ops.zeros_like(ops.cast(u[:, 0], "int32")), (_time_major(u), _first_step_flags(u)))
    return _time_major(states)


def backend_function(fn):
    """`fn`, run as a `tf.function` when called eagerly on TensorFlow (a traced `tf.scan` instead of a Python
    loop per step); called while tracing (inside `fit`, a `tf.function` or XLA), it is inlined as plain code, so
    XLA sees the caller's static shapes. Other backends: `fn` itself."""
    if keras.backend.backend() != "tensorflow":
        return fn
    import tensorflow as tf

    compiled = tf.function(fn, reduce_retracing=True)

    @functools.wraps(fn)
    def run(*args, **kwargs):
        return compiled(*args, **kwargs) if tf.executing_eagerly() else fn(*args, **kwargs)

    return run


# Eager calls run compiled (a traced `tf.scan` instead of a Python loop); inside a traced function they inline.
forward = backend_function(forward)
log_likelihood = backend_function(log_likelihood)
backward = backend_function(backward)
posterior_marginals = backend_function(posterior_marginals)
viterbi = backend_function(viterbi)
em_statistics = backend_function(em_statistics)
sample_chain = backend_function(sample_chain)

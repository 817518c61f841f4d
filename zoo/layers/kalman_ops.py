"""Kalman filtering in `keras.ops`: predict and update (Joseph form, symmetrised), the filter scan, the
Rauch-Tung-Striebel smoother, k-step forecasts and sampling of a linear-Gaussian state-space model

    z_0 ~ N(initial_mean, initial_covariance)
    z_{t+1} = transition @ z_t + control @ u_t + transition_offset + N(0, transition_noise)
    x_t     = observation @ z_t + observation_offset + N(0, observation_noise)

with TFP's conventions (`tfd.LinearGaussianStateSpaceModel`): the first observation is of the initial state,
`mask` [B, T] is True where a step is missing (that step only predicts and adds 0 to the log-likelihood),
`filtered_*[t]` is the state given x_0..x_t and `predicted_*[t]` the next one, z_{t+1}, given the same.
`u_t` (controls [B, T, C]) drives the transition from step t to t+1, as in `x_{k+1} = A x_k + B u_k`.

    import numpy as np
    from zoo.layers import kalman_ops as ko
    p = ko.Params(transition=np.eye(1), observation=np.eye(1), transition_noise=np.eye(1),
                  observation_noise=np.eye(1), initial_mean=np.zeros(1), initial_covariance=np.eye(1))
    ko.filter_sequence(p, np.zeros((2, 5, 1)))["log_likelihoods"].shape     # (2, 5)

Parameters are shared by the batch. Without a mask the covariance recursion does not depend on the data, so
it runs once on [S, S] matrices for the whole batch (as TFP does); with a mask each row has its own [B, S, S].
For speed (above all under XLA) `log_likelihood` and `forecast` loop with `fold`, which stacks nothing, and
small matrix products are elementwise (`matmul`).
"""

import collections
import math

import keras
from keras import ops, random

Params = collections.namedtuple(
    "Params", ["transition", "observation", "transition_noise", "observation_noise", "initial_mean",
               "initial_covariance", "transition_offset", "observation_offset", "control"],
    defaults=(None, None, None))
Params.__doc__ = ("The model's matrices as tensors: transition [S, S], observation [O, S], the noise covariances "
                  "[S, S] and [O, O], the prior [S] and [S, S]; optional offsets [S], [O] and control [S, C].")

FILTER_FIELDS = ("log_likelihoods", "filtered_means", "filtered_covs", "predicted_means", "predicted_covs",
                 "observation_means", "observation_covs")


def cholesky(a):
    """Lower Cholesky factor. On TensorFlow `tf.linalg.cholesky` itself: Keras' wrapper adds a numerics check
    that XLA cannot compile inside a differentiated loop."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.linalg.cholesky(a)
    return ops.cholesky(a)


def scan(step, init, xs, reverse=False):
    """`ops.scan` for steps whose output is their new carry: returns (last carry, stacked carries). On
    TensorFlow `tf.scan`, whose loop has a fixed trip count, so XLA can compile its gradient (Keras' TF scan
    leaves `maximum_iterations` unset)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        stacked = tf.scan(lambda carry, x: step(carry, x)[0], xs, initializer=init, reverse=reverse)
        last = tf.nest.map_structure(lambda v: v[0] if reverse else v[-1], stacked)
        return last, stacked
    return ops.scan(step, init, xs, reverse=reverse)


def fold(step, init, xs):
    """`carry = step(carry, x_t)` over the leading (time) axis of the nest `xs`; returns the last carry only.
    On TensorFlow a `tf.while_loop` with a fixed trip count that reads x_t by index and carries nothing but
    `init`'s tensors, as TFP's `log_prob` does: under XLA its gradient costs what TFP's does, where `tf.scan`
    (which also stacks every carry) took 2-3x TFP's time at T 1000 and 8x as long for 4x the steps."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        steps = tf.shape(tf.nest.flatten(xs)[0])[0]

        def body(i, carry):
            return i + 1, step(carry, tf.nest.map_structure(lambda v: tf.gather(v, i), xs))

        return tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0), init), maximum_iterations=steps)[1]
    steps = ops.shape(keras.tree.flatten(xs)[0])[0]
    return ops.fori_loop(0, steps, lambda i, carry: step(carry, keras.tree.map_structure(lambda v: v[i], xs)),
                         init)


def symmetrize(m):
    """(M + Mᵀ) / 2 over the last two axes."""
    return 0.5 * (m + ops.swapaxes(m, -1, -2))


SMALL = 16  # `matmul` multiplies elementwise when the summed axis is at most this long


def matmul(a, b):
    """a [..., N, K] @ b [..., K, M] (broadcast batch axes). When K <= `SMALL`, the broadcast product summed
    over K: XLA fuses it with its neighbours, where each small dot is a kernel call of its own; at state 4,
    observation 2 this made the XLA loss + gradient 3-5x faster (the plain graph about as fast)."""
    if a.shape[-1] is None or a.shape[-1] > SMALL:
        return ops.matmul(a, b)
    return ops.sum(ops.multiply(ops.expand_dims(a, -1), ops.expand_dims(b, -3)), axis=-2)


def _vecmat(x, a):
    """x [B, N] @ a [N, M] (or a [B, N, M]) -> [B, M]."""
    if len(a.shape) == 2:
        return matmul(x, a)
    if x.shape[-1] is None or x.shape[-1] > SMALL:
        return ops.squeeze(ops.matmul(ops.expand_dims(x, -2), a), -2)
    return ops.sum(ops.multiply(ops.expand_dims(x, -1), a), axis=-2)


def predict(params, mean, cov, control_input=None):
    """One transition: (mean [B, S], cov [S, S] or [B, S, S]) at t -> the same at t+1."""
    f = params.transition
    mean = matmul(mean, ops.transpose(f))
    if params.transition_offset is not None:
        mean = mean + params.transition_offset
    if control_input is not None and params.control is not None:
        mean = mean + matmul(control_input, ops.transpose(params.control))
    cov = symmetrize(matmul(matmul(f, cov), ops.transpose(f)) + params.transition_noise)
    return mean, cov


def observe(params, mean, cov):
    """The observation's predicted mean [B, O] and covariance [..., O, O] for a state distribution."""
    h = params.observation
    obs_mean = matmul(mean, ops.transpose(h))
    if params.observation_offset is not None:
        obs_mean = obs_mean + params.observation_offset
    obs_cov = symmetrize(matmul(matmul(h, cov), ops.transpose(h)) + params.observation_noise)
    return obs_mean, obs_cov


def update(params, mean, cov, x):
    """Conditions N(mean, cov) on the observation x [B, O] (Joseph form). Returns the filtered mean and
    covariance, the log-likelihood of x [B], and the observation's predicted mean and covariance."""
    h, r = params.observation, params.observation_noise
    obs_mean, obs_cov = observe(params, mean, cov)
    chol = cholesky(obs_cov)
    hp = matmul(h, cov)  # [..., O, S]
    gain_t = ops.solve_triangular(ops.swapaxes(chol, -1, -2),
                                  ops.solve_triangular(chol, hp, lower=True), lower=False)  # Kᵀ [..., O, S]
    residual = x - obs_mean
    new_mean = mean + _vecmat(residual, gain_t)
    gain = ops.swapaxes(gain_t, -1, -2)
    eye = ops.eye(cov.shape[-1], dtype=cov.dtype)
    a = eye - matmul(gain, h)
    new_cov = symmetrize(matmul(matmul(a, cov), ops.swapaxes(a, -1, -2)) +
                         matmul(matmul(gain, r), gain_t))
    if len(chol.shape) == 2:
        white = ops.transpose(ops.solve_triangular(chol, ops.transpose(residual), lower=True))
    else:
        white = ops.squeeze(ops.solve_triangular(chol, ops.expand_dims(residual, -1), lower=True), -1)
    log_det = 2.0 * ops.sum(ops.log(ops.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    dim = x.shape[-1]
    ll = -0.5 * (ops.sum(ops.square(white), axis=-1) + log_det + dim * math.log(2 * math.pi))
    return new_mean, new_cov, ll, obs_mean, obs_cov


def _time_major(x):
    return None if x is None else ops.moveaxis(x, 1, 0)


def _batch_major(x):
    return ops.moveaxis(x, 0, 1)


def _prepare(params, observations, mask, controls):
    """Time-major inputs, missing values zeroed (so NaN placeholders give no NaN gradients), the prior."""
    observations = ops.convert_to_tensor(observations)
    dtype = observations.dtype
    batch = ops.shape(observations)[0]
    if mask is not None:
        mask = ops.cast(ops.convert_to_tensor(mask), "bool")
        observations = ops.where(mask[..., None], ops.zeros_like(observations), observations)
    mean0 = ops.broadcast_to(ops.cast(params.initial_mean, dtype), (batch, params.initial_mean.shape[-1]))
    cov0 = params.initial_covariance
    if mask is not None:
        size = cov0.shape[-1]
        cov0 = ops.broadcast_to(cov0, (batch, size, size))
    xs = {"x": _time_major(observations)}
    if mask is not None:
        xs["observed"] = _time_major(ops.logical_not(mask))
    if controls is not None:
        xs["u"] = _time_major(ops.cast(ops.convert_to_tensor(controls), dtype))
    return xs, mean0, cov0


def _filter_step(params, mean, cov, inputs):
    """One filter step from the predicted (mean, cov) of step t: returns the filtered mean and covariance, the
    log-likelihood of x_t [B] (0 where masked), the observation's mean and covariance and the next prediction."""
    f_mean, f_cov, ll, o_mean, o_cov = update(params, mean, cov, inputs["x"])
    if "observed" in inputs:
        seen = inputs["observed"]
        f_mean = ops.where(seen[:, None], f_mean, mean)
        f_cov = ops.where(seen[:, None, None], f_cov, cov)
        ll = ops.where(seen, ll, ops.zeros_like(ll))
    n_mean, n_cov = predict(params, f_mean, f_cov, inputs.get("u"))
    return f_mean, f_cov, ll, o_mean, o_cov, n_mean, n_cov


def _filter_scan(params, observations, mask=None, controls=None, full=True):
    """The forward pass, every step's outputs stacked time-major."""
    xs, mean0, cov0 = _prepare(params, observations, mask, controls)
    batch = ops.shape(mean0)[0]
    zero_ll = ops.zeros((batch,), dtype=mean0.dtype)

    def step(carry, inputs):
        f_mean, f_cov, ll, o_mean, o_cov, n_mean, n_cov = _filter_step(
            params, carry["next_mean"], carry["next_cov"], inputs)
        out = {"next_mean": n_mean, "next_cov": n_cov, "log_likelihoods": ll}
        if full:
            out.update(filtered_means=f_mean, filtered_covs=f_cov, predicted_means=n_mean, predicted_covs=n_cov,
                       observation_means=o_mean, observation_covs=o_cov)
        return out, out

    init = {"next_mean": mean0, "next_cov": cov0, "log_likelihoods": zero_ll}
    if full:
        o_mean, o_cov = observe(params, mean0, cov0)
        init.update(filtered_means=mean0, filtered_covs=cov0, predicted_means=mean0, predicted_covs=cov0,
                    observation_means=o_mean, observation_covs=o_cov)
    return scan(step, init, xs)[1]


def _filter_fold(params, observations, mask=None, controls=None):
    """The forward pass keeping only (the summed log-likelihood [B], the predicted mean and covariance of the
    step after the data): nothing per step is stacked (see `fold`)."""
    xs, mean0, cov0 = _prepare(params, observations, mask, controls)

    def step(carry, inputs):
        mean, cov, total = carry
        ll, _, _, n_mean, n_cov = _filter_step(params, mean, cov, inputs)[2:]
        return n_mean, n_cov, total + ll

    mean, cov, total = fold(step, (mean0, cov0, ops.zeros((ops.shape(mean0)[0],), dtype=mean0.dtype)), xs)
    return total, (mean, cov)


def log_likelihood(params, observations, mask=None, controls=None, per_step=False):
    """Log-likelihood of observations [B, T, O]: [B], or [B, T] with `per_step` (0 at masked steps)."""
    if per_step:
        return _batch_major(_filter_scan(params, observations, mask, controls, full=False)["log_likelihoods"])
    return _filter_fold(params, observations, mask, controls)[0]


def filter_sequence(params, observations, mask=None, controls=None):
    """The forward filter: a dict with TFP's `FilterResults` fields (`FILTER_FIELDS`), batch-major:
    log_likelihoods [B, T], *_means [B, T, S or O], *_covs [B, T, S or O, S or O]. As in TFP,
    predicted_*[t] is z_{t+1} given x_0..x_t, observation_*[t] is x_t given x_0..x_{t-1}."""
    stacked = _filter_scan(params, observations, mask, controls, full=True)
    batch = ops.shape(observations)[0]
    out = {}
    for name in FILTER_FIELDS:
        value = stacked[name]
        if name.endswith("_covs") and len(value.shape) == 3:  # shared by the batch: [T, S, S]
            out[name] = ops.broadcast_to(value[None], (batch,) + tuple(ops.shape(value)))
        else:
            out[name] = _batch_major(value)
    return out


def smooth(params, filtered):
    """The Rauch-Tung-Striebel backward pass over `filter_sequence`'s output: (smoothed means [B, T, S],
    smoothed covariances [B, T, S, S]). The covariance uses the Joseph-like form
    P_s = (I - J F) P_f (I - J F)ᵀ + J (Q + P_s') Jᵀ, equal to the textbook P_f + J (P_s' - P_p) Jᵀ but a sum
    of congruences of positive semi-definite matrices, with no difference of two large covariances: in float32
    with a diffuse prior the textbook form gave negative variances. Any T >= 1 (T = 1: the filtered moments)."""
    f = params.transition
    f_means, f_covs = _time_major(filtered["filtered_means"]), _time_major(filtered["filtered_covs"])
    p_means, p_covs = _time_major(filtered["predicted_means"]), _time_major(filtered["predicted_covs"])
    eye = ops.eye(f.shape[-1], dtype=f_covs.dtype)
    # Nothing is observed after T-1, so the state at T given all the data is the last prediction: starting
    # there, the scan covers every step (no empty scan when T = 1) and the step at T-1 gives back its filtered
    # moments, which replace it exactly below.
    init = {"mean": p_means[-1], "cov": p_covs[-1]}

    def step(carry, inputs):
        f_mean, f_cov, p_mean, p_cov = inputs
        chol = cholesky(p_cov)
        fp = matmul(f, f_cov)  # F P_f, [B, S, S]
        gain_t = ops.solve_triangular(ops.swapaxes(chol, -1, -2),
                                      ops.solve_triangular(chol, fp, lower=True), lower=False)  # Jᵀ
        mean = f_mean + _vecmat(carry["mean"] - p_mean, gain_t)
        gain = ops.swapaxes(gain_t, -1, -2)
        a = eye - matmul(gain, f)
        cov = symmetrize(matmul(matmul(a, f_cov), ops.swapaxes(a, -1, -2)) +
                         matmul(matmul(gain, carry["cov"] + params.transition_noise), gain_t))
        out = {"mean": mean, "cov": cov}
        return out, out

    _, stacked = scan(step, init, (f_means, f_covs, p_means, p_covs), reverse=True)
    means = ops.concatenate([stacked["mean"][:-1], f_means[-1:]], axis=0)
    covs = ops.concatenate([stacked["cov"][:-1], f_covs[-1:]], axis=0)
    return _batch_major(means), _batch_major(covs)


def forecast(params, observations, steps, mask=None, controls=None, future_controls=None):
    """The `steps` steps after the data: a dict of state_means [B, k, S], state_covs [B, k, S, S],
    observation_means [B, k, O], observation_covs [B, k, O, O]. The first uses `controls[:, -1]`; step j > 0
    uses `future_controls[:, j - 1]` (future_controls [B, k, C]: the control at times T..T+k-1; the last is
    not used by these k steps), so this equals the filter over the sequence extended by k masked steps."""
    _, (mean, cov) = _filter_fold(params, observations, mask, controls)
    batch = ops.shape(observations)[0]
    if len(cov.shape) == 2:
        size = cov.shape[-1]
        cov = ops.broadcast_to(cov, (batch, size, size))
    means, covs = [mean], [cov]
    for j in range(1, steps):
        u = None if future_controls is None else ops.cast(future_controls[:, j - 1], mean.dtype)
        mean, cov = predict(params, mean, cov, u)
        means.append(mean)
        covs.append(cov)
    means, covs = ops.stack(means, axis=1), ops.stack(covs, axis=1)
    obs_means, obs_covs = observe(params, means, covs)
    return {"state_means": means, "state_covs": covs, "observation_means": obs_means,
            "observation_covs": obs_covs}


def sample(params, num_timesteps, batch_size=1, seed=None, controls=None, dtype="float32"):
    """Draws (states [B, T, S], observations [B, T, O]) from the model; `seed` an int or a
    `keras.random.SeedGenerator` (the same int gives the same draw)."""
    if isinstance(seed, int):
        seed = random.SeedGenerator(seed)
    size, dim = params.transition.shape[-1], params.observation.shape[0]
    state_noise = random.normal((num_timesteps, batch_size, size), dtype=dtype, seed=seed)
    obs_noise = random.normal((num_timesteps, batch_size, dim), dtype=dtype, seed=seed)
    init_noise = random.normal((batch_size, size), dtype=dtype, seed=seed)
    q_chol = cholesky(params.transition_noise)
    r_chol = cholesky(params.observation_noise)
    z0 = params.initial_mean + matmul(init_noise, ops.transpose(cholesky(params.initial_covariance)))
    xs = {"state_noise": state_noise, "obs_noise": obs_noise}
    if controls is not None:
        xs["u"] = _time_major(ops.cast(ops.convert_to_tensor(controls), dtype))

    def step(carry, inputs):
        z = carry["z"]
        x = matmul(z, ops.transpose(params.observation)) + matmul(inputs["obs_noise"],
                                                                          ops.transpose(r_chol))
        if params.observation_offset is not None:
            x = x + params.observation_offset
        nxt, _ = predict(params, z, params.transition_noise, inputs.get("u"))
        nxt = nxt + matmul(inputs["state_noise"], ops.transpose(q_chol))
        out = {"z": nxt, "state": z, "x": x}
        return out, out

    init = {"z": z0, "state": z0, "x": ops.zeros((batch_size, dim), dtype=dtype)}
    _, stacked = scan(step, init, xs)
    return _batch_major(stacked["state"]), _batch_major(stacked["x"])

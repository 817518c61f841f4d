"""LinearGaussianStateSpace: parity with TFP's LinearGaussianStateSpaceModel (float64, 1e-8), controls against a
NumPy filter, mask semantics, forecasts, sampling, long sequences, XLA, a maximum-likelihood fit, bad inputs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.errors import ZooError
from zoo.layers.kalman import LinearGaussianStateSpace

S, O, T, B = 3, 2, 20, 4


def random_model(rng, offsets=True, control_dim=0, dtype="float64", covariance="cholesky"):
    kf = LinearGaussianStateSpace(S, O, control_dim=control_dim, offsets=offsets, dtype=dtype,
                                  covariance=covariance)
    a, b = rng.normal(size=(S, S)), rng.normal(size=(O, O))
    values = dict(transition=rng.normal(size=(S, S)) * 0.5, observation=rng.normal(size=(O, S)),
                  transition_noise=a @ a.T + 0.1 * np.eye(S), observation_noise=b @ b.T + 0.1 * np.eye(O),
                  initial_mean=rng.normal(size=S), initial_covariance=np.diag([2.0, 1.0, 0.5]))
    if covariance == "log_diagonal":
        values["transition_noise"] = np.diag(np.diag(values["transition_noise"]))
        values["observation_noise"] = np.diag(np.diag(values["observation_noise"]))
    if offsets:
        values.update(transition_offset=rng.normal(size=S), observation_offset=rng.normal(size=O))
    if control_dim:
        values["control"] = rng.normal(size=(S, control_dim))
    kf.set_parameters(**values)
    return kf, values


def tfp_model(v, num_timesteps):
    tfp = pytest.importorskip("tensorflow_probability")
    tfd = tfp.distributions
    zs, zo = np.zeros(S), np.zeros(O)
    return tfd.LinearGaussianStateSpaceModel(
        num_timesteps, tf.linalg.LinearOperatorFullMatrix(v["transition"]),
        tfd.MultivariateNormalTriL(v.get("transition_offset", zs), np.linalg.cholesky(v["transition_noise"])),
        tf.linalg.LinearOperatorFullMatrix(v["observation"]),
        tfd.MultivariateNormalTriL(v.get("observation_offset", zo), np.linalg.cholesky(v["observation_noise"])),
        tfd.MultivariateNormalTriL(v["initial_mean"], np.linalg.cholesky(v["initial_covariance"])))


def close(got, want, atol=1e-8):
    got = np.asarray(got)
    np.testing.assert_allclose(got, np.broadcast_to(np.asarray(want), got.shape), rtol=0, atol=atol)


@pytest.mark.parametrize("covariance", ["cholesky", pytest.param("log_diagonal", marks=pytest.mark.slow)])
def test_matches_tfp_filter_and_smoother(covariance):
    rng = np.random.default_rng(0)
    kf, v = random_model(rng, covariance=covariance)
    x = rng.normal(size=(B, T, O))
    mask = rng.random((B, T)) < 0.25
    mask[:2] = False  # rows 0-1 also check the unmasked path (covariances shared by the batch)
    ref = tfp_model(v, T)
    # One graph for both TFP passes: eager TFP costs seconds of Python per call.
    want, (smoothed_means, smoothed_covs) = tf.function(
        lambda x, mask: (ref.forward_filter(x, mask=mask), ref.posterior_marginals(x, mask=mask)))(x, mask)
    want = type(want)(*[np.asarray(f) for f in want])
    smoothed_means, smoothed_covs = np.asarray(smoothed_means), np.asarray(smoothed_covs)
    for rows, m in ((slice(None), mask), (slice(0, 2), None)):
        got = kf.filter(x[rows], mask=m)
        for field in want._fields:
            close(got[field], getattr(want, field)[rows])
        close(kf.log_likelihood(x[rows], mask=m), np.sum(want.log_likelihoods[rows], -1))
        close(kf(x[rows], padding_mask=m), -np.sum(want.log_likelihoods[rows], -1))  # call: the negative log-likelihood
        means, covs = kf.smooth(x[rows], mask=m)
        close(means, smoothed_means[rows])
        close(covs, smoothed_covs[rows])
    if covariance == "log_diagonal":
        close(kf.log_likelihood(x), ref.log_prob(x))


def numpy_filter(v, x, u):
    """A plain Kalman filter with controls (z_{t+1} = F z_t + B u_t + c): log-likelihoods and filtered means."""
    m, p = v["initial_mean"], v["initial_covariance"]
    f, h, q, r = v["transition"], v["observation"], v["transition_noise"], v["observation_noise"]
    lls, means = [], []
    for t in range(len(x)):
        s = h @ p @ h.T + r
        y = x[t] - h @ m - v["observation_offset"]
        k = p @ h.T @ np.linalg.inv(s)
        lls.append(-0.5 * (y @ np.linalg.solve(s, y) + np.linalg.slogdet(2 * np.pi * s)[1]))
        m, p = m + k @ y, (np.eye(S) - k @ h) @ p
        means.append(m)
        m, p = f @ m + v["control"] @ u[t] + v["transition_offset"], f @ p @ f.T + q
    return np.array(lls), np.array(means)


def test_controls_match_a_numpy_filter():
    rng = np.random.default_rng(1)
    kf, v = random_model(rng, control_dim=2)
    x, u = rng.normal(size=(B, T, O)), rng.normal(size=(B, T, 2))
    got = kf.filter(x, controls=u)
    for b in range(B):
        lls, means = numpy_filter(v, x[b], u[b])
        close(got["log_likelihoods"][b], lls)
        close(got["filtered_means"][b], means)
    assert not np.allclose(kf.log_likelihood(x, controls=u), kf.log_likelihood(x, controls=0 * u))


def test_padded_batch_equals_each_sequence_alone():
    rng = np.random.default_rng(2)
    kf, _ = random_model(rng)
    lengths = [20, 7, 13, 1]
    x = rng.normal(size=(B, T, O))
    mask = np.arange(T)[None, :] >= np.array(lengths)[:, None]
    x_padded = np.where(mask[..., None], np.nan, x)  # padding may hold anything, NaN included
    batch_ll = kf.log_likelihood(x_padded, mask=mask)
    batch_filtered = kf.filter(x_padded, mask=mask)["filtered_means"]
    for b, n in enumerate(lengths):
        close(batch_ll[b], kf.log_likelihood(x[b:b + 1, :n])[0])
        close(batch_filtered[b, :n], kf.filter(x[b:b + 1, :n])["filtered_means"][0])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(kf(x_padded, padding_mask=mask))
    assert all(np.all(np.isfinite(g)) for g in tape.gradient(loss, kf.trainable_variables))


def test_forecast_equals_filter_over_masked_future():
    rng = np.random.default_rng(3)
    kf, _ = random_model(rng, control_dim=1)
    k = 4
    x, u, future = rng.normal(size=(B, T, O)), rng.normal(size=(B, T, 1)), rng.normal(size=(B, k, 1))
    got = kf.forecast(x, k, controls=u, future_controls=future)
    extended = np.concatenate([x, np.zeros((B, k, O))], 1)
    mask = np.concatenate([np.zeros((B, T), bool), np.ones((B, k), bool)], 1)
    want = kf.filter(extended, mask=mask, controls=np.concatenate([u, future], 1))
    close(got["state_means"], want["filtered_means"][:, T:])
    close(got["state_covs"], want["filtered_covs"][:, T:])
    close(got["observation_means"], want["observation_means"][:, T:])
    close(got["observation_covs"], want["observation_covs"][:, T:])


def test_sample_moments_and_seeded_determinism():
    rng = np.random.default_rng(4)
    kf, v = random_model(rng)
    states, obs = kf.sample(5, batch_size=20000, seed=7)
    again, _ = kf.sample(5, batch_size=20000, seed=7)
    np.testing.assert_array_equal(states, again)
    assert states.shape == (20000, 5, S) and obs.shape == (20000, 5, O)
    mean, cov = v["initial_mean"], v["initial_covariance"]
    for t in range(5):
        obs_mean = v["observation"] @ mean + v["observation_offset"]
        obs_cov = v["observation"] @ cov @ v["observation"].T + v["observation_noise"]
        scale = np.sqrt(np.diag(obs_cov))
        np.testing.assert_allclose(np.mean(obs[:, t], 0), obs_mean, atol=0.05 * scale.max())
        np.testing.assert_allclose(np.cov(np.asarray(obs[:, t]).T), obs_cov, rtol=0.06, atol=0.06 * scale.max() ** 2)
        np.testing.assert_allclose(np.mean(states[:, t], 0), mean, atol=0.05 * np.sqrt(np.diag(cov)).max() + 0.02)
        mean = v["transition"] @ mean + v["transition_offset"]
        cov = v["transition"] @ cov @ v["transition"].T + v["transition_noise"]


def constant_velocity():
    kf = LinearGaussianStateSpace(2, 1, noise_variance=0.1)
    kf.set_parameters(transition=[[1.0, 1.0], [0.0, 1.0]], observation=[[1.0, 0.0]], observation_noise=[[4.0]])
    return kf


def loss_and_grads_fn(kf, jit_compile):
    @tf.function(jit_compile=jit_compile)
    def loss_and_grads(x, mask):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(kf(x, padding_mask=mask))
        return loss, tape.gradient(loss, kf.trainable_variables)

    return loss_and_grads


@pytest.mark.slow
def test_long_float32_sequence_has_finite_loss_and_gradients():
    kf = constant_velocity()
    x = np.cumsum(np.random.default_rng(5).normal(size=(2, 5000, 1)), 1).astype("float32")
    mask = np.zeros((2, 5000), bool)
    mask[1, ::3] = True
    loss, grads = loss_and_grads_fn(kf, jit_compile=False)(x, mask)
    assert np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads)


@pytest.mark.slow
def test_xla_compiles_loss_and_gradients():
    kf = constant_velocity()
    x = np.cumsum(np.random.default_rng(6).normal(size=(2, 30, 1)), 1).astype("float32")
    mask = np.zeros((2, 30), bool)
    mask[1, ::3] = True
    loss, grads = loss_and_grads_fn(kf, jit_compile=True)(x, mask)
    want_loss, want_grads = loss_and_grads_fn(kf, jit_compile=False)(x, mask)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    for g, w in zip(grads, want_grads):
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-3)


def test_small_matmul_and_fold_match_the_plain_versions():
    from zoo.layers import kalman_ops

    rng = np.random.default_rng(3)
    for a_shape, b_shape in (((5, 3, 4), (4, 2)), ((3, 4), (5, 4, 2)), ((5, 3), (3, 3)), ((2, 20), (20, 3))):
        a, b = rng.normal(size=a_shape), rng.normal(size=b_shape)
        close(kalman_ops.matmul(tf.constant(a), tf.constant(b)), np.matmul(a, b), atol=1e-12)
    kf, _ = random_model(rng)
    x, mask = rng.normal(size=(B, T, O)), rng.random((B, T)) < 0.3
    for m in (None, mask):  # the fold (summed) against the scan (per step)
        close(kf.log_likelihood(x, mask=m), np.sum(kf.log_likelihood(x, mask=m, per_step=True), -1), atol=1e-10)


def test_config_round_trip():
    kf = LinearGaussianStateSpace(4, 2, control_dim=1, covariance="log_diagonal", offsets=True,
                                  learn_observation=False, noise_variance=0.5, name="kalman")
    clone = LinearGaussianStateSpace.from_config(kf.get_config())
    assert clone.get_config() == kf.get_config()
    assert [w.shape for w in clone.weights] == [w.shape for w in kf.weights]
    assert len(kf.trainable_weights) == len(kf.weights) - 1


def test_checkpoint_restores_every_parameter(tmp_path):
    rng = np.random.default_rng(8)
    kf, _ = random_model(rng, control_dim=1)
    path = tf.train.Checkpoint(layer=kf).write(str(tmp_path / "ckpt"))
    clone = LinearGaussianStateSpace.from_config(kf.get_config())
    tf.train.Checkpoint(layer=clone).read(path).assert_existing_objects_matched()
    for got, want in zip(clone.parameters(), kf.parameters()):
        np.testing.assert_array_equal(got, want)


def test_bad_inputs_are_one_line_errors():
    kf = LinearGaussianStateSpace(2, 1)
    with pytest.raises(ZooError, match=r"transition_noise is not positive definite \(smallest eigenvalue -0\.3\)"):
        kf.set_parameters(transition_noise=[[0.7, 0.0], [0.0, -0.3]])
    with pytest.raises(ZooError, match=r"observation has shape \(2, 2\), expected \(1, 2\)"):
        kf.set_parameters(observation=np.eye(2))
    with pytest.raises(ZooError, match="not symmetric"):
        kf.set_parameters(initial_covariance=[[1.0, 0.5], [0.0, 1.0]])
    with pytest.raises(ZooError, match=r"observation_dim=1"):
        kf.log_likelihood(np.zeros((1, 5, 3)))
    with pytest.raises(ZooError, match="control_dim=0"):
        kf.log_likelihood(np.zeros((1, 5, 1)), controls=np.zeros((1, 5, 1)))
    with pytest.raises(ZooError, match="off-diagonal"):
        LinearGaussianStateSpace(2, 1, covariance="log_diagonal").set_parameters(
            transition_noise=[[1.0, 0.5], [0.5, 1.0]])
    for error in ("transition_noise is not positive definite", "observation has shape"):
        assert "\n" not in error


@pytest.mark.slow
def test_maximum_likelihood_recovers_noise_variances():
    truth = LinearGaussianStateSpace(2, 1, dtype="float64")
    values = dict(transition=[[1.0, 1.0], [0.0, 1.0]], observation=[[1.0, 0.0]],
                  transition_noise=np.diag([0.05, 0.01]), observation_noise=[[0.5]])
    truth.set_parameters(**values)
    _, x = truth.sample(300, batch_size=8, seed=0)
    kf = LinearGaussianStateSpace(2, 1, covariance="log_diagonal", learn_transition=False,
                                  learn_observation=False, dtype="float64")
    kf.set_parameters(transition=values["transition"], observation=values["observation"])
    optimizer = keras.optimizers.Adam(0.1)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(kf(x)) / 300
        grads = tape.gradient(loss, kf.trainable_variables)
        optimizer.apply_gradients(zip(grads, kf.trainable_variables))
        return loss

    for _ in range(100):
        step()
    params = kf.parameters()
    np.testing.assert_allclose(np.diag(params.observation_noise), [0.5], rtol=0.2)
    np.testing.assert_allclose(np.diag(params.transition_noise), [0.05, 0.01], rtol=0.5)


@pytest.mark.filterwarnings("ignore:.*does not support masking:UserWarning")
def test_keras_mask_is_not_read_as_missing_steps():
    """`call` takes `padding_mask` (True = missing), so a Keras mask (True = keep) never reaches it inverted."""
    x = np.random.default_rng(9).normal(size=(2, 6, 1)).astype("float32")
    x[1, 4:] = 0.0
    kf = LinearGaussianStateSpace(1, 1)
    inputs = keras.Input((6, 1))
    with pytest.warns(UserWarning, match="does not support masking"):  # Keras says it drops the mask
        model = keras.Model(inputs, kf(keras.layers.Masking(0.0)(inputs)))
    assert not kf.supports_masking
    close(model(x), kf(x), atol=1e-6)  # documented: every step is seen, none is read as missing
    pad = np.zeros((2, 6), bool)
    pad[1, 4:] = True
    close(kf(x, padding_mask=pad), [-kf.log_likelihood(x[:1])[0], -kf.log_likelihood(x[1:, :4])[0]], atol=1e-6)


def test_large_and_small_variances_round_trip():
    kf = LinearGaussianStateSpace(1, 1, dtype="float64")
    kf.set_parameters(observation_noise=[[1e6]], transition_noise=[[4e5]])
    close(kf.parameters().observation_noise, [[1e6]], atol=1e-6)
    close(kf.parameters().transition_noise, [[4e5]], atol=1e-6)
    assert np.isfinite(kf.log_likelihood(np.full((1, 5, 1), 1e3)))
    close(LinearGaussianStateSpace(2, 1, noise_variance=1e6).parameters().observation_noise, [[1e6]], atol=1.0)
    tiny = LinearGaussianStateSpace(1, 1, dtype="float64").set_parameters(observation_noise=[[1e-12]])
    np.testing.assert_allclose(tiny.parameters().observation_noise, [[1e-12]], rtol=1e-6)


def test_one_step_sequence_smooths_to_the_filtered_moments():
    kf, _ = random_model(np.random.default_rng(10))
    x = np.random.default_rng(11).normal(size=(2, 1, O))
    for mask in (None, np.array([[False], [True]])):
        filtered = kf.filter(x, mask=mask)
        means, covs = kf.smooth(x, mask=mask)
        close(means, filtered["filtered_means"], atol=0)
        close(covs, filtered["filtered_covs"], atol=0)


def test_mixed_float16_policy_computes_in_float32():
    x = np.random.default_rng(12).normal(size=(2, 30, 1)) * 100
    want = LinearGaussianStateSpace(2, 1, dtype="float32").log_likelihood(x)
    policy = keras.config.dtype_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        kf = LinearGaussianStateSpace(2, 1)
        assert kf.compute_dtype == "float16"
        for got in (kf.log_likelihood(x), -kf(x), kf.smooth(x)[1][:, :, 0, 0]):
            assert got.dtype == "float32" and np.all(np.isfinite(got))
        close(kf.log_likelihood(x), want, atol=1e-3)
    finally:
        keras.mixed_precision.set_global_policy(policy)


def test_shape_mismatches_are_one_line_errors():
    kf = LinearGaussianStateSpace(1, 1, control_dim=1)
    x = np.zeros((2, 6, 1))
    for call, pattern in ((lambda: kf.log_likelihood(x, mask=np.zeros((2, 5), bool)), r"mask has shape \(2, 5\).*time"),
                          (lambda: kf.filter(x, mask=np.zeros((3, 6), bool)), r"mask has shape \(3, 6\).*batch"),
                          (lambda: kf.smooth(x, controls=np.zeros((2, 4, 1))), r"controls has shape \(2, 4, 1\).*time"),
                          (lambda: kf.forecast(np.zeros((2, 6, 2)), 2), r"observation_dim=1")):
        with pytest.raises(ZooError, match=pattern) as error:
            call()
        assert "\n" not in str(error.value)


def test_float32_smoother_keeps_variances_positive_with_a_diffuse_prior():
    """Constant acceleration, prior variance 1e4, tiny noises, 20% missing: the textbook RTS covariance update
    went negative in float32 (-0.0023 at T 50); the Joseph-like form stays positive and close to float64."""
    values = dict(transition=[[1, 1, 0.5], [0, 1, 1], [0, 0, 1]], observation=[[1, 0, 0]],
                  transition_noise=np.diag([1e-6, 1e-6, 1e-4]), observation_noise=[[1e-2]],
                  initial_covariance=np.eye(3) * 1e4)
    rng = np.random.default_rng(0)
    x = np.cumsum(np.cumsum(rng.normal(size=50) * 1e-2))[None, :, None] + rng.normal(size=(1, 50, 1)) * 0.1
    mask = rng.random((1, 50)) < 0.2
    variances = {}
    for dtype in ("float32", "float64"):
        kf = LinearGaussianStateSpace(3, 1, dtype=dtype).set_parameters(**values)
        variances[dtype] = np.diagonal(np.asarray(kf.smooth(x, mask=mask)[1], np.float64), 0, -2, -1)
    assert variances["float32"].min() > 0
    np.testing.assert_allclose(variances["float32"][5:], variances["float64"][5:], rtol=0.05)

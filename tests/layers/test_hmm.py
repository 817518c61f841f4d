"""HiddenMarkovModel: parity with TFP's tfd.HiddenMarkovModel, masks, Baum-Welch, neural emissions, gradients,
one-line errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.errors import ZooError
from zoo.layers.hmm import HiddenMarkovModel
from zoo.layers.hmm_emissions import CategoricalEmission, GaussianEmission

CASINO = dict(initial=[0.5, 0.5], transition=[[0.95, 0.05], [0.1, 0.9]],
              emission_probs=[[1 / 6] * 6, [0.1] * 5 + [0.5]])


def random_hmm(emission, k, seed, dtype="float64"):
    rng = np.random.default_rng(seed)
    hmm = HiddenMarkovModel(k, emission, dtype=dtype)
    params = {"initial": rng.dirichlet(np.ones(k)), "transition": rng.dirichlet(np.ones(k), size=k)}
    if isinstance(emission, CategoricalEmission):
        params["emission_probs"] = rng.dirichlet(np.ones(emission.num_symbols), size=k)
    else:
        d = emission.dim
        params["means"] = rng.normal(size=(k, d)) * 2
        if emission.covariance == "diag":
            params["covariances"] = rng.uniform(0.5, 2.0, size=(k, d))
        else:
            a = rng.normal(size=(k, d, d))
            params["covariances"] = a @ np.swapaxes(a, -1, -2) + np.eye(d)
    hmm.set_parameters(**params)
    return hmm, params


def tfp_hmm(params, num_steps):
    tfp = pytest.importorskip("tensorflow_probability")
    tfd = tfp.distributions
    if "emission_probs" in params:
        observation = tfd.Categorical(probs=params["emission_probs"])
    elif params["covariances"].ndim == 2:
        observation = tfd.MultivariateNormalDiag(params["means"], np.sqrt(params["covariances"]))
    else:
        observation = tfd.MultivariateNormalTriL(params["means"], np.linalg.cholesky(params["covariances"]))
    return tfd.HiddenMarkovModel(tfd.Categorical(probs=params["initial"]), tfd.Categorical(probs=params["transition"]),
                                 observation, num_steps=num_steps)


@pytest.mark.parametrize("kind", ["categorical", "diag", "full"])
def test_parity_with_tfp_float64_with_mask(kind):
    emission = CategoricalEmission(5) if kind == "categorical" else GaussianEmission(3, covariance=kind)
    hmm, params = random_hmm(emission, 3, seed=1)
    _, x = hmm.sample(12, batch_size=4, seed=2)
    x = x.numpy()
    mask = np.zeros((4, 12), bool)
    mask[1, 8:] = True  # right padding
    mask[2, 4] = True  # a missing step inside
    dist = tfp_hmm(params, 12)
    for m in (None, mask):
        np.testing.assert_allclose(hmm.log_likelihood(x, mask=m), dist.log_prob(x, mask=m), rtol=0, atol=1e-10)
        np.testing.assert_allclose(hmm.posterior_marginals(x, mask=m),
                                   dist.posterior_marginals(x, mask=m).probs_parameter(), rtol=0, atol=1e-10)
    np.testing.assert_array_equal(hmm.viterbi(x)[0], dist.posterior_mode(x))
    paths = hmm.viterbi(x, mask=mask)[0].numpy()
    tfp_paths = dist.posterior_mode(x, mask=mask).numpy()
    np.testing.assert_array_equal(paths[[0, 2, 3]], tfp_paths[[0, 2, 3]])  # no padding: TFP's decoding
    assert (paths[1, 8:] == -1).all()


def test_parity_float32_and_temperature_example():
    hmm, params = random_hmm(GaussianEmission(2, covariance="full"), 4, seed=3, dtype="float32")
    _, x = hmm.sample(50, batch_size=3, seed=4)
    dist = tfp_hmm(params, 50)
    ll = hmm.log_likelihood(x)
    assert ll.dtype == tf.float32
    np.testing.assert_allclose(ll, dist.log_prob(tf.cast(x, tf.float64)), rtol=1e-5)
    # TFP's documented example: a cold (0) or hot (1) day, temperatures N(0, 5²) and N(15, 10²)
    weather = HiddenMarkovModel(2, GaussianEmission(1), dtype="float64")
    weather.set_parameters(initial=[0.8, 0.2], transition=[[0.7, 0.3], [0.2, 0.8]], means=[[0.0], [15.0]],
                           covariances=[[25.0], [100.0]])
    temps = np.array([-1.0, 0.0, 10.0, 15.0, 20.0, 15.0, 5.0])[None, :, None]
    tfd = pytest.importorskip("tensorflow_probability").distributions
    f64 = np.float64
    ref = tfd.HiddenMarkovModel(tfd.Categorical(probs=f64([0.8, 0.2])),
                                tfd.Categorical(probs=f64([[0.7, 0.3], [0.2, 0.8]])),
                                tfd.Normal(loc=f64([0.0, 15.0]), scale=f64([5.0, 10.0])), num_steps=7)
    np.testing.assert_allclose(weather.log_likelihood(temps), ref.log_prob(temps[..., 0]), atol=1e-10)
    np.testing.assert_array_equal(weather.viterbi(temps)[0], ref.posterior_mode(temps[..., 0]))
    zeros_ll = float(weather.log_likelihood(np.zeros((1, 7, 1)))[0])
    assert zeros_ll == pytest.approx(-19.855635, abs=1e-6)  # TFP docs' value for 7 days at 0 degrees


def test_padded_batch_equals_sequences_one_by_one():
    hmm, _ = random_hmm(CategoricalEmission(6), 3, seed=5)
    lengths = [9, 4, 1, 6]
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, (4, 9))
    mask = np.arange(9)[None] >= np.array(lengths)[:, None]
    x_padded = np.where(mask, 99, x)  # any padding value
    ll = hmm.log_likelihood(x_padded, mask=mask).numpy()
    post = hmm.posterior_marginals(x_padded, mask=mask).numpy()
    paths, scores = (t.numpy() for t in hmm.viterbi(x_padded, mask=mask))
    for b, n in enumerate(lengths):
        one = x[b:b + 1, :n]
        assert ll[b] == pytest.approx(hmm.log_likelihood(one).numpy()[0], abs=1e-12)
        np.testing.assert_allclose(post[b, :n], hmm.posterior_marginals(one).numpy()[0], atol=1e-12)
        p1, s1 = hmm.viterbi(one)
        np.testing.assert_array_equal(paths[b, :n], p1[0])
        assert (paths[b, n:] == -1).all() and scores[b] == pytest.approx(s1.numpy()[0], abs=1e-12)


def numpy_em_step(x, init, trans, emis):
    """One Baum-Welch step for one categorical sequence, by the textbook scaled recursions."""
    t_len, k = len(x), len(init)
    alpha, beta, c = np.zeros((t_len, k)), np.ones((t_len, k)), np.zeros(t_len)
    a = init * emis[:, x[0]]
    c[0] = a.sum()
    alpha[0] = a / c[0]
    for t in range(1, t_len):
        a = (alpha[t - 1] @ trans) * emis[:, x[t]]
        c[t] = a.sum()
        alpha[t] = a / c[t]
    for t in range(t_len - 2, -1, -1):
        beta[t] = trans @ (emis[:, x[t + 1]] * beta[t + 1]) / c[t + 1]
    gamma = alpha * beta
    xi = sum(alpha[t - 1][:, None] * trans * (emis[:, x[t]] * beta[t])[None] / c[t] for t in range(1, t_len))
    new_emis = np.stack([gamma[x == m].sum(0) for m in range(emis.shape[1])], 1)
    return gamma[0], xi / xi.sum(1, keepdims=True), new_emis / new_emis.sum(1, keepdims=True), np.log(c).sum()


def test_baum_welch_one_step_equals_numpy_reference():
    hmm, p = random_hmm(CategoricalEmission(3), 2, seed=7)
    hmm.pseudo_count = 0.0
    x = np.array([0, 2, 1, 1, 0, 2, 2, 1])
    init, trans, emis, ll = numpy_em_step(x, p["initial"], p["transition"], p["emission_probs"])
    history = hmm.baum_welch(x[None], iterations=1)
    assert history[0] == pytest.approx(ll, abs=1e-10)
    got = hmm.parameters()
    np.testing.assert_allclose(got["initial"], init, atol=1e-10)
    np.testing.assert_allclose(got["transition"], trans, atol=1e-10)
    np.testing.assert_allclose(got["emission_probs"], emis, atol=1e-10)


@pytest.mark.parametrize("emission", [CategoricalEmission(6), GaussianEmission(2, covariance="full")])
def test_baum_welch_never_lowers_the_likelihood_on_masked_batches(emission):
    truth, _ = random_hmm(emission, 3, seed=11)
    _, x = truth.sample(60, batch_size=5, seed=12)
    mask = np.arange(60)[None] >= np.array([60, 45, 30, 20, 8])[:, None]
    fresh = HiddenMarkovModel(3, type(emission).from_config(emission.get_config()), dtype="float64")
    history = fresh.baum_welch(x.numpy(), mask=mask, iterations=15, tolerance=0)
    assert len(history) == 16 and np.all(np.isfinite(history))
    assert np.all(np.diff(history) >= -1e-6), np.diff(history)


@pytest.mark.slow
def test_baum_welch_recovers_the_casino():
    truth = HiddenMarkovModel(2, CategoricalEmission(6), dtype="float64")
    truth.set_parameters(**CASINO)
    _, rolls = truth.sample(2000, batch_size=4, seed=0)
    hmm = HiddenMarkovModel(2, CategoricalEmission(6), dtype="float64")
    hmm.set_parameters(initial=[0.5, 0.5], transition=[[0.8, 0.2], [0.2, 0.8]],
                       emission_probs=[[1 / 6] * 6, [0.15] * 4 + [0.2, 0.2]])
    hmm.baum_welch(rolls.numpy(), iterations=100, tolerance=1e-6)
    got = hmm.parameters()
    np.testing.assert_allclose(got["emission_probs"][1, 5], 0.5, atol=0.05)
    np.testing.assert_allclose(got["emission_probs"][0], [1 / 6] * 6, atol=0.03)
    np.testing.assert_allclose(np.diag(got["transition"]), [0.95, 0.9], atol=0.04)


def neural_hmm():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(8, 20, 3)).astype("float32")
    inputs = keras.Input((20, 3))
    log_probs = keras.layers.Dense(4, activation="log_softmax")(inputs)
    hmm = HiddenMarkovModel(4)
    return x, keras.Model(inputs, hmm(log_probs)), hmm


def test_neural_emissions_gradients_reach_the_network():
    x, model, hmm = neural_hmm()
    dense = model.layers[1]
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(model(x))
    grads = tape.gradient(loss, dense.trainable_variables + hmm.trainable_variables)
    assert all(g is not None and np.all(np.isfinite(g)) and np.abs(g).sum() > 0 for g in grads)
    # the verbs take the network's output as well
    assert hmm.viterbi(emission_log_probs=dense(x))[0].shape == (8, 20)


@pytest.mark.slow
def test_neural_emissions_train_end_to_end_with_fit():
    x, model, hmm = neural_hmm()
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=lambda _, ll: -ll / 20.0)
    history = model.fit(x, np.zeros(8), epochs=5, batch_size=8, verbose=0).history["loss"]
    assert history[-1] < history[0]


@pytest.mark.slow
def test_gradients_finite_on_long_sequences():
    hmm = HiddenMarkovModel(3, GaussianEmission(1), dtype="float32")
    _, x = hmm.sample(5000, batch_size=2, seed=0)
    with tf.GradientTape() as tape:
        ll = tf.reduce_sum(hmm.log_likelihood(x * 3.0))
    grads = tape.gradient(ll, hmm.trainable_variables)
    assert np.isfinite(ll.numpy()) and all(np.all(np.isfinite(g)) for g in grads)


def test_sampling_matches_the_chain():
    hmm = HiddenMarkovModel(2, CategoricalEmission(6), dtype="float64")
    hmm.set_parameters(**CASINO)
    states, rolls = (t.numpy() for t in hmm.sample(3000, batch_size=2, seed=3))
    assert states.shape == rolls.shape == (2, 3000)
    stays = (states[:, 1:] == states[:, :-1])[states[:, :-1] == 0].mean()
    assert stays == pytest.approx(0.95, abs=0.02)
    assert (rolls[states == 1] == 5).mean() == pytest.approx(0.5, abs=0.05)
    again = hmm.sample(3000, batch_size=2, seed=3)[0].numpy()
    np.testing.assert_array_equal(states, again)


def test_bad_inputs_are_one_line_errors():
    hmm = HiddenMarkovModel(2, GaussianEmission(2, covariance="full"), dtype="float64")
    cases = [
        (dict(transition=[[0.5, 0.4], [0.5, 0.5]]), "transition rows must sum to 1"),
        (dict(initial=[1.2, -0.2]), "initial has negative probabilities"),
        (dict(initial=[1.0]), "initial has shape [1], expected [2]"),
        (dict(covariances=[[[1, 2], [2, 1]], np.eye(2)]), "covariances[0] is not positive definite"),
        (dict(covariances=[[[1, 0.5], [0, 1]], np.eye(2)]), "covariances must be symmetric"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ZooError) as e:
            hmm.set_parameters(**kwargs)
        assert message in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ZooError, match=r"shape \[batch, time, 2\]"):
        hmm.log_likelihood(np.zeros((1, 5, 3)))
    with pytest.raises(ZooError, match=r"must have shape \[batch, time, 2\]"):
        HiddenMarkovModel(2).log_likelihood(np.zeros((1, 5, 3)))
    with pytest.raises(ZooError, match=r"integer symbols in \[0, 6\)"):
        HiddenMarkovModel(2, CategoricalEmission(6)).baum_welch(np.array([[1, 7, 2]]))
    with pytest.raises(ZooError, match="covariance='tied' is unknown"):
        GaussianEmission(2, covariance="tied")


def test_config_round_trip():
    hmm = HiddenMarkovModel(3, GaussianEmission(2, covariance="full"), dtype="float64", name="h")
    clone = HiddenMarkovModel.from_config(hmm.get_config())
    assert clone.num_states == 3 and clone.emission.covariance == "full" and clone.variable_dtype == "float64"


@pytest.mark.slow
def test_xla_compiles_every_verb_with_masks():
    hmm, _ = random_hmm(GaussianEmission(2, covariance="full"), 3, seed=13, dtype="float32")
    _, x = hmm.sample(30, batch_size=3, seed=0)
    mask = np.arange(30)[None] >= np.array([[30], [20], [5]])

    @tf.function(jit_compile=True)
    def compiled(x, mask):
        with tf.GradientTape() as tape:
            ll = tf.reduce_sum(hmm.log_likelihood(x, mask=mask))
        return ll, tape.gradient(ll, hmm.trainable_variables), hmm.viterbi(x, mask=mask)[0]

    ll, grads, paths = compiled(x, tf.constant(mask))
    assert float(ll) == pytest.approx(float(tf.reduce_sum(hmm.log_likelihood(x, mask=mask))), rel=1e-5)
    assert all(np.all(np.isfinite(g)) for g in grads)
    np.testing.assert_array_equal(paths, hmm.viterbi(x, mask=mask)[0])


def test_fully_padded_row_and_mask_shape_errors():
    hmm = HiddenMarkovModel(2, CategoricalEmission(3))
    x = np.array([[0, 1, 2], [1, 1, 0]], "int32")
    mask = np.array([[False, False, True], [True, True, True]])
    paths, scores = hmm.viterbi(x, mask=mask)
    assert np.asarray(paths)[1].tolist() == [-1, -1, -1]
    assert float(np.asarray(scores)[1]) == 0.0 == float(np.asarray(hmm.log_likelihood(x, mask=mask))[1])
    with pytest.raises(ZooError, match=r"mask has shape \[2, 2\] but the observations have \[batch, time\] = \[2, 3\]"):
        hmm.log_likelihood(x, mask=mask[:, :2])

"""What `recipes/kalman_fit.py` needs beyond the flags: the structure presets, the generated default series (a
tracked object with missing readings), a CSV series, the Trainer's input (`LikelihoodFit` fits the layer), the plot and the serving endpoints.

    series = generated_series(seed=0)                       # Series(values [T, 1] with NaN, times, truth)
    model = LikelihoodFit(build_layer("constant_velocity", series.values))   # zoo.models.sequence
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    # Trainer(model, dataset_fn=dataset_fn(series, global_batch_size=1), ...).train()
"""

import collections

import numpy as np
import tensorflow as tf

from zoo.errors import ZooError
from zoo.layers.kalman import LinearGaussianStateSpace

# name -> (transition, observation): the known structure of common trackers, observing the first state.
PRESETS = {
    "local_level": ([[1.0]], [[1.0]]),
    "constant_velocity": ([[1.0, 1.0], [0.0, 1.0]], [[1.0, 0.0]]),
    "constant_acceleration": ([[1.0, 1.0, 0.5], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]]),
}
MODELS = tuple(PRESETS) + ("learned",)

# The default data: a constant-velocity object with these noise variances, position read with missing values.
TRUE_TRANSITION_NOISE = (0.05, 0.01)  # position, velocity
TRUE_OBSERVATION_NOISE = 1.0

Series = collections.namedtuple("Series", ["values", "times", "name", "true_states"])
Series.__doc__ = ("A univariate series: values [T, 1] (NaN = missing), times [T] (for plots), its name, and the "
                  "true states [T, S] when it was generated (else None).")


def generated_series(num_steps=200, missing_fraction=0.1, seed=0):
    """A noisy tracked object: constant velocity with random accelerations, the position read with variance
    `TRUE_OBSERVATION_NOISE`; `missing_fraction` of the readings are lost at random, plus a gap of 15."""
    rng = np.random.default_rng(seed)
    f, _ = PRESETS["constant_velocity"]
    state = np.array([0.0, 1.0])
    states = []
    for _ in range(num_steps):
        states.append(state)
        state = np.asarray(f) @ state + rng.normal(size=2) * np.sqrt(TRUE_TRANSITION_NOISE)
    states = np.array(states)
    values = states[:, :1] + rng.normal(size=(num_steps, 1)) * np.sqrt(TRUE_OBSERVATION_NOISE)
    missing = rng.random(num_steps) < missing_fraction
    gap = int(num_steps * 0.6)
    missing[gap:gap + min(15, num_steps // 10)] = True
    missing[0] = False
    values[missing] = np.nan
    return Series(values, np.arange(num_steps, dtype=np.float64), "position", states)


def csv_series(path, column, time_column=None):
    """One numeric column of a CSV (empty cells are missing readings) as a `Series`; one-line errors for an
    empty or ragged file, an unknown column (listing the available ones) or non-numeric values."""
    from zoo.data.csv_series import read_csv_columns

    wanted = [column] + ([time_column] if time_column is not None else [])
    columns = read_csv_columns(path, wanted)
    values = columns[str(column)][:, None]
    if np.all(np.isnan(values)):
        raise ZooError(f"column {column!r} of {path} has no values; choose a column with readings")
    if np.isnan(values[0, 0]):
        first = int(np.argmax(~np.isnan(values[:, 0])))
        values = values[first:]
    else:
        first = 0
    times = columns[str(time_column)][first:] if time_column is not None else np.arange(len(values), dtype=float)
    return Series(values, times, str(column), None)


def build_layer(model, series_values, state_dim=2, learn_dynamics=False, covariance="log_diagonal"):
    """The `LinearGaussianStateSpace` for a preset (or `learned`, with `state_dim`), its starting values scaled
    to the data: the first reading as the initial position, half the variance of the differences as the noise
    variances, the variance of the readings as the prior's."""
    observed = series_values[~np.isnan(series_values[:, 0]), 0]
    diffs = np.diff(observed)
    noise = float(np.var(diffs) / 2) if len(diffs) > 1 and np.var(diffs) > 0 else 1.0
    spread = float(np.var(observed)) if len(observed) > 1 and np.var(observed) > 0 else 1.0
    if model == "learned":
        size = state_dim
        transition, observation = np.eye(size) * 0.95, np.eye(1, size)
    else:
        transition, observation = (np.asarray(m, np.float64) for m in PRESETS[model])
        size = transition.shape[0]
    learn = learn_dynamics or model == "learned"
    layer = LinearGaussianStateSpace(size, 1, covariance=covariance, learn_transition=learn,
                                     learn_observation=learn, noise_variance=noise, initial_variance=spread,
                                     dtype="float32", name="state_space")  # never float16, whatever the policy
    initial_mean = np.zeros(size)
    initial_mean[0] = observed[0]
    layer.set_parameters(transition=transition, observation=observation, initial_mean=initial_mean)
    return layer


def dataset_fn(series, global_batch_size):
    """`fn(input_context)` for the Trainer: the whole series (NaN readings zeroed and masked), repeated, in
    per-replica batches of copies."""
    values = np.nan_to_num(series.values).astype(np.float32)
    mask = np.isnan(series.values[:, 0])

    def fn(ctx):
        per_replica = ctx.get_per_replica_batch_size(global_batch_size)
        return tf.data.Dataset.from_tensors({"x": values, "mask": mask}).repeat().batch(per_replica,
                                                                                  drop_remainder=True)

    return fn


def variances(layer):
    """(transition noise variances [S], observation noise variances [O]) of the layer, as NumPy."""
    params = layer.parameters("float64")
    return np.diag(np.asarray(params.transition_noise)), np.diag(np.asarray(params.observation_noise))


def analyse(layer, series, forecast_steps):
    """Filtered and smoothed observation-space means and variances [T], and forecasts [k] (predictive, with the
    observation noise), for the one series."""
    observations = np.nan_to_num(series.values)[None].astype(layer.variable_dtype)
    mask = np.isnan(series.values[:, 0])[None]
    params = layer.parameters("float64")
    h = np.asarray(params.observation)
    filtered = layer.filter(observations, mask=mask)
    smoothed_means, smoothed_covs = layer.smooth(observations, mask=mask)
    forecast = layer.forecast(observations, forecast_steps, mask=mask) if forecast_steps else None

    def project(means, covs):
        means, covs = np.asarray(means[0], np.float64), np.asarray(covs[0], np.float64)
        return means @ h[0], np.einsum("s,tsr,r->t", h[0], covs, h[0])

    out = {"filtered": project(filtered["filtered_means"], filtered["filtered_covs"]),
           "smoothed": project(smoothed_means, smoothed_covs),
           "filtered_states": np.asarray(filtered["filtered_means"][0], np.float64),
           "smoothed_states": np.asarray(smoothed_means[0], np.float64),
           "log_likelihood": float(np.sum(np.asarray(filtered["log_likelihoods"])))}
    if forecast is not None:
        out["forecast"] = (np.asarray(forecast["observation_means"][0, :, 0], np.float64),
                           np.asarray(forecast["observation_covs"][0, :, 0, 0], np.float64))
    return out


def plot(path, series, results):
    """PNG of the readings, filtered and smoothed positions with ±2σ bands and the forecast (top), and the same
    relative to the smoothed path (bottom), where the bands are visible whatever the trend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = series.times
    base = results["smoothed"][0]
    fig, axes = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for ax, offset in zip(axes, (0.0, base)):
        ax.plot(times, series.values[:, 0] - offset, ".", color="0.3", ms=4, label="readings")
        if series.true_states is not None:
            ax.plot(times, series.true_states[:, 0] - offset, color="k", lw=0.8, ls=":", label="true position")
        for key, color in (("filtered", "tab:blue"), ("smoothed", "tab:green")):
            mean, var = results[key]
            band = 2 * np.sqrt(np.maximum(var, 0))
            ax.plot(times, mean - offset, color=color, lw=1.2, label=f"{key} ±2σ")
            ax.fill_between(times, mean - offset - band, mean - offset + band, color=color, alpha=0.2)
        ax.legend(loc="best", fontsize=8)
    axes[0].set_ylabel(series.name)
    axes[1].set_ylabel(f"{series.name} − smoothed")
    if "forecast" in results:
        mean, var = results["forecast"]
        step = times[-1] - times[-2] if len(times) > 1 else 1.0
        future = times[-1] + step * np.arange(1, len(mean) + 1)
        band = 2 * np.sqrt(np.maximum(var, 0))
        axes[0].plot(future, mean, color="tab:red", lw=1.2, label="forecast ±2σ")
        axes[0].fill_between(future, mean - band, mean + band, color="tab:red", alpha=0.2)
        axes[0].legend(loc="best", fontsize=8)
    axes[1].set_xlabel("time")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def serving_endpoints(layer, forecast_steps):
    """`serving_default`: observations [B, T, O] float32 and mask [B, T] bool (True = missing) -> filtered
    means and variances [B, T, S], observation means and variances [B, T, O] and log_likelihood [B];
    `forecast` (when `forecast_steps`): the same inputs -> the next `forecast_steps` observation means and
    variances [B, k, O] and state means [B, k, S]."""
    size = layer.observation_dim
    signature = [tf.TensorSpec([None, None, size], tf.float32, name="observations"),
                 tf.TensorSpec([None, None], tf.bool, name="mask")]

    def inputs(observations, mask):
        observations = tf.cast(observations, layer.variable_dtype)
        return tf.where(mask[..., None], tf.zeros_like(observations), observations), mask

    def serve(observations, mask):
        observations, mask = inputs(observations, mask)
        out = layer.filter(observations, mask=mask)
        result = {"filtered_means": out["filtered_means"],
                  "filtered_variances": tf.linalg.diag_part(out["filtered_covs"]),
                  "observation_means": out["observation_means"],
                  "observation_variances": tf.linalg.diag_part(out["observation_covs"]),
                  "log_likelihood": tf.reduce_sum(out["log_likelihoods"], axis=1)}
        return {k: tf.cast(v, tf.float32) for k, v in result.items()}

    endpoints = {"serving_default": (serve, signature)}
    if forecast_steps:
        def forecast(observations, mask):
            observations, mask = inputs(observations, mask)
            out = layer.forecast(observations, forecast_steps, mask=mask)
            result = {"observation_means": out["observation_means"],
                      "observation_variances": tf.linalg.diag_part(out["observation_covs"]),
                      "state_means": out["state_means"]}
            return {k: tf.cast(v, tf.float32) for k, v in result.items()}

        endpoints["forecast"] = (forecast, signature)
    return endpoints

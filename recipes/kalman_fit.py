"""Fits a linear-Gaussian state-space model (the Kalman filter) to a series by maximum likelihood, with the zoo
Trainer under any strategy; prints the fitted noise variances; plots readings, filtered and smoothed states with
±2σ bands and a forecast; exports a TF Serving model that filters.

    python recipes/kalman_fit.py                    # a generated noisy tracked object with missing readings
    python recipes/kalman_fit.py --input_csv=sensor.csv --column=position --time_column=t \
        --model=local_level --forecast_steps=30 --model_dir=runs/sensor
    python recipes/kalman_fit.py --model=learned --state_dim=3 --covariance=cholesky    # F and H learned too

Data: `--input_csv` and `--column` (a header name or a 0-based index; empty cells are missing readings), or
by default a constant-velocity object (true transition noise variances 0.05 and 0.01, observation noise
variance 1.0) whose position is read with 10% of the readings lost and a gap of 15 steps.

Model: `--model` presets the structure (transition F and observation H, fixed unless --learn_dynamics):
local_level (S=1), constant_velocity (S=2, position observed), constant_acceleration (S=3), or learned
(F and H learned, S=--state_dim). The noise covariances and the initial state prior are always learned.
The loss is the negative log-likelihood per observed reading (Adam, --learning_rate).

Outputs in --model_dir: checkpoints (a run resumes), `kalman_fit.png`, and `<export_dir>/<version>/` whose
`serving_default` takes `observations` [B, T, 1] float32 and `mask` [B, T] bool (True = missing) and returns
filtered_means and filtered_variances [B, T, S], observation_means and observation_variances [B, T, 1] and
log_likelihood [B]; `forecast` returns the next --forecast_steps observation means and variances.
"""

from zoo import flags as zoo_flags
from zoo.flags import FREE, Bool, Enum, Float, Int, String

MODELS = ("local_level", "constant_velocity", "constant_acceleration", "learned")
SPEC = zoo_flags.declare(
    *zoo_flags.common(train_steps=300, global_batch_size=1, learning_rate=0.05, model_dir="runs/kalman_fit",
                      checkpoint_every=100, log_every=50),
    String("input_csv", None, "CSV file with the series (default: a generated tracked object)."),
    String("column", None, "The column of --input_csv to fit: a header name or a 0-based index."),
    String("time_column", None, "A numeric column of --input_csv used as the time axis of the plot.", role=FREE),
    Enum("model", "constant_velocity", MODELS, "Structure preset: local_level, constant_velocity, "
         "constant_acceleration, or learned (F and H learned, --state_dim)."),
    Int("state_dim", 2, "State size of --model=learned.", at_least=1, at_most=16),
    Bool("learn_dynamics", False, "Learn the preset's transition and observation matrices too."),
    Enum("covariance", "log_diagonal", ("log_diagonal", "cholesky"), "Noise covariance parameterisation: "
         "log_diagonal (variances) or cholesky (full)."),
    Int("num_steps", 200, "Length of the generated default series.", at_least=10),
    Float("missing_fraction", 0.1, "Share of the generated readings that are lost.", at_least=0, below=0.9),
    Int("forecast_steps", 20, "Steps forecast after the data (plot, printout and the `forecast` signature).",
        role=FREE, at_least=0),
    checks=[lambda hp: None if hp.column is None or hp.input_csv else "--column needs --input_csv",
            lambda hp: None if hp.input_csv is None or hp.column is not None else
            "give --column (a header name or a 0-based index) with --input_csv",
            lambda hp: None if hp.time_column is None or hp.input_csv else "--time_column needs --input_csv"],
)


def main(argv):
    del argv
    import os

    import keras
    import numpy as np

    from zoo import recipe_support
    from zoo.models.sequence import LikelihoodFit
    from zoo.recipe_support import kalman as support
    from zoo.training.export import export_saved_model
    from zoo.training.trainer import Trainer

    hp = SPEC.values()
    if hp.input_csv:
        series = support.csv_series(hp.input_csv, hp.column, hp.time_column)
        source = f"{hp.input_csv} column {hp.column!r}"
    else:
        series = support.generated_series(hp.num_steps, hp.missing_fraction, seed=hp.seed)
        source = "generated constant-velocity object"
    strategy, chief = recipe_support.setup(hp)
    with strategy.scope():
        layer = support.build_layer(hp.model, series.values, state_dim=hp.state_dim,
                                    learn_dynamics=hp.learn_dynamics, covariance=hp.covariance)
        model = LikelihoodFit(layer)
        model.compile(optimizer=keras.optimizers.Adam(hp.learning_rate))
    missing = int(np.isnan(series.values[:, 0]).sum())
    if chief:
        print(f"{source}: {len(series.values)} steps, {missing} missing; model {hp.model} (state {layer.state_dim}, "
              f"{hp.covariance} noise), {strategy.num_replicas_in_sync} replica(s)", flush=True)
    config = hp.run_config(series_length=len(series.values), series_missing=missing,
                           series_sum=round(float(np.nansum(series.values)), 6))
    trainer = Trainer(model, strategy=strategy, model_dir=hp.model_dir,
                      dataset_fn=support.dataset_fn(series, hp.global_batch_size), config=config,
                      **hp.trainer_args())
    logs = trainer.train()
    if not chief:
        if hp.export_dir:
            export_saved_model(hp.export_dir, layer, support.serving_endpoints(layer, hp.forecast_steps),
                               strategy=strategy)
        return
    q, r = support.variances(layer)
    print(f"final loss (negative log-likelihood per reading): {logs.get('loss', float('nan')):.4f}")
    print(f"fitted transition noise variances: {np.array2string(q, precision=4)}; observation noise variance: "
          f"{np.array2string(r, precision=4)}")
    results = support.analyse(layer, series, hp.forecast_steps)
    print(f"log-likelihood of the series: {results['log_likelihood']:.3f}")
    if series.true_states is not None:
        print(f"true transition noise variances: {list(support.TRUE_TRANSITION_NOISE)}; observation noise "
              f"variance: {support.TRUE_OBSERVATION_NOISE}")
        truth = series.true_states[:, 0]
        for key in ("filtered", "smoothed"):
            rmse = float(np.sqrt(np.mean((results[key][0] - truth) ** 2)))
            print(f"{key} position RMSE against the true path: {rmse:.3f}")
        seen = ~np.isnan(series.values[:, 0])
        rmse = float(np.sqrt(np.mean((series.values[seen, 0] - truth[seen]) ** 2)))
        print(f"raw readings RMSE against the true path: {rmse:.3f}")
    if hp.forecast_steps:
        mean, var = results["forecast"]
        print(f"forecast of the next {hp.forecast_steps} steps: first {mean[0]:.3f} ± {2 * np.sqrt(var[0]):.3f}, "
              f"last {mean[-1]:.3f} ± {2 * np.sqrt(var[-1]):.3f} (±2σ)")
    png = os.path.join(hp.model_dir, "kalman_fit.png")
    support.plot(png, series, results)
    print(f"wrote {png}")
    if hp.export_dir:
        path = export_saved_model(hp.export_dir, layer, support.serving_endpoints(layer, hp.forecast_steps),
                                  strategy=strategy)
        print(f"exported {path}", flush=True)


if __name__ == "__main__":
    zoo_flags.run(main)

"""What recipes/hmm_fit.py needs beyond the flags: the data (the occasionally dishonest casino, a CSV column or a
.npy array, as padded sequences with a mask), a starting point, the Trainer's input (`zoo.models.sequence.
LikelihoodFit` does the gradient descent), states matched by permutation, the comparison table, the posterior plot and the decoding export.

    series = casino(num_sequences=8, min_length=200, max_length=600, seed=0)   # x [8, T], mask, true states
    hmm = HiddenMarkovModel(2, CategoricalEmission(6), dtype="float64")
    hmm.set_parameters(**starting_point(series, 2, seed=0))
    hmm.baum_welch(series.x, mask=series.mask, iterations=100)
"""

import dataclasses
import itertools
import os

import numpy as np
import tensorflow as tf

from zoo.errors import ZooError
from zoo.layers.hmm import HiddenMarkovModel
from zoo.layers.hmm_emissions import CategoricalEmission, GaussianEmission

CASINO = {"initial": np.array([0.5, 0.5]), "transition": np.array([[0.95, 0.05], [0.1, 0.9]]),
          "emission_probs": np.array([[1 / 6] * 6, [0.1] * 5 + [0.5]])}
STATE_NAMES = {"casino": ["fair", "loaded"]}


@dataclasses.dataclass
class Series:
    """Padded sequences: `x` [B, T] int symbols or [B, T, D] floats, `mask` [B, T] (True = padding or missing),
    the true `states` [B, T] and `truth` parameters when known, and a `name`."""

    x: np.ndarray
    mask: np.ndarray
    kind: str  # categorical | gaussian
    name: str
    states: np.ndarray = None
    truth: dict = None
    symbols: list = None  # the CSV strings behind categorical symbols 0, 1, ...

    @property
    def num_symbols(self):
        return int(self.x[~self.mask].max()) + 1 if self.kind == "categorical" else None

    @property
    def dim(self):
        return self.x.shape[-1] if self.kind == "gaussian" else None

    @property
    def observed_steps(self):
        return int((~self.mask).sum())


def casino(num_sequences, min_length, max_length, seed):
    """The occasionally dishonest casino (Durbin et al.): a fair die and a loaded one (P(6) = 1/2), switching
    with probabilities 0.05 (fair -> loaded) and 0.1 back; `num_sequences` rolls of lengths drawn uniformly in
    [min_length, max_length], right-padded."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_length, max_length + 1, num_sequences)
    x = np.zeros((num_sequences, lengths.max()), np.int32)
    states = np.full_like(x, -1)
    for b, n in enumerate(lengths):
        z = rng.choice(2, p=CASINO["initial"])
        for t in range(n):
            states[b, t] = z
            x[b, t] = rng.choice(6, p=CASINO["emission_probs"][z])
            z = rng.choice(2, p=CASINO["transition"][z])
    mask = np.arange(x.shape[1])[None] >= lengths[:, None]
    return Series(x, mask, "categorical", "casino", states=states, truth=CASINO, symbols=[str(i) for i in range(1, 7)])


def chop(values, sequence_length):
    """A long series [N] or [N, D] as rows of `sequence_length` steps (0: one row), the last right-padded.
    NaN (missing) values are masked. Returns (x, mask)."""
    n = len(values)
    length = sequence_length or n
    rows = -(-n // length)
    x = np.full((rows * length,) + values.shape[1:], np.nan)
    x[:n] = values
    x = x.reshape((rows, length) + values.shape[1:])
    missing = np.isnan(x) if x.ndim == 2 else np.isnan(x).any(-1)
    return np.nan_to_num(x), missing


def _as_series(values, kind, name, sequence_length, symbols=None):
    """Series from [N] (one series, chopped into rows), [N, D] (Gaussian: one series of vectors) or
    [B, T] / [B, T, D] (already rows); NaN = missing."""
    values = np.asarray(values, np.float64)
    if values.ndim == 1 or (kind == "gaussian" and values.ndim == 2):
        x, mask = chop(values if kind == "categorical" or values.ndim == 2 else values[:, None], sequence_length)
    else:
        x = values
        mask = np.isnan(x) if x.ndim == 2 else np.isnan(x).any(-1)
        x = np.nan_to_num(x)
    if mask.all():
        raise ZooError(f"{name} has no observed values")
    if kind == "categorical":
        seen = x[~mask]
        if np.any(seen < 0) or np.any(seen != np.round(seen)):
            raise ZooError(f"{name}: categorical observations must be non-negative integer symbols (got values in "
                           f"[{seen.min():g}, {seen.max():g}]); use --emission=gaussian for real values")
        return Series(x.astype(np.int32), mask, kind, name, symbols=symbols)
    return Series(x, mask, kind, name)


def load_series(hp):
    """The run's data from the flags: --input_csv + --column, --input_npy, or the casino."""
    if hp.input_csv:
        from zoo.data.csv_series import read_csv_columns

        if not hp.column:
            raise ZooError("--input_csv needs --column (the column name(s) to model)")
        columns = list(hp.column)
        name = f"{os.path.basename(hp.input_csv)}:{','.join(columns)}"
        if hp.emission == "categorical":
            if len(columns) != 1:
                raise ZooError("--emission=categorical models one --column of symbols; give one column")
            text = read_csv_columns(hp.input_csv, columns, numeric=False)[columns[0]]
            symbols = sorted({s for s in text if s != ""},
                             key=lambda s: (not _is_int(s), int(s) if _is_int(s) else 0, s))
            if all(_is_int(s) and int(s) >= 0 for s in symbols):
                values = np.array([float(s) if s != "" else np.nan for s in text])
                symbols = None
            else:
                index = {s: i for i, s in enumerate(symbols)}
                values = np.array([index[s] if s != "" else np.nan for s in text], np.float64)
            return _as_series(values, "categorical", name, hp.sequence_length, symbols)
        cols = read_csv_columns(hp.input_csv, columns)
        values = np.stack([cols[c] for c in columns], -1)
        return _as_series(values, "gaussian", name, hp.sequence_length)
    if hp.input_npy:
        try:
            values = np.load(hp.input_npy, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ZooError(f"cannot read --input_npy={hp.input_npy} ({str(e).splitlines()[0][:120]}); give a .npy "
                           "array [N], [B, T] or [B, T, D] (NaN = missing)") from None
        if values.ndim not in (1, 2, 3) or values.size == 0 or (hp.emission == "categorical" and values.ndim == 3):
            raise ZooError(f"--input_npy array has shape {list(values.shape)}; give [N] or [B, T] (categorical), "
                           "[N], [N, D] or [B, T, D] (gaussian)")
        return _as_series(values, hp.emission, os.path.basename(hp.input_npy), hp.sequence_length)
    if hp.emission != "categorical" or hp.num_states != 2:
        raise ZooError("the default casino data is categorical with 2 states; give --input_csv or --input_npy for "
                       f"--emission={hp.emission} --num_states={hp.num_states}")
    return casino(hp.num_sequences, hp.min_length, hp.max_length, hp.seed)


def _is_int(s):
    return s.lstrip("-").isdigit()


def make_emission(series, num_symbols=None):
    """The emission layer for `series` (`num_symbols` overrides the count seen in the data)."""
    if series.kind == "categorical":
        return CategoricalEmission(num_symbols or max(series.num_symbols, 2))
    return GaussianEmission(series.dim, covariance="full" if series.dim > 1 else "diag")


def starting_point(series, num_states, num_symbols=None, seed=0):
    """Deterministic starting parameters from the data: sticky transitions (0.9 on the diagonal), and
    emissions near the overall ones (categorical: frequencies times random factors; Gaussian: means at spread
    quantiles, the overall covariance)."""
    rng = np.random.default_rng(seed)
    k = num_states
    off = 0.1 / max(k - 1, 1)
    transition = np.full((k, k), off) + np.eye(k) * (0.9 - off) if k > 1 else np.ones((1, 1))
    params = {"initial": np.full(k, 1.0 / k), "transition": transition}
    seen = series.x[~series.mask]
    if series.kind == "categorical":
        m = num_symbols or max(series.num_symbols, 2)
        freq = np.bincount(seen, minlength=m)[:m] + 1.0
        probs = freq[None] * rng.uniform(0.5, 1.5, size=(k, m))
        params["emission_probs"] = probs / probs.sum(-1, keepdims=True)
    else:
        order = np.argsort(seen[:, 0])
        params["means"] = np.stack([seen[order[int((i + 0.5) / k * (len(order) - 1))]] for i in range(k)])
        cov = np.atleast_2d(np.cov(seen.T)) + 1e-6 * np.eye(series.dim)
        params["covariances"] = (np.stack([np.diag(cov)] * k) if series.dim == 1 else np.stack([cov] * k))
    return params


def dataset_fn(series, global_batch_size, seed):
    """A Trainer `dataset_fn`: the sequences shuffled (seeded) and repeated, per-replica batches."""
    from zoo.data.distribute import per_replica_batch_size, shard

    def fn(ctx):
        x = series.x.astype(np.int32 if series.kind == "categorical" else np.float32)
        # Repeated before sharding, so a worker still gets sequences when there are fewer than input pipelines.
        ds = shard(tf.data.Dataset.from_tensor_slices({"x": x, "mask": series.mask}).repeat(), ctx)
        ds = ds.shuffle(max(len(series.x), 64), seed=seed)
        return ds.batch(per_replica_batch_size(global_batch_size, ctx), drop_remainder=True)

    return fn


def match_states(params, reference, kind):
    """The permutation p of `params`' states closest to `reference`'s (emission parameters), as a list:
    fitted state p[i] plays reference state i."""
    key = "emission_probs" if kind == "categorical" else "means"
    k = len(params["initial"])
    best = min(itertools.permutations(range(k)),
               key=lambda p: np.abs(params[key][list(p)] - reference[key]).sum())
    return list(best)


def permuted(params, p):
    """`params` with states reordered by `match_states`' permutation."""
    out = {"initial": params["initial"][p], "transition": params["transition"][np.ix_(p, p)]}
    for key in ("emission_probs", "means", "covariances"):
        if key in params:
            out[key] = params[key][p]
    return out


def comparison_table(fits, state_names=None, symbols=None):
    """Lines comparing parameter sets side by side: `fits` is an ordered dict name -> parameters (states
    already matched)."""
    names = list(fits)
    first = fits[names[0]]
    k = len(first["initial"])
    labels = state_names or [f"state {i}" for i in range(k)]
    rows = [("initial", i, None) for i in range(k)] + [("transition", i, j) for i in range(k) for j in range(k)]
    if "emission_probs" in first:
        rows += [("emission_probs", i, m) for i in range(k) for m in range(first["emission_probs"].shape[1])]
    else:
        rows += [(key, i, d) for key in ("means", "covariances") for i in range(k)
                 for d in range(first[key].shape[1] if first[key].ndim == 2 else first[key].shape[1] ** 2)]
    lines = ["| parameter | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key, i, j in rows:
        if key == "initial":
            label = f"P(start {labels[i]})"
        elif key == "transition":
            label = f"P({labels[i]} -> {labels[j]})"
        elif key == "emission_probs":
            label = f"P({symbols[j] if symbols else j} | {labels[i]})"
        elif key == "covariances" and first[key].ndim == 3:
            d = first[key].shape[-1]
            label = f"covariance {labels[i]}[{j // d},{j % d}]"
        else:
            label = f"{key[:-1]} {labels[i]}[{j}]"
        values = []
        for name in names:
            v = fits[name][key][i] if j is None else np.ravel(fits[name][key][i])[j]
            values.append(f"{v:.4f}")
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    return lines


def plot_posteriors(path, posteriors, mask, states=None, state_names=None, observations=None):
    """PNG of p(state | data) over time for one sequence (its unpadded steps), the true states shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = int((~mask).nonzero()[0].max()) + 1 if (~mask).any() else len(mask)
    k = posteriors.shape[-1]
    names = state_names or [f"state {i}" for i in range(k)]
    fig, ax = plt.subplots(figsize=(12, 3.5))
    t = np.arange(n)
    if states is not None:
        ax.fill_between(t, 0, 1, where=states[:n] == k - 1, step="mid", color="tab:red", alpha=0.15,
                        label=f"true: {names[-1]}")
    for i in range(1, k) if k == 2 else range(k):
        ax.plot(t, posteriors[:n, i], lw=1.2, label=f"P({names[i]} | data)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("time step")
    ax.set_ylabel("posterior probability")
    ax.set_title("Posterior state probabilities (forward-backward)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def serving_endpoints(hmm, series):
    """`serving_default`: observations [B, T] int32 symbols (or [B, T, D] float32) and mask [B, T] bool (True =
    padding) -> `states` (Viterbi path, -1 on padding), `posteriors` [B, T, K] and `log_likelihood` [B]."""
    if series.kind == "categorical":
        spec = tf.TensorSpec([None, None], tf.int32, name="observations")
    else:
        spec = tf.TensorSpec([None, None, series.dim], tf.float32, name="observations")

    def decode(observations, mask):
        paths, _ = hmm.viterbi(observations, mask=mask)
        posteriors = hmm.posterior_marginals(observations, mask=mask)
        ll = hmm.log_likelihood(observations, mask=mask)
        return {"states": paths, "posteriors": tf.cast(posteriors, tf.float32),
                "log_likelihood": tf.cast(ll, tf.float32)}

    return {"serving_default": (decode, [spec, tf.TensorSpec([None, None], tf.bool, name="mask")])}


def new_hmm(series, num_states, num_symbols=None, dtype="float32"):
    """A `HiddenMarkovModel` for `series`' kind of observations."""
    return HiddenMarkovModel(num_states, make_emission(series, num_symbols), dtype=dtype)


def hmm_with(series, params, num_symbols=None):
    """A float64 HMM holding `params` (to score or decode with any parameter set the same way)."""
    hmm = new_hmm(series, len(params["initial"]), num_symbols, dtype="float64")
    hmm.set_parameters(**params)
    return hmm

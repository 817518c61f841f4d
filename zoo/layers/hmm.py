"""A hidden Markov model as a differentiable Keras layer: forward algorithm, forward-backward, Viterbi,
sampling, Baum-Welch EM, and gradient descent on the negative log-likelihood through `fit` or the Trainer.

    import numpy as np
    from zoo.layers.hmm import HiddenMarkovModel
    from zoo.layers.hmm_emissions import CategoricalEmission

    hmm = HiddenMarkovModel(2, CategoricalEmission(6))
    hmm.set_parameters(initial=[0.5, 0.5], transition=[[0.95, 0.05], [0.1, 0.9]],
                       emission_probs=[[1 / 6] * 6, [0.1] * 5 + [0.5]])
    states, rolls = hmm.sample(300, batch_size=4, seed=0)                 # [4, 300] each
    mask = np.zeros((4, 300), bool); mask[1, 200:] = True                  # True = padding (TFP's convention)
    hmm.log_likelihood(rolls, mask=mask)                                    # [4]
    hmm.posterior_marginals(rolls, mask=mask)                              # [4, 300, 2]
    paths, scores = hmm.viterbi(rolls, mask=mask)                           # paths -1 on padding
    history = hmm.baum_welch(rolls, mask=mask, iterations=20)              # total log-likelihood per iteration

Neural emissions: with `emission=None` the observations *are* the per-step emission log-likelihoods [B, T, K]
(e.g. a network's `log_softmax` output), and every verb also takes `emission_log_probs=` in place of `x`, so
the HMM can be the output layer of a network trained end to end.

`call(x, padding_mask=None)` returns the per-sequence log-likelihood [B]; use its negative (per step) as the
loss. It is not named `mask` so that Keras does not pass it a Keras mask, whose convention (True = keep) is
the opposite of this layer's (True = ignore).
"""

import keras
import numpy as np
from keras import ops

from zoo.errors import ZooError
from zoo.layers import hmm_ops
from zoo.layers.config import Configurable
from zoo.layers.hmm_emissions import check_probabilities, safe_log


@keras.saving.register_keras_serializable(package="zoo")
class HiddenMarkovModel(Configurable, keras.layers.Layer):
    """A K-state HMM with learnable initial and transition logits (rows softmaxed) and an emission layer.

    Args:
        num_states: K.
        emission: a `CategoricalEmission`, `GaussianEmission`, or None (inputs are emission
            log-likelihoods [B, T, K]).
        pseudo_count: Dirichlet-style count added to every expected count in Baum-Welch (no NaN for a
            state or symbol never seen).
        min_variance: added to Gaussian variances in Baum-Welch.
        dtype: float32 (default) or float64; every weight and computation uses it.
    """

    def __init__(self, num_states, emission=None, pseudo_count=1e-6, min_variance=1e-6, **kwargs):
        super().__init__(**kwargs)
        if int(num_states) < 1:
            raise ZooError(f"num_states={num_states} must be at least 1")
        self.num_states = int(num_states)
        self.emission = emission
        self.pseudo_count, self.min_variance = float(pseudo_count), float(min_variance)
        dtype = self.variable_dtype
        self.initial_logits = self.add_weight(shape=(self.num_states,), dtype=dtype, name="initial_logits",
                                              initializer="zeros")
        self.transition_logits = self.add_weight(shape=(self.num_states, self.num_states), dtype=dtype,
                                                 name="transition_logits", initializer="zeros")
        if emission is not None:
            emission.build_states(self.num_states, dtype)
        self.built = True

    # --- parameters ---

    def log_initial(self):
        """[K] log initial probabilities (tensor)."""
        return ops.log_softmax(self.initial_logits)

    def log_transition(self):
        """[K, K] log transition probabilities, row i = from state i (tensor)."""
        return ops.log_softmax(self.transition_logits, axis=-1)

    def parameters(self):
        """NumPy dict: `initial` [K], `transition` [K, K] and the emission's parameters."""
        out = {"initial": np.exp(ops.convert_to_numpy(self.log_initial())),
               "transition": np.exp(ops.convert_to_numpy(self.log_transition()))}
        if self.emission is not None:
            out.update(self.emission.parameters())
        return out

    def set_parameters(self, initial=None, transition=None, **emission_parameters):
        """Sets probabilities explicitly (NumPy-like): `initial` [K], `transition` [K, K] (rows sum to 1), and
        the emission's (`emission_probs`, or `means` and `covariances`). Bad values: one-line `ZooError`."""
        k, dtype = self.num_states, self.variable_dtype
        if initial is not None:
            self.initial_logits.assign(safe_log(check_probabilities("initial", initial, (k,), dtype), dtype))
        if transition is not None:
            self.transition_logits.assign(safe_log(check_probabilities("transition", transition, (k, k), dtype),
                                                   dtype))
        if emission_parameters:
            if self.emission is None:
                raise ZooError(f"this HMM has no emission layer; cannot set {', '.join(emission_parameters)}")
            self.emission.set_parameters(**emission_parameters)

    # --- inputs ---

    def _inputs(self, x, mask, emission_log_probs):
        """(masked emission log-probs [B, T, K] in the layer's dtype, mask or None)."""
        dtype = self.variable_dtype
        if mask is not None:
            mask = ops.cast(mask, "bool")
        if emission_log_probs is None:
            if x is None:
                raise ZooError("give observations x or emission_log_probs")
            if self.emission is None:
                emission_log_probs = x
            else:
                if mask is not None and "float" in str(ops.dtype(x)):  # NaN at masked steps must not reach gradients
                    m = mask if len(ops.shape(x)) == 2 else ops.expand_dims(mask, -1)
                    x = ops.where(m, ops.zeros_like(x), x)
                emission_log_probs = self.emission.log_prob(x)
        lp = ops.cast(emission_log_probs, dtype)
        shape = lp.shape
        if len(shape) != 3 or (shape[-1] is not None and shape[-1] != self.num_states):
            raise ZooError(f"emission log-probabilities must have shape [batch, time, {self.num_states}]; got "
                           f"{[None if s is None else int(s) for s in shape]}")
        if mask is not None and len(mask.shape) != 2:
            raise ZooError(f"mask must have shape [batch, time]; got {list(mask.shape)}")
        if mask is not None and any(m is not None and o is not None and int(m) != int(o)
                                    for m, o in zip(mask.shape, shape[:2])):
            raise ZooError(f"mask has shape {list(mask.shape)} but the observations have [batch, time] = "
                           f"{[None if s is None else int(s) for s in shape[:2]]}; give one mask entry per step")
        return hmm_ops.masked_emissions(lp, mask), mask

    # --- verbs ---

    def call(self, x, padding_mask=None):
        """Per-sequence log-likelihood [B] (observations, or emission log-probs when `emission` is None)."""
        return self.log_likelihood(x, mask=padding_mask)

    def log_likelihood(self, x=None, mask=None, emission_log_probs=None):
        """[B] log p(x) by the forward algorithm in log space; masked steps (True) are ignored."""
        lp, _ = self._inputs(x, mask, emission_log_probs)
        return hmm_ops.log_likelihood(self.log_initial(), self.log_transition(), lp)

    def posterior_marginals(self, x=None, mask=None, emission_log_probs=None):
        """[B, T, K] p(z_t | x) by forward-backward (at padded steps: the chain's prediction, as TFP)."""
        lp, _ = self._inputs(x, mask, emission_log_probs)
        return hmm_ops.posterior_marginals(self.log_initial(), self.log_transition(), lp)[0]

    def viterbi(self, x=None, mask=None, emission_log_probs=None):
        """(paths [B, T] int32, log p(path, x) [B]): the most probable state sequence. Steps after a row's last
        unmasked step are padding: -1 in the path, nothing in the score. Masked steps inside a row are decoded."""
        lp, mask = self._inputs(x, mask, emission_log_probs)
        lengths = hmm_ops.lengths_from_mask(mask, ops.shape(lp)[1])
        return hmm_ops.viterbi(self.log_initial(), self.log_transition(), lp, lengths)

    def sample(self, num_steps, batch_size=1, seed=None):
        """(states [B, T] int32, observations) drawn from the model (`seed`: int or `keras.random.SeedGenerator`).
        Observations: symbols [B, T] (categorical) or vectors [B, T, D] (Gaussian)."""
        if self.emission is None:
            raise ZooError("an HMM with emission=None (neural emissions) cannot sample observations")
        seed = keras.random.SeedGenerator(seed) if seed is None or isinstance(seed, int) else seed
        dtype = self.variable_dtype
        u = keras.random.uniform((batch_size, num_steps), dtype=dtype, seed=seed)
        states = hmm_ops.sample_chain(ops.exp(self.log_initial()), ops.exp(self.log_transition()), u)
        if hasattr(self.emission, "num_symbols"):
            noise = keras.random.uniform((batch_size, num_steps), dtype=dtype, seed=seed)
        else:
            noise = keras.random.normal((batch_size, num_steps, self.emission.dim), dtype=dtype, seed=seed)
        return states, self.emission.sample(states, noise)

    def baum_welch(self, x, mask=None, iterations=10, tolerance=1e-4, verbose=False):
        """Fits every parameter by EM on batched (masked, variable-length) sequences, in place.

        Closed-form M-step for categorical and Gaussian emissions, with `pseudo_count` added to every expected
        count and `min_variance` to Gaussian variances. Stops after `iterations` or when the total
        log-likelihood rises by less than `tolerance`. Returns the total log-likelihood (Σ over sequences)
        before each update and, last, of the final parameters: EM never lowers it.
        """
        if self.emission is None:
            raise ZooError("Baum-Welch needs a categorical or Gaussian emission; train neural emissions by "
                           "gradient descent on the NLL")
        x = np.asarray(x)
        mask = None if mask is None else np.asarray(mask, bool)
        if mask is not None and mask.shape != x.shape[:2]:
            raise ZooError(f"mask has shape {list(mask.shape)}, observations {list(x.shape)}; give [batch, time]")
        self.emission.check_observations(x, mask)
        if mask is not None:
            x = np.where(mask if x.ndim == 2 else mask[..., None], 0, x)
        dtype = self.variable_dtype
        x = ops.convert_to_tensor(x, "int32" if x.ndim == 2 else dtype)
        mask_t = None if mask is None else ops.convert_to_tensor(mask)
        step = hmm_ops.backend_function(self._em_step)
        history = []
        for i in range(int(iterations)):
            history.append(float(ops.convert_to_numpy(step(x, mask_t))))
            if verbose:
                print(f"Baum-Welch iteration {i + 1}: log-likelihood {history[-1]:.6f}", flush=True)
            if i and history[-1] - history[-2] < tolerance:
                break
        lp, _ = self._inputs(x, mask_t, None)
        history.append(float(ops.convert_to_numpy(ops.sum(hmm_ops.log_likelihood(
            self.log_initial(), self.log_transition(), lp)))))
        return history

    def _em_step(self, x, mask):
        """One EM update in place; returns the total log-likelihood before it."""
        lp, _ = self._inputs(x, mask, None)
        stats = hmm_ops.em_statistics(self.log_initial(), self.log_transition(), lp, mask)
        c = self.pseudo_count
        initial = stats["initial_counts"] + c
        transition = stats["transition_counts"] + c
        self.initial_logits.assign(ops.log(initial / ops.sum(initial)))
        self.transition_logits.assign(ops.log(transition / ops.sum(transition, axis=-1, keepdims=True)))
        self.emission.m_step(x, stats["posteriors"], pseudo_count=c, min_variance=self.min_variance)
        return ops.sum(stats["log_likelihood"])

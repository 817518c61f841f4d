"""Losses shared by task models.

`label_smoothed_cross_entropy` is the Transformer's training loss (Vaswani et al. 2017, §5.4: ε_ls = 0.1).
It works from the logits and the integer labels alone, so no one-hot (or smoothed) target tensor of the
vocabulary's size is ever built.
"""

from keras import ops


def label_smoothed_cross_entropy(labels, logits, epsilon=0.1):
    """Per-position cross-entropy against the label-smoothed target distribution.

    The target is `(1 - ε)·onehot(y) + ε/V` over the `V` classes, the convention of Keras'
    `CategoricalCrossentropy(label_smoothing=ε)` and PyTorch's `cross_entropy(label_smoothing=ε)` (the true
    class gets `1 - ε + ε/V`). Tensor2Tensor and fairseq spread ε over the other `V - 1` classes instead
    (`ε/(V-1)` each, the true class exactly `1 - ε`); for a 37k vocabulary the two differ by `ε/V²` per class.

    Computed as `(1 - ε)·(lse(z) - z_y) + ε·(lse(z) - mean(z))`, with `lse` the log-sum-exp of the logits `z`:
    stable for extreme logits, and the logits are cast to float32 first (float16/bfloat16 logits of a mixed
    precision model are fine). The caller weights the positions (e.g. real target tokens only).

    Args:
        labels: integer class ids, shape `[...]`.
        logits: unnormalised scores, shape `[..., V]`, any float dtype.
        epsilon: the smoothing ε in [0, 1]; 0 gives the plain sparse cross-entropy.

    Returns:
        float32 losses of shape `[...]`.

    Example:
        >>> import numpy as np
        >>> losses = label_smoothed_cross_entropy(np.array([[1, 2]]), np.zeros([1, 2, 4]), epsilon=0.1)
        >>> [round(float(x), 4) for x in np.asarray(losses)[0]]  # log(4) for uniform logits
        [1.3863, 1.3863]
    """
    logits = ops.cast(logits, "float32")
    labels = ops.cast(labels, "int32")
    lse = ops.logsumexp(logits, axis=-1)
    true_logit = ops.squeeze(ops.take_along_axis(logits, ops.expand_dims(labels, -1), axis=-1), -1)
    nll = lse - true_logit
    if isinstance(epsilon, (int, float)) and epsilon == 0:
        return nll
    smooth = lse - ops.mean(logits, axis=-1)  # -mean over classes of log p
    return (1.0 - epsilon) * nll + epsilon * smooth

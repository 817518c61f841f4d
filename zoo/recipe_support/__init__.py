"""What several recipes share beyond the flags (`zoo.flags`): whole recipe tails, built from `zoo.training`,
`zoo.data` and the models' public API. Recipes import this package; nothing in `zoo` imports `recipes/`."""


def setup(hp, seed=True):
    """The start every training recipe shares: the dtype policy, the strategy from `--strategy`, the random
    seed, and on the chief the lock on `--model_dir` (taken before any slow data work, so a second run on
    the same directory is refused before it writes anything). Returns `(strategy, is_chief)`."""
    import keras

    from zoo.training import precision, strategy as strategies
    from zoo.training.checkpoints import lock_model_dir

    precision.set_policy(hp.mixed_precision)
    strategy = strategies.from_flag(hp.strategy, hp.tpu, hp.connect_timeout)
    if seed:
        keras.utils.set_random_seed(hp.seed)
    chief = strategies.is_chief(strategy)
    if chief:
        lock_model_dir(hp.model_dir)
    return strategy, chief

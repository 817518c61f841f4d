"""Architecture and hyper-parameter search: the PNAS cell space, its surrogate predictor and KerasTuner oracles.

Example:
    import keras_tuner
    from zoo.search import PNASOracle, SearchSpace, random_search_oracle
    space = SearchSpace(ops=["identity", "sep_3x3", "max_pool_3x3"], max_blocks=2)
    hp = keras_tuner.HyperParameters()
    hp.Float("learning_rate", 1e-3, 1e-1, sampling="log")
    oracle = PNASOracle(space, keras_tuner.Objective("val_top1", "max"), max_trials=30, beam=4,
                        hyperparameters=hp)
    baseline = random_search_oracle(space, keras_tuner.Objective("val_top1", "max"), 30, hyperparameters=hp)
    # keras_tuner.Tuner(oracle=oracle, hypermodel=...) then reads trial.hyperparameters.values["cell"]
"""

from zoo.search.pnas_oracle import PNASOracle, RandomCellOracle, check_search, random_search_oracle
from zoo.search.space import SearchSpace
from zoo.search.surrogate import Surrogate

__all__ = ["PNASOracle", "RandomCellOracle", "SearchSpace", "Surrogate", "check_search", "random_search_oracle"]

"""Model registry: names map to builder functions that return Keras models.

Each model family registers its presets beside its code:

    @register("bert_base")
    def bert_base(**overrides):
        return BertBackbone(**{**BERT_BASE, **overrides})
"""

import fnmatch

from zoo.errors import ZooError

_BUILDERS = {}


def register(name):
    """Decorator: registers `builder(**overrides) -> keras.Model` under `name`."""

    def wrap(builder):
        if name in _BUILDERS and _BUILDERS[name] is not builder:
            raise ValueError(f"model name {name!r} is registered twice")
        _BUILDERS[name] = builder
        return builder

    return wrap


def _load_families():
    import zoo.models  # noqa: F401  (imports every family, which registers its presets)


def list_models(pattern="*"):
    """Sorted registered names matching a shell-style `pattern`."""
    _load_families()
    return sorted(n for n in _BUILDERS if fnmatch.fnmatch(n, pattern))


def create_model(name, **overrides):
    """Builds the registered model `name`; keyword arguments override its config."""
    _load_families()
    if name not in _BUILDERS:
        raise ZooError(f"unknown model {name!r}; choose one of: {', '.join(sorted(_BUILDERS))}")
    return _BUILDERS[name](**overrides)

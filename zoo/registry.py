"""Model registry: every preset is declared once, with the metadata that `python -m zoo list` prints.

A family declares its presets beside its code (`zoo/models/<folder>/<name>_presets.py`), timm style:
one `register` per name, and users see `create_model`, `list_models` and `model_info`.

    BERT = Family("bert", "BERT encoder with pooler", paper="https://arxiv.org/abs/1810.04805",
                  code="https://github.com/google-research/bert")

    @register("bert_tiny", family=BERT, params=4_385_920, description="BERT-Tiny: L=2, H=128, A=2",
              small=dict(vocabulary_size=50, hidden_dim=16), example_inputs=token_batch)
    def bert_tiny(**overrides):
        return BertBackbone(**{**BERT_TINY, **overrides})

    >>> import zoo
    >>> zoo.list_models("bert_*")
    ['bert_base', 'bert_large', 'bert_tiny']
    >>> zoo.model_info("bert_base").params
    109482240
    >>> backbone = zoo.create_model("bert_tiny", dropout=0.0)   # keyword arguments override the preset

`params` is the number of trainable parameters of `create_model(name)`, which is what papers and PyTorch's
`sum(p.numel() for p in model.parameters())` count: BatchNorm moving statistics, image pools and step
counters are not parameters. `params_detail` gives the same count for sub-networks the paper quotes
separately, keyed by the attribute of the built model that holds them (`{"generator_a": 5_513_856}`).
tests/models/test_all_models.py builds every preset and checks both, and tests/test_registry.py checks
that README.md's model table quotes the same numbers (`python -m zoo list --markdown` prints that table).
"""

import dataclasses
import fnmatch
import types
from typing import Callable, Optional

from zoo.errors import ZooError


@dataclasses.dataclass(frozen=True)
class Family:
    """A model family: one row of the model table.

    Args:
        name: short id ("bert").
        description: one line for the table ("BERT encoder with pooler").
        paper: URL of the paper.
        code: URL of the official code, or of the reference implementation followed where there is none
            (say so in `description`).
    """

    name: str
    description: str
    paper: str
    code: str


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one registered name (see the module docstring for `params`).

    `small` are `create_model` overrides giving a small config of the same code paths (tests, examples);
    `example_inputs(model, batch_size, seed)` returns a random input batch for `model(inputs)`.
    """

    name: str
    family: Family
    builder: Callable
    description: str
    params: int
    params_detail: types.MappingProxyType
    small: types.MappingProxyType
    example_inputs: Optional[Callable] = None

    @property
    def paper(self):
        return self.family.paper

    @property
    def code(self):
        return self.family.code

    def create(self, small=False, **overrides):
        """Builds the model; `small=True` applies the `small` overrides first."""
        return self.builder(**{**(self.small if small else {}), **overrides})


_MODELS = {}


def register(name, *, family, params, description=None, params_detail=None, small=None, example_inputs=None):
    """Decorator: registers `builder(**overrides) -> keras.Model` under `name` with its metadata.

    Args:
        name: the name `create_model` takes.
        family: the `Family` this preset belongs to.
        params: trainable parameters of the full-size preset, as the paper or official code counts them.
        description: one line about this preset (defaults to the family's).
        params_detail: {attribute of the built model: its trainable parameters}, for parts the paper quotes.
        small: overrides that give a small config (tests build it).
        example_inputs: `fn(model, batch_size, seed) -> inputs` for a forward pass of `model`.
    """
    if not isinstance(family, Family):
        raise TypeError(f"register({name!r}): family must be a zoo.registry.Family, got {family!r}")
    if not isinstance(params, int) or params <= 0:
        raise TypeError(f"register({name!r}): params must be a positive int, got {params!r}")

    def wrap(builder):
        info = ModelInfo(
            name=name,
            family=family,
            builder=builder,
            description=description or family.description,
            params=params,
            params_detail=types.MappingProxyType(dict(params_detail or {})),
            small=types.MappingProxyType(dict(small or {})),
            example_inputs=example_inputs,
        )
        if name in _MODELS and _MODELS[name].builder is not builder:
            raise ValueError(f"model name {name!r} is registered twice")
        _MODELS[name] = info
        return builder

    return wrap


def _load_families():
    import zoo.models  # noqa: F401  (imports every family, which registers its presets)


def list_models(pattern="*"):
    """Sorted registered names matching a shell-style `pattern`."""
    _load_families()
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def model_info(name):
    """The `ModelInfo` (builder, description, paper, code, params, ...) of the registered model `name`."""
    _load_families()
    if name not in _MODELS:
        raise ZooError(f"unknown model {name!r}; choose one of: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def create_model(name, **overrides):
    """Builds the registered model `name`; keyword arguments override its config."""
    return model_info(name).builder(**overrides)


def families():
    """{family name: [ModelInfo, ...]} in registration order (the order of the model table)."""
    _load_families()
    grouped = {}
    for info in _MODELS.values():
        grouped.setdefault(info.family.name, []).append(info)
    return grouped


def trainable_params(model):
    """Trainable parameters of a built Keras model (the count `ModelInfo.params` quotes)."""
    count = 0
    for v in model.trainable_weights:
        size = 1
        for dim in v.shape:
            size *= int(dim)
        count += size
    return count


# === Tables ===


def _detail_text(detail):
    return ", ".join(f"{part} {count:,}" for part, count in detail.items())


def family_params_text(infos):
    """The model table's parameters cell: each preset's count in order, " / "-separated, with its
    `params_detail` in brackets where it differs from the previous preset's."""
    texts, previous = [], {}
    for info in infos:
        text = f"{info.params:,}"
        if info.params_detail and dict(info.params_detail) != previous:
            text += f" ({_detail_text(info.params_detail)})"
        previous = dict(info.params_detail)
        texts.append(text)
    return " / ".join(texts)


def _code_label(url):
    prefix = "https://github.com/"
    return url[len(prefix):].strip("/") if url.startswith(prefix) else "code"


MARKDOWN_HEADER = ("| name (`zoo.create_model`) | what | trainable parameters (checked by a test) |\n"
                   "|---|---|---|")


def markdown_table():
    """README.md's model table: one row per family."""
    rows = [MARKDOWN_HEADER]
    for infos in families().values():
        family = infos[0].family
        names = ", ".join(f"`{info.name}`" for info in infos)
        what = f"{family.description} ([paper]({family.paper}), [{_code_label(family.code)}]({family.code}))"
        rows.append(f"| {names} | {what} | {family_params_text(infos)} |")
    return "\n".join(rows)


def text_table(pattern="*"):
    """One line per registered name matching `pattern`: name, trainable parameters, description, reference
    (paper, code); None when no name matches."""
    rows = [("name", "parameters", "description", "reference")]
    for infos in families().values():
        for info in infos:
            if not fnmatch.fnmatch(info.name, pattern):
                continue
            params = f"{info.params:,}"
            if info.params_detail:
                params += f" ({_detail_text(info.params_detail)})"
            reference = " ".join(url.replace("https://", "") for url in (info.paper, info.code))
            rows.append((info.name, params, info.description, reference))
    if len(rows) == 1:
        return None
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths + [0])).rstrip()
                      for row in rows)

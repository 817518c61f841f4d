"""The model registry: metadata, `create_model` / `list_models` / `model_info`, `python -m zoo list`, and
README.md's model table against the registry. (tests/models/test_all_models.py builds every model.)"""

import pathlib
import re
import subprocess
import sys

import keras
import pytest

import zoo
import zoo.__main__
from zoo import registry

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _numbers(text):
    """The integers written in `text` ("4,385,920 / 109,482,240" -> [4385920, 109482240])."""
    return [int(n.replace(",", "")) for n in re.findall(r"\d{1,3}(?:,\d{3})+|\d+", text)]


def _readme_model_rows():
    section = README.read_text(encoding="utf-8").split("\n## Models\n", 1)[1].split("\n## ", 1)[0]
    lines = [line.strip() for line in section.splitlines() if line.startswith("|")]
    assert len(lines) > 2 and set(lines[1]) <= set("|-: "), "README.md's ## Models section has no table"
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_readme_model_table_agrees_with_the_registry():
    fix = "; paste the rows of `python -m zoo list --markdown` into README.md's ## Models table"
    families = registry.families()
    by_names = {tuple(info.name for info in infos): infos for infos in families.values()}
    seen = set()
    for names_cell, what, params_cell in _readme_model_rows():
        names = tuple(re.findall(r"`([a-z0-9_]+)`", names_cell))
        assert names in by_names, f"README row {names} is not a registered family's names in order{fix}"
        infos = by_names[names]
        assert _numbers(params_cell) == _numbers(registry.family_params_text(infos)), f"{names}{fix}"
        assert infos[0].paper in what and infos[0].code in what, f"{names}: reference links differ{fix}"
        seen.add(infos[0].family.name)
    assert seen == set(families), f"families missing from README.md: {sorted(set(families) - seen)}{fix}"


def test_markdown_table_passes_the_readme_check():
    lines = registry.markdown_table().splitlines()
    assert lines[:2] == registry.MARKDOWN_HEADER.splitlines() and len(lines) == 2 + len(registry.families())
    bert = next(line for line in lines if "`bert_tiny`" in line)
    assert bert.endswith("| 4,385,920 / 109,482,240 / 335,141,888 |")
    assert "[google-research/bert](https://github.com/google-research/bert)" in bert


def test_model_info_and_lookup_errors():
    info = zoo.model_info("bert_base")
    assert (info.name, info.family.name, info.params) == ("bert_base", "bert", 109_482_240)
    assert info.paper == "https://arxiv.org/abs/1810.04805" and info.code == "https://github.com/google-research/bert"
    assert zoo.model_info("cyclegan").params_detail == {"generator_a": 11_378_179, "discriminator_a": 2_764_737}
    assert zoo.list_models("bert_*") == ["bert_base", "bert_large", "bert_tiny"]
    assert zoo.list_models() == sorted(n for infos in registry.families().values() for n in (i.name for i in infos))
    for lookup in (zoo.model_info, zoo.create_model):
        with pytest.raises(zoo.ZooError, match=r"unknown model 'bert_huge'; choose one of: bert_base, "):
            lookup("bert_huge")


def test_create_model_applies_overrides_and_small_config():
    info = zoo.model_info("bert_large")
    model = zoo.create_model("bert_large", **{**info.small, "num_layers": 1})
    assert (model.num_layers, model.hidden_dim, model.vocabulary_size) == (1, 16, 50)
    assert info.create(small=True, hidden_dim=8).hidden_dim == 8
    keras.backend.clear_session()


def test_register_checks_its_arguments(monkeypatch):
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    family = registry.Family("toy", "A toy", paper="https://example.org/p", code="https://github.com/o/toy")

    @registry.register("toy_dense", family=family, params=3, description="Dense(1) on 2 features")
    def toy_dense(units=1):
        return keras.Sequential([keras.Input((2,)), keras.layers.Dense(units)])

    assert zoo.model_info("toy_dense").description == "Dense(1) on 2 features"
    assert registry.trainable_params(zoo.create_model("toy_dense", units=4)) == 12
    assert registry.family_params_text(registry.families()["toy"]) == "3"
    registry.register("toy_dense", family=family, params=3)(toy_dense)  # the same builder again: fine
    with pytest.raises(ValueError, match="'toy_dense' is registered twice"):
        registry.register("toy_dense", family=family, params=3)(lambda: None)
    with pytest.raises(TypeError, match="params must be a positive int"):
        registry.register("toy_bad", family=family, params=1.5e6)
    with pytest.raises(TypeError, match="family must be a zoo.registry.Family"):
        registry.register("toy_bad", family="toy", params=1)
    keras.backend.clear_session()


def test_trainable_params_skips_moving_statistics():
    model = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
    assert registry.trainable_params(model) == 8 and model.count_params() == 16


def test_family_params_text_shows_details_where_they_change():
    assert registry.family_params_text(registry.families()["discogan"]) == (
        "16,558,848 (generator_a 5,513,856, discriminator_a 2,765,568) / 16,558,848 / 16,558,848 / "
        "19,838,096 (generator_a 7,153,480, discriminator_a 2,765,568)")


def test_list_command(capsys):
    assert zoo.__main__.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "parameters", "description", "reference"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert sorted(rows) == zoo.list_models()
    assert rows["bert_base"].split()[1] == "109,482,240"
    assert "arxiv.org/abs/1810.04805 github.com/google-research/bert" in rows["bert_base"]
    assert zoo.__main__.main(["list", "dgr_*"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == [
        "dgr_generator", "dgr_critic", "dgr_solver"]
    assert zoo.__main__.main(["list", "--markdown"]) == 0
    assert capsys.readouterr().out == registry.markdown_table() + "\n"
    assert zoo.__main__.main(["list", "resnet*"]) == 2
    assert capsys.readouterr().err == "error: no model matches 'resnet*'; `python -m zoo list` shows them all\n"


@pytest.mark.slow
def test_python_dash_m_zoo_list():
    result = subprocess.run([sys.executable, "-m", "zoo", "list", "cyclegan*"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [line.split()[:2] for line in result.stdout.splitlines()[1:]] == [
        ["cyclegan", "28,285,832"], ["cyclegan_6blocks", "21,204,872"]]

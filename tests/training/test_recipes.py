"""Recipes: the shipped ones read and hold the reference's values; bad recipes are explained."""

import pytest

from vlsurgery.errors import VLSurgeryError
from vlsurgery.training import RecipeError, load_recipe, recipe_names, recipe_path
from vlsurgery.training.recipes import merge, split


def test_shipped_recipes_and_the_paper_values():
    assert {"demo", "paper/vl-bart", "paper/vl-t5"} <= set(recipe_names())
    bart, t5 = load_recipe("paper/vl-bart"), load_recipe("paper/vl-t5.yaml")
    assert (bart["learning_rate"], bart["per_device_train_batch_size"]) == (1e-3, 500)
    assert (t5["learning_rate"], t5["per_device_train_batch_size"]) == (3e-4, 300)
    for r in (bart, t5):
        assert r["optim"] == "adamw_torch" and r["warmup_steps"] == 0.1 and r["max_grad_norm"] == 5.0
        assert r["num_train_epochs"] == 20 and r["beams"] == 5 and r["prompt"] == "vqa:"


def test_unknown_key_is_an_error_with_did_you_mean(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("learning_rat: 0.1\n")
    with pytest.raises(RecipeError, match=r"r\.yaml: unknown recipe key 'learning_rat'.*did you mean 'learning_rate'"):
        load_recipe(path)
    assert issubclass(RecipeError, VLSurgeryError)


@pytest.mark.parametrize("text, message", [
    ("learning_rate: fast\n", r"'learning_rate' is 'fast' \(str\): expected float"),
    ("max_steps: 1.5\n", r"'max_steps' is 1.5 \(float\): expected int"),
    ("bf16: 1\n", r"'bf16' is 1 \(int\): expected bool"),
    ("beams: true\n", r"'beams' is True \(bool\): expected int"),
    ("- a\n- b\n", "a YAML list: expected a mapping"),
    ("a: [\n", "not valid YAML"),
])
def test_wrong_values_name_the_file_and_what_was_expected(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError, match=message) as info:
        load_recipe(path)
    assert "bad.yaml" in str(info.value)


def test_missing_recipe_names_the_choices():
    with pytest.raises(RecipeError, match=r"no shipped recipe.*did you mean 'demo'"):
        recipe_path("dmeo")


def test_overrides_win_and_split_separates_our_keys():
    settings = merge(load_recipe("demo"), {"learning_rate": 0.5, "beams": 3, "max_steps": None})
    assert settings["learning_rate"] == 0.5 and settings["max_steps"] == 1500
    trainer, ours = split(settings)
    assert "beams" not in trainer and ours["beams"] == 3 and trainer["learning_rate"] == 0.5
    with pytest.raises(RecipeError, match="override: unknown recipe key 'lr'"):
        merge({}, {"lr": 1.0})

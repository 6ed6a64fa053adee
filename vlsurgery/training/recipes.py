"""Training recipes: YAML files that map onto ``Seq2SeqTrainingArguments`` plus a few keys of ours.

A recipe is a flat YAML mapping.  Every key is either a field of
:class:`transformers.Seq2SeqTrainingArguments` (``learning_rate``, ``warmup_ratio``,
``max_grad_norm``, ``num_train_epochs``, ``per_device_train_batch_size``, ``bf16``, ...) or one of
:data:`OWN_KEYS` (the task prompt, beams, the longest answer, data sizes).  An unknown key, or a
value of the wrong type, is a :class:`RecipeError` naming the file, the key and what was expected
(with a did-you-mean).  Keyword/command-line overrides win over the file (:func:`merge`).

Shipped recipes live in the top-level ``recipes/`` folder (``vlsurgery/_data/recipes`` in a
wheel); :func:`recipe_path` finds ``NAME`` (``paper/vl-bart``, ``demo``) there, or takes a path.
"""

from __future__ import annotations

import dataclasses
import typing
from functools import lru_cache
from pathlib import Path

from vlsurgery.errors import VLSurgeryError, did_you_mean
from vlsurgery.resources import data_dir

RECIPE_SUFFIXES = (".yaml", ".yml")

#: Our keys, beyond Seq2SeqTrainingArguments: name -> (type(s), default, meaning).
OWN_KEYS: dict[str, tuple[tuple[type, ...], object, str]] = {
    "prompt": ((str,), None, "task prompt put before every question (default: the data's own, e.g. 'vqa:')"),
    "caption_prompt": ((str,), None, "task prompt of caption data (default: the data's own, 'caption:')"),
    "caption_length": ((int,), 20, "most tokens a caption may be generated with"),
    "beams": ((int,), 1, "beams of beam search when evaluating (the reference: 5)"),
    "max_answer_length": ((int,), 8, "most tokens an answer may be generated with"),
    "train_size": ((int,), None, "shapes task: training examples (default 4000)"),
    "eval_size": ((int,), None, "shapes task: validation examples (default 500)"),
    "data_seed_task": ((int,), 0, "shapes task: the seed that generates the scenes"),
    "backbone_dropout": ((float, int), None, "set the backbone's dropout rate (0 makes runs exactly repeatable)"),
}


class RecipeError(VLSurgeryError, ValueError):
    """A recipe that cannot be read or does not fit: names the file, the key and what was expected."""


@lru_cache(maxsize=1)
def trainer_fields() -> dict[str, dataclasses.Field]:
    """name -> field of ``Seq2SeqTrainingArguments`` that a recipe may set (init fields only)."""
    from transformers import Seq2SeqTrainingArguments

    return {f.name: f for f in dataclasses.fields(Seq2SeqTrainingArguments) if f.init}


def recipe_library() -> Path:
    """The shipped recipes folder (``recipes/``)."""
    return data_dir("recipes")


def recipe_names() -> list[str]:
    """Names of the shipped recipes, e.g. ``['demo', 'paper/vl-bart', 'paper/vl-t5']``."""
    root = recipe_library()
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*")
                  if p.suffix in RECIPE_SUFFIXES and p.is_file())


def recipe_path(name_or_path) -> Path:
    """A recipe file: an existing path, else a shipped recipe name (with or without ``.yaml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.suffix not in RECIPE_SUFFIXES or not path.is_absolute():
        stem = str(name_or_path).removesuffix(".yaml").removesuffix(".yml")
        for suffix in RECIPE_SUFFIXES:
            candidate = recipe_library() / (stem + suffix)
            if candidate.is_file():
                return candidate
    names = recipe_names()
    hint = did_you_mean(str(name_or_path), names)
    raise RecipeError(f"recipe {name_or_path!r}: no such file, and no shipped recipe of that name: expected a YAML "
                      f"file or one of {', '.join(names)}" + (f" ({hint})" if hint else ""))


def _allowed_types(name: str) -> tuple[type, ...] | None:
    """The Python types a value for ``name`` may have; None: anything (a free-form field)."""
    if name in OWN_KEYS:
        return OWN_KEYS[name][0]
    annotation = trainer_fields()[name].type
    if isinstance(annotation, str):  # postponed annotations: read the text
        text = annotation.replace(" ", "")
        out = tuple(t for word, t in (("bool", bool), ("int", int), ("float", float), ("str", str)) if word in text)
        if "list" in text or "dict" in text or "Any" in text or not out:
            return None
        return out + ((int,) if float in out and int not in out else ())
    args = typing.get_args(annotation) or (annotation,)
    simple = tuple(a for a in args if a in (bool, int, float, str))
    if len(simple) != len([a for a in args if a is not type(None)]):
        return None  # enums, lists, dicts: let the Trainer's own checks speak
    return simple + ((int,) if float in simple and int not in simple else ())


def check_value(name: str, value, source: str):
    """``value`` for key ``name``, or a RecipeError saying what was expected."""
    if name not in OWN_KEYS and name not in trainer_fields():
        hint = did_you_mean(name, [*OWN_KEYS, *trainer_fields()])
        raise RecipeError(f"{source}: unknown recipe key '{name}': expected a Seq2SeqTrainingArguments field or one "
                          f"of {', '.join(OWN_KEYS)}" + (f" ({hint})" if hint else ""))
    if isinstance(value, bool) and name in trainer_fields() and isinstance(trainer_fields()[name].default, str):
        value = "yes" if value else "no"  # YAML 1.1 reads an unquoted no as False: eval_strategy: no
    allowed = _allowed_types(name)
    if value is None or allowed is None:
        return value
    ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
    if not ok and isinstance(value, str) and (float in allowed or int in allowed):
        try:  # YAML reads 1e-3 as a string: accept a number written that way
            value, ok = (float(value) if float in allowed else int(value)), True
        except ValueError:
            pass
    if not ok:
        want = " or ".join(t.__name__ for t in allowed)
        raise RecipeError(f"{source}: recipe key '{name}' is {value!r} ({type(value).__name__}): expected {want}")
    return value


def load_recipe(name_or_path) -> dict:
    """Read and check a recipe file (see the module docstring); ``None`` gives ``{}``."""
    if name_or_path is None:
        return {}
    if isinstance(name_or_path, dict):
        return {k: check_value(k, v, "recipe") for k, v in name_or_path.items()}
    import yaml

    path = recipe_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: cannot be read ({exc}): expected a YAML recipe") from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML ({exc}): expected a mapping of recipe keys") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a YAML {type(data).__name__}: expected a mapping of recipe keys to values")
    return {str(k): check_value(str(k), v, str(path)) for k, v in data.items()}


def merge(recipe: dict, overrides: dict) -> dict:
    """The recipe with ``overrides`` applied (None in an override means: not given)."""
    out = dict(recipe)
    out.update({k: check_value(k, v, "override") for k, v in overrides.items() if v is not None})
    return out


def split(settings: dict) -> tuple[dict, dict]:
    """(Seq2SeqTrainingArguments keywords, our keys with their defaults filled in)."""
    ours = {k: settings.get(k, default) for k, (_, default, _) in OWN_KEYS.items()}
    return {k: v for k, v in settings.items() if k not in OWN_KEYS}, ours

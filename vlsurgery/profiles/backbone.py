"""Turning "a backbone" into a config and a profile, offline.

Wherever vlsurgery expects a backbone it takes any of:

- a preset name shipped with the package (``bart-base``, ``t5-3b``, ``tiny-bart``...; see
  ``vlsurgery/profiles/presets/*.json``), or the hub name of a preset (``facebook/bart-base``),
  which resolves to the preset without touching the network;
- a local Hugging Face directory (or its ``config.json``), read with ``AutoConfig.from_pretrained``;
- any other hub name, read with ``AutoConfig.from_pretrained`` (from the local cache when offline);
- a ``PretrainedConfig`` object, or a model instance (its ``.config``; counts then come from the
  model's own parameters, which is exact even for checkpoints that untie embeddings).

The family is chosen by ``config.model_type``; an unknown one is a :class:`BackboneError` that
lists the supported families.
"""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace
from pathlib import Path

from vlsurgery import caches
from vlsurgery.errors import BackboneError, nearest
from vlsurgery.profiles.families import family_of
from vlsurgery.profiles.profile import Profile

PRESETS_DIR = Path(__file__).resolve().parent / "presets"


class Backbone:
    """A resolved backbone: the name the user gave, its profile, its config and maybe a model.

    For a shipped preset the transformers config is built only when ``config`` is first read: the
    profile comes straight from the preset's JSON, so planning and counting never import
    transformers.
    """

    def __init__(self, name: str, profile: Profile, config=None, *, preset: str | None = None, model=None):
        self.name, self.profile, self.preset, self.model = name, profile, preset, model
        self._config = config

    @property
    def config(self):
        if self._config is None and self.preset is not None:
            self._config = preset_config(self.preset)
        return self._config

    def __repr__(self) -> str:
        return f"Backbone({self.name!r}, {self.profile.describe()})"


def preset_names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in PRESETS_DIR.glob("*.json")))


@caches.memoize("profiles.preset_data")
def _preset_data(name: str) -> dict:
    return json.loads((PRESETS_DIR / f"{name}.json").read_text())


@caches.memoize("profiles.hub_aliases")
def _hub_aliases() -> dict[str, str]:
    out = {}
    for name in preset_names():
        hub = _preset_data(name).get("hub")
        if hub:
            out[hub] = name
            out[hub.split("/")[-1]] = name
    return out


def preset_config(name: str):
    """A fresh ``PretrainedConfig`` for a shipped preset."""
    from transformers import AutoConfig

    data = dict(_preset_data(name)["config"])
    return AutoConfig.for_model(data.pop("model_type"), **data)


@caches.memoize("profiles.preset_profile")
def preset_profile(name: str) -> Profile:
    """The profile of a preset, from its JSON alone (no transformers import: fast)."""
    data = dict(_preset_data(name)["config"])
    config = SimpleNamespace(**{"num_decoder_layers": None, **data})
    return family_of(config).make_profile(config)


_PROFILES = caches.table("profiles.by_config")


def profile_of(config) -> Profile:
    """The profile of a config; cached by the config's content (a profile is pure data)."""
    family = family_of(config)
    key = config.to_json_string(use_diff=False)
    profile = _PROFILES.get(key)
    if profile is None:
        try:
            profile = family.make_profile(config)
        except (AttributeError, TypeError) as exc:
            raise BackboneError(f"the {family.name} config is missing a field vlsurgery needs: {exc}") from exc
        _PROFILES[key] = profile
    return profile


def load_backbone(backbone) -> Backbone:
    """Resolve a preset name, hub name, local path, config or model to a :class:`Backbone`."""
    if isinstance(backbone, Backbone):
        return backbone
    if backbone is None:
        raise BackboneError("no backbone: name one in the spec (`backbone bart-base`) or pass one "
                            "(--backbone NAME|PATH, or plan(spec, backbone=...))")
    if isinstance(backbone, (str, Path)):
        return _from_name(str(backbone))
    from transformers import PretrainedConfig

    if isinstance(backbone, PretrainedConfig):
        name = getattr(backbone, "name_or_path", "") or backbone.model_type
        return Backbone(name, profile_of(backbone), backbone)
    config = getattr(backbone, "config", None)
    if isinstance(config, PretrainedConfig):
        name = getattr(config, "name_or_path", "") or type(backbone).__name__
        # The model itself is the truth about its parameters (e.g. whether lm_head is tied).
        actual = tuple((n, tuple(p.shape)) for n, p in backbone.named_parameters())
        profile = dataclasses.replace(profile_of(config), parameter_shapes=actual)
        return Backbone(name, profile, config, model=backbone)
    raise BackboneError(f"cannot use a {type(backbone).__name__} as a backbone: expected a preset name, a hub "
                        "name, a local model directory, a PretrainedConfig or a model")


def _from_name(name: str) -> Backbone:
    preset = name if name in preset_names() else _hub_aliases().get(name)
    if preset is not None:
        return Backbone(name, preset_profile(preset), preset=preset)
    path = Path(name).expanduser()
    if path.exists():
        source = path.parent if path.is_file() else path
        if not (source / "config.json").is_file():
            raise BackboneError(f"backbone path '{name}' has no config.json")
        config = _auto_config(str(source.resolve()), name)
        return Backbone(name, profile_of(config), config)
    looks_local = name.startswith((".", "/", "~")) or name.endswith(".json") or name.count("/") > 1
    if looks_local:
        raise BackboneError(f"backbone path '{name}' does not exist")
    config = _auto_config(name, name)
    return Backbone(name, profile_of(config), config)


@caches.memoize("profiles.auto_config", maxsize=64)
def _auto_config(source: str, name: str):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source)
    except Exception as exc:  # transformers raises OSError, ValueError, EnvironmentError...
        guess = nearest(name, preset_names())
        hint = f" Did you mean the preset '{guess}'?" if guess else ""
        raise BackboneError(f"unknown backbone '{name}': not a preset, a local model directory, or a hub model "
                            f"available offline ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})."
                            f"{hint} Presets: {', '.join(preset_names())}") from exc


def load_model(backbone, *, seed: int = 0):
    """A seq2seq model for a backbone: pretrained weights from a local directory or the hub cache,
    random weights (seeded) for a preset, which carries an architecture but no weights.

    Returns ``(model, pretrained)``.
    """
    import torch
    from transformers import AutoModelForSeq2SeqLM

    b = load_backbone(backbone)
    if b.model is not None:
        return b.model, True
    if b.preset is None:
        try:
            return AutoModelForSeq2SeqLM.from_pretrained(b.name), True
        except Exception as exc:  # no weights available offline: say so, don't train on noise silently
            raise BackboneError(f"cannot load the weights of '{b.name}' ({type(exc).__name__}); use a preset "
                                f"({', '.join(preset_names())}) for random weights") from exc
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoModelForSeq2SeqLM.from_config(b.config), False

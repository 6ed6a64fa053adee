"""Turning "a backbone" into a config and a profile, offline.

Wherever vlsurgery expects a backbone it takes any of:

- a preset name shipped with the package (``bart-base``, ``t5-3b``, ``tiny-bart``...; see
  ``vlsurgery/profiles/presets/*.json``), or the hub name of a preset (``facebook/bart-base``),
  which resolves to the preset without touching the network;
- a local Hugging Face directory (or its ``config.json``), read with ``AutoConfig.from_pretrained``;
  where the family's ``lm_head`` follows the checkpoint (T5), its weight files are looked into;
- a hub name ``organisation/name``: its ``config.json`` from the local Hugging Face cache, else
  fetched from the hub with one request (a warning says so; an error says what the hub answered);
- a ``PretrainedConfig`` object, or a model instance (its ``.config``; counts then come from the
  model's own parameters, which is exact even for checkpoints that untie embeddings).

Presets and local paths answer at once and offline.  Any other name is a :class:`BackboneError`
at once, with the nearest preset when one is close (``bart-bas`` -> ``bart-base``): the hub is
reached only for names of the form ``organisation/name``.  The family is chosen by
``config.model_type``; an unknown one is a :class:`BackboneError` that lists the supported families.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from types import SimpleNamespace
from pathlib import Path

from vlsurgery import caches
from vlsurgery.errors import BackboneError, UsageError, nearest
from vlsurgery.profiles.checkpoint import WEIGHT_PATTERNS, stores_tensor, weight_files
from vlsurgery.profiles.families import family_of
from vlsurgery.profiles.profile import Profile

PRESETS_DIR = Path(__file__).resolve().parent / "presets"


class Backbone:
    """A resolved backbone: the name the user gave, its profile, its config and maybe a model.

    For a shipped preset the transformers config is built only when ``config`` is first read: the
    profile comes straight from the preset's JSON, so planning and counting never import
    transformers.
    """

    def __init__(self, name: str, profile: Profile, config=None, *, preset: str | None = None, model=None,
                 directory: Path | None = None, hub: bool = False):
        self.name, self.profile, self.preset, self.model = name, profile, preset, model
        self.directory = directory  # where config.json (and maybe weights) are: local or the hub cache
        self.hub = hub  # a hub model (weights come from the hub or its cache)
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


_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_log = logging.getLogger("vlsurgery")


def _from_name(name: str) -> Backbone:
    preset = name if name in preset_names() else _hub_aliases().get(name)
    if preset is not None:
        return Backbone(name, preset_profile(preset), preset=preset)
    path = Path(name).expanduser()
    if path.exists():
        source = path.parent if path.is_file() else path
        if not (source / "config.json").is_file():
            raise BackboneError(f"backbone path '{name}' has no config.json: expected a Hugging Face model "
                                "directory (config.json, and weights for `compile`)")
        config = _auto_config(str(source.resolve()), name)
        return Backbone(name, _checkpoint_profile(config, source, hub=False), config, directory=source)
    problem = backbone_name_problem(name)
    if problem is not None:
        tail = "" if problem.endswith("does not exist") else (
            f" Hub models are named organisation/name (facebook/bart-base). Presets: {', '.join(preset_names())}")
        raise BackboneError(problem + tail)
    directory = _hub_directory(name)
    config = _auto_config(str(directory), name)
    return Backbone(name, _checkpoint_profile(config, directory, hub=True), config, directory=directory, hub=True)


def known_offline(name: str) -> bool:
    """Whether ``name`` is a preset, a preset's hub name or an existing path: usable with no network."""
    return name in preset_names() or name in _hub_aliases() or Path(name).expanduser().exists()


def backbone_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a backbone, decided offline and at once (for ``check``); None when it
    is a preset, an existing path or has the form of a hub name (``organisation/name``).

    >>> backbone_name_problem("bart-base") is None, backbone_name_problem("facebook/whatever") is None
    (True, True)
    >>> backbone_name_problem("bart-bas")
    "unknown backbone 'bart-bas': not a preset and not a local directory. Did you mean the preset 'bart-base'?"
    """
    if known_offline(name):
        return None
    if name.startswith((".", "/", "~")) or name.endswith(".json") or name.count("/") > 1:
        return f"backbone path '{name}' does not exist"
    if _HUB_NAME.fullmatch(name):
        return None
    return f"unknown backbone '{name}': not a preset and not a local directory.{_hint(name)}"


def _hint(name: str) -> str:
    guess = nearest(name, preset_names()) or _hub_aliases().get(nearest(name, _hub_aliases()) or "")
    return f" Did you mean the preset '{guess}'?" if guess else ""


_HUB_LOOKUPS = caches.table("profiles.hub_lookups")


def _hub_directory(name: str) -> Path:
    """The directory holding ``name``'s config.json: the local hub cache, else one request to the
    hub (once per process and name, failures included)."""
    found = _HUB_LOOKUPS.get(name)
    if found is None:
        found = _HUB_LOOKUPS[name] = _lookup_hub(name)
    if isinstance(found, BackboneError):
        raise found
    return found


def _lookup_hub(name: str) -> Path | BackboneError:
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url

    try:
        return Path(hf_hub_download(name, "config.json", local_files_only=True)).parent
    except Exception:  # not in the cache: the hub may know it
        pass
    if constants.HF_HUB_OFFLINE:
        return BackboneError(f"unknown backbone '{name}': not a preset, and not in the local Hugging Face cache "
                             f"(HF_HUB_OFFLINE is set, so the hub was not asked).{_hint(name)} "
                             f"Presets: {', '.join(preset_names())}")
    _log.warning("vlsurgery: '%s' is not a preset or in the local cache: asking the Hugging Face hub "
                 "for its config.json (one request)", name)
    try:  # one request without retries (hf_hub_download retries a failing one for ~20 s), then the file
        get_hf_file_metadata(hf_hub_url(name, "config.json"), timeout=10, retry_on_errors=False)
        return Path(hf_hub_download(name, "config.json", etag_timeout=10)).parent
    except Exception as exc:  # huggingface_hub raises many kinds (network, 404, gated repo...)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return BackboneError(f"unknown backbone '{name}': asked the Hugging Face hub once and got "
                             f"{type(exc).__name__}: {reason[:160]}.{_hint(name)} "
                             f"Presets: {', '.join(preset_names())}")


@caches.memoize("profiles.auto_config", maxsize=64)
def _auto_config(source: str, name: str):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source)
    except Exception as exc:  # transformers raises OSError, ValueError, EnvironmentError...
        raise BackboneError(f"cannot read the config of backbone '{name}' ({source}): {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc


def _checkpoint_profile(config, directory: Path, *, hub: bool) -> Profile:
    """The profile of ``config`` as ``from_pretrained(directory)`` builds the model: for families
    whose ``lm_head`` follows the checkpoint (T5), it is untied exactly when the weight files store
    one.  Without weight files a local directory is built from its config (tied); a hub checkpoint
    not downloaded yet follows its config's record of ``tie_word_embeddings: false``."""
    profile = profile_of(config)
    if not family_of(config).lm_head_from_checkpoint:
        return profile
    stored = stores_tensor(directory, "lm_head.weight")
    if stored is None:
        stored = hub and getattr(config, "scale_decoder_outputs", None) is False
    return with_lm_head(profile, stored)


def with_lm_head(profile: Profile, untied: bool) -> Profile:
    """``profile`` with (``untied``) or without a separate ``lm_head.weight``, last in the table."""
    shapes = dict(profile.parameter_shapes)
    if ("lm_head.weight" in shapes) == untied:
        return profile
    if untied:
        shapes["lm_head.weight"] = shapes[profile.token_embedding]
    else:
        del shapes["lm_head.weight"]
    return dataclasses.replace(profile, parameter_shapes=tuple(shapes.items()))


WEIGHTS = ("auto", "pretrained", "random")


def load_model(backbone, *, seed: int = 0, weights: str = "auto"):
    """The model of a backbone (its profile's ``model_class``: seq2seq, causal LM...).  Returns
    ``(model, pretrained)``.

    ``weights``: ``"auto"`` loads the weights of a local directory or hub model and builds a preset
    (an architecture without weights) with random weights; ``"pretrained"`` insists on loaded
    weights; ``"random"`` builds any backbone from its config with random weights (seeded by
    ``seed``), e.g. a directory that holds only a config.json.  A random model has the parameters
    ``vlsurgery count`` predicts (an untied preset's ``lm_head`` gets its own tensor).
    """
    import torch

    if weights not in WEIGHTS:
        raise UsageError(f"weights={weights!r}: expected one of {', '.join(map(repr, WEIGHTS))}")
    b = load_backbone(backbone)
    if b.model is not None:
        return b.model, True
    local = b.directory is not None and not b.hub
    if weights != "random" and local and not weight_files(b.directory):
        # a local directory without weights: never train on noise silently
        raise BackboneError(f"backbone directory '{b.name}' has a config.json but no weights (expected one "
                                f"of {', '.join(WEIGHT_PATTERNS)}): add the weights, or ask for random weights "
                                "explicitly (`vlsurgery compile --random-weights`, load_model(..., weights='random'))")
    if b.preset is not None and weights == "pretrained" and not _preset_data(b.preset).get("hub"):
        raise BackboneError(f"the preset '{b.preset}' is an architecture without a checkpoint: it has only "
                            "random weights (weights='random' or 'auto')")
    if weights == "random" or (weights == "auto" and b.preset is not None):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = auto_class(b.profile).from_config(b.config)
        return _untie_as_profiled(model, b.profile), False
    source = str(b.directory) if local else (_preset_data(b.preset)["hub"] if b.preset else b.name)
    try:
        return auto_class(b.profile).from_pretrained(source), True
    except Exception as exc:  # no weights available offline: say so, don't train on noise silently
        raise BackboneError(f"cannot load the weights of '{b.name}' ({type(exc).__name__}: "
                            f"{str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''}); for random "
                            f"weights use a preset ({', '.join(preset_names())}) or weights='random' "
                            "(`vlsurgery compile --random-weights`)") from exc


#: transformers' Auto classes by task, each with its table model_type -> class name.
_AUTO_CLASSES = (("AutoModelForSeq2SeqLM", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES"),
                 ("AutoModelForCausalLM", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"),
                 ("AutoModelForImageTextToText", "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES"))


def auto_class(profile: Profile):
    """The Auto class whose table maps the profile's model type to its ``model_class`` (so
    ``from_config`` / ``from_pretrained`` build exactly that class); for a bare model (a vision
    tower), the class itself behind the same two names."""
    import transformers
    from transformers.models.auto import modeling_auto

    for auto, table in _AUTO_CLASSES:
        if getattr(modeling_auto, table, {}).get(profile.model_type) == profile.model_class:
            return getattr(transformers, auto)
    if getattr(modeling_auto, "MODEL_MAPPING_NAMES", {}).get(profile.model_type) == profile.model_class:
        # a bare model (a CLIP / SigLIP vision tower): its own class, not AutoModel, whose
        # from_pretrained would build the full CLIP/SigLIP model the presets' hub checkpoints hold;
        # CLIPVisionModel.from_pretrained takes the tower out of such a checkpoint.  The class has no
        # public from_config: its constructor is one (what callers of an Auto class use)
        cls = getattr(transformers, profile.model_class)
        return SimpleNamespace(__name__=cls.__name__, from_config=cls, from_pretrained=cls.from_pretrained)
    raise BackboneError(f"no transformers Auto class builds {profile.model_class} for model type "
                        f"'{profile.model_type}': vlsurgery cannot build this backbone's model itself; "
                        "load it with transformers and pass the model")


def _untie_as_profiled(model, profile: Profile):
    """Give ``lm_head`` its own tensor when the profile counts one and the model tied it."""
    from torch import nn

    head = getattr(model, "lm_head", None)
    if "lm_head.weight" in profile.parameters and head is not None \
            and head.weight is model.get_input_embeddings().weight:
        head.weight = nn.Parameter(head.weight.detach().clone())
    return model

"""The on-disk format of a vlsurgery checkpoint: two files in a directory, no pickle anywhere.

``vlsurgery.safetensors``
    the checkpoint's tensors (see :func:`vlsurgery.checkpoint.saving.checkpoint_tensors`), under
    their ``state_dict`` names, in the safetensors format.
``vlsurgery.json``
    everything else, as JSON::

        {
          "format": "vlsurgery.checkpoint/1",
          "spec": str,                 # the design, canonical text (vlsurgery.dumps), self-contained
          "spec_sha256": str,          # sha256 of the UTF-8 spec text
          "tensors": {"file": "vlsurgery.safetensors", "sha256": str, "count": int, "bytes": int},
          "backbone": {
            "family": str,             # config.model_type, e.g. "bart", "t5"
            "describe": str,           # e.g. "bart, 6+6 layers, d_model 768"
            "sizes": {str: value},     # the sizes that fix the tensor shapes (saving.backbone_sizes)
            "weights": "hub"|"path"|"here"|null,   # where restore() finds the base weights
            "name": str|null,          # hub name or absolute path ("here": this directory)
            "revision": str|null       # the hub commit the weights came from, when known
          }
        }

A checkpoint is written atomically enough for one writer: both files go to temporary names first
and are renamed into place, the tensors before the JSON, so a reader never sees a JSON that names
tensors that are not there.  Reading verifies the format version, the spec's hash, the tensor
file's size and sha256 (a bit flipped in the data shows here: safetensors has no checksum of its
own) and only then parses the tensors.  Every problem is a :class:`CheckpointError` that says what
was found and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from vlsurgery.checkpoint.errors import CheckpointError

FORMAT = "vlsurgery.checkpoint/1"
META_FILE = "vlsurgery.json"
TENSOR_FILE = "vlsurgery.safetensors"


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint as read from disk: the spec text, the backbone record and the tensors."""

    directory: Path
    spec: str
    spec_sha256: str
    backbone: dict
    tensors: dict  # name -> torch.Tensor (CPU)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _replace_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_checkpoint(directory, spec: str, backbone: dict, tensors: dict) -> Path:
    """Write ``tensors`` (name -> tensor) and the metadata into ``directory`` (created if needed)."""
    from safetensors.torch import save

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"cannot save a checkpoint into '{directory}': it is a file, expected a directory")
    cpu = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    data = save(cpu, metadata={"format": FORMAT})
    meta = {"format": FORMAT, "spec": spec, "spec_sha256": sha256_text(spec),
            "tensors": {"file": TENSOR_FILE, "sha256": hashlib.sha256(data).hexdigest(), "count": len(cpu),
                        "bytes": len(data)},
            "backbone": backbone}
    directory.mkdir(parents=True, exist_ok=True)
    _replace_atomically(directory / TENSOR_FILE, data)
    _replace_atomically(directory / META_FILE, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    return directory


def has_checkpoint(directory) -> bool:
    """Whether ``directory`` holds a vlsurgery checkpoint (its ``vlsurgery.json``)."""
    return (Path(directory) / META_FILE).is_file()


def _field(meta: dict, key: str, kind, where: Path):
    value = meta.get(key)
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        found = "nothing" if value is None else f"a {type(value).__name__}"
        raise CheckpointError(f"{where}: field '{key}' holds {found}, expected a {expected}; "
                              "the file was not written by vlsurgery.save or has been edited")
    return value


def read_meta(directory) -> dict:
    """The parsed and checked ``vlsurgery.json`` of ``directory``."""
    directory = Path(directory)
    path = directory / META_FILE
    if not path.is_file():
        what = "does not exist" if not directory.exists() else f"has no {META_FILE}"
        hint = (" (it holds a Hugging Face model saved before vlsurgery's save_pretrained was enabled: "
                "compile the spec onto it and load the state dict)" if (directory / "config.json").is_file() else "")
        raise CheckpointError(f"'{directory}' {what}: expected a directory written by vlsurgery.save or by "
                              f"save_pretrained of a compiled model{hint}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc}); the file is truncated or corrupted") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: holds a JSON {type(meta).__name__}, expected an object")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r} "
                              "(written by another version of vlsurgery, or not by vlsurgery)")
    spec = _field(meta, "spec", str, path)
    recorded = _field(meta, "spec_sha256", str, path)
    if sha256_text(spec) != recorded:
        raise CheckpointError(f"{path}: the spec text does not match its sha256 ({recorded[:12]}...): "
                              "the file was edited or corrupted; the tensors may not belong to this spec")
    tensors = _field(meta, "tensors", dict, path)
    for key, kind in (("file", str), ("sha256", str), ("count", int), ("bytes", int)):
        _field(tensors, key, kind, path)
    if tensors["file"] != TENSOR_FILE:
        raise CheckpointError(f"{path}: tensor file {tensors['file']!r}, expected {TENSOR_FILE!r}")
    _field(meta, "backbone", dict, path)
    return meta


def read_checkpoint(directory) -> Checkpoint:
    """Read and verify a checkpoint (see the module docstring); raises :class:`CheckpointError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    directory = Path(directory)
    meta = read_meta(directory)
    record = meta["tensors"]
    path = directory / TENSOR_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: {META_FILE} names {record['count']} tensors stored there")
    data = path.read_bytes()
    if len(data) != record["bytes"]:
        raise CheckpointError(f"{path} has {len(data)} bytes, expected {record['bytes']}: the file is truncated "
                              "or was replaced")
    if hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise CheckpointError(f"{path}: sha256 {hashlib.sha256(data).hexdigest()[:12]}..., expected "
                              f"{record['sha256'][:12]}...: the file is corrupted or belongs to another checkpoint")
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a valid safetensors file ({exc})") from None
    if len(tensors) != record["count"]:
        raise CheckpointError(f"{path} holds {len(tensors)} tensors, expected {record['count']}")
    return Checkpoint(directory, meta["spec"], meta["spec_sha256"], meta["backbone"], tensors)

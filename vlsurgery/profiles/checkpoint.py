"""What a local checkpoint directory holds, read without torch: its weight files and their names.

Used for two questions the config alone cannot answer:

- does the directory have weights at all (``compile`` loads them; a directory with only a
  ``config.json`` needs ``weights="random"``);
- does it store an ``lm_head.weight`` of its own?  For T5, transformers 5 always ties ``lm_head``
  to ``shared`` when it builds from a config, and ``from_pretrained`` unties it exactly when the
  checkpoint stores a separate ``lm_head.weight`` (as the v1.1 and Flan-T5 checkpoints do;
  ``save_pretrained`` of a tied model does not).

Names are read from the safetensors headers (8 bytes of length, then JSON), from the
``*.index.json`` weight maps of sharded checkpoints, and, for ``pytorch_model.bin`` (a zip of
pickles), by looking for the name in the pickled data.

>>> weight_files("/nonexistent")
()
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json", "pytorch_model.bin.index.json")


def weight_files(directory) -> tuple[Path, ...]:
    """The weight files (and shard indexes) in ``directory``, sorted; empty when there are none."""
    root = Path(directory)
    if not root.is_dir():
        return ()
    return tuple(sorted({p for pattern in WEIGHT_PATTERNS for p in root.glob(pattern) if p.is_file()}))


def stores_tensor(directory, name: str) -> bool | None:
    """Whether the checkpoint in ``directory`` stores a tensor called ``name``; None without weights
    (or when no file can be read)."""
    files = weight_files(directory)
    if not files:
        return None
    answers = [_file_has(path, name) for path in files]
    known = [a for a in answers if a is not None]
    return any(known) if known else None


def _file_has(path: Path, name: str) -> bool | None:
    try:
        if path.name.endswith(".index.json"):
            return name in json.loads(path.read_text()).get("weight_map", {})
        if path.suffix == ".safetensors":
            with path.open("rb") as f:
                (length,) = struct.unpack("<Q", f.read(8))
                if length > 100_000_000:
                    return None
                return name in json.loads(f.read(length))
        if path.suffix == ".bin" and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                pickles = [n for n in z.namelist() if n.endswith("data.pkl")]
                return any(name.encode() in z.read(n) for n in pickles)
    except (OSError, ValueError, struct.error, zipfile.BadZipFile, AttributeError):
        return None
    return None

"""Memory before allocation: refuse a design the device cannot hold, and name its largest parts.

A plan counts every added parameter exactly (``vlsurgery count``), without torch, so sizes that
count fine can still be far beyond any machine (``adapter r=1000000000000``).  Before the compiler
builds a single module, :func:`check_memory` turns the plan's counts into bytes (each module in
the dtype of the module it goes into, the rule of :mod:`vlsurgery.compiler.placement`) and
compares them, device by device, with what the device has free: ``MemAvailable`` of
``/proc/meminfo`` (or ``os.sysconf``) and the cgroup limit for the CPU,
``torch.cuda.mem_get_info`` for a CUDA device.  Meta tensors need no memory; other devices are not
checked.  Optimizer state is not part of compiling and is not counted.

Whatever still fails while a module is allocated (an allocator ``RuntimeError``, a ``TypeError``
or ``OverflowError`` from a size no tensor can have) is turned into a :class:`CompileError` naming
the site by :func:`allocation_guard`; the compile transaction then puts the model back.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import torch

from vlsurgery.compiler.placement import dtype_device
from vlsurgery.errors import CompileError, VLSurgeryError
from vlsurgery.methods.registry import count_projector

#: Allocator messages that mean "this size cannot be allocated" (lower case).
_ALLOCATION_WORDS = ("memory", "allocat", "overflow", "storage size", "too large", "out of range")


def human_bytes(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``; binary units up to YiB, then powers of ten of YiB.

    >>> human_bytes(512), human_bytes(1536), human_bytes(128 * 10**12)
    ('512 B', '1.5 KiB', '116.4 TiB')
    """
    value, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"):
        if value < 1024 or unit == "YiB":
            break
        value /= 1024
    if unit == "B":
        return f"{int(value)} B"
    return f"{value:.1f} {unit}" if value < 1e6 else f"{value:.3g} {unit}"


def design_bytes(plan, model) -> list[tuple[str, int, torch.device, torch.dtype]]:
    """(what, bytes, device, dtype) of every module the plan adds, largest first."""
    parts = []
    for site in plan.sites:
        owner = model.get_input_embeddings() if site.kind == "input" else model.get_submodule(site.layer_module)
        dtype, device = dtype_device(owner)
        parts.append((f"{site.path} ({site.method})", site.trainable * dtype.itemsize, device, dtype))
    if plan.shared:
        dtype, device = dtype_device(model)
        parts.append(("shared tensors", sum(plan.shared.values()) * dtype.itemsize, device, dtype))
    if plan.projector is not None:
        n = count_projector(plan.projector, plan.profile.d_model, plan.profile.norm.kind)
        dtype, device = dtype_device(model.get_input_embeddings())
        parts.append(("projector", n * torch.float32.itemsize, torch.device("cpu"), torch.float32))  # built there
        if device.type != "cpu" or dtype != torch.float32:
            parts.append(("projector (moved)", n * dtype.itemsize, device, dtype))
    return sorted(parts, key=lambda p: -p[1])


def available_bytes(device: torch.device) -> int | None:
    """Free memory of ``device`` in bytes; None when it cannot be told (or needs none: meta)."""
    if device.type == "cpu":
        return _host_available()
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return None


def _host_available() -> int | None:
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    try:  # a container's limit (cgroup v2) may be far below the host's free memory
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            free = min(free, int(limit) - used)
    except (OSError, ValueError):
        pass
    return max(free, 0)


def check_memory(plan, model) -> None:
    """Raise :class:`CompileError` when the added modules cannot fit the memory their devices have free."""
    parts = design_bytes(plan, model)
    needed: dict[torch.device, int] = {}
    for _, size, device, _ in parts:
        needed[device] = needed.get(device, 0) + size
    for device, size in needed.items():
        free = available_bytes(device)
        if free is None or size <= free:
            continue
        largest = [p for p in parts if p[2] == device][:3]
        listed = "; ".join(f"{what}: {human_bytes(n)} in {dtype}".replace("torch.", "")
                           for what, n, _, dtype in largest)
        raise CompileError(
            f"the design needs {human_bytes(size)} for its new parameters on {device}, but only "
            f"{human_bytes(free)} is free there; nothing was allocated and the model is unchanged. "
            f"Largest: {listed}. Reduce the sizes (r, reduction, length, feat_dim...) or the sites; "
            f"`vlsurgery count` shows the parameters of every site")


@contextmanager
def allocation_guard(what: str, numel: int | None = None):
    """Turn an allocation failure while building ``what`` into a CompileError that names it."""
    try:
        yield
    except VLSurgeryError:
        raise
    except (RuntimeError, TypeError, OverflowError, MemoryError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, RuntimeError) and not any(w in text.lower() for w in _ALLOCATION_WORDS):
            raise
        size = f" ({numel:,} parameters)" if numel is not None else ""
        raise CompileError(f"cannot allocate {what}{size}: {type(exc).__name__}: {text[:200]}. The model is "
                           f"unchanged; reduce its size (r, reduction, length, feat_dim...)") from exc

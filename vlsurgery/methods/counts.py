"""Parameter-count formulas of every method, without torch.

The planner (``vlsurgery count``) only needs these, so they live apart from the modules: counting
a design never imports torch.  Each formula equals ``sum(p.numel())`` of the module it describes;
tests/methods checks that for every valid hyperparameter combination.
"""

from __future__ import annotations

from vlsurgery.errors import UsageError

#: Parameters of one norm per unit of width: LayerNorm has weight and bias, RMSNorm a weight.
NORM_PARAMS_PER_WIDTH = {"layernorm": 2, "rmsnorm": 1}


def bottleneck_count(d_src: int, r: int, d_out: int) -> int:
    """A bottleneck d_src -> r -> d_out with biases (independent of heads)."""
    return d_src * r + r + r * d_out + d_out


def phm_rule_key(n: int) -> str:
    """Key of Compacter's shared (n, n, n) rule in the model's shared-parameter store."""
    return f"compacter_phm_rule_n{n}"


def phm_count(d_in: int, d_out: int, n: int, phm_rank: int) -> int:
    """One PHM layer, its rule A excluded."""
    weights = d_out * d_in // n if phm_rank == 0 else phm_rank * (d_in + d_out)
    return weights + d_out


def gate_count(granularity: str, d_in: int, d_out: int, gate_r: int | None = None) -> int:
    """The gate G at one granularity (formulas in vlsurgery.methods.gates)."""
    return {
        "none": lambda: 0,
        "scalar": lambda: d_in + d_out + 1,
        "token": lambda: d_in + 1,
        "vector": lambda: d_out,
        "matrix": lambda: bottleneck_count(d_in, gate_r, d_out),
    }[granularity]()


def norm_count(norm, d: int) -> int:
    """One norm of width d: ``layernorm``, ``rmsnorm``, or a factory (built once to count it)."""
    if isinstance(norm, str) and norm in NORM_PARAMS_PER_WIDTH:
        return NORM_PARAMS_PER_WIDTH[norm] * d
    if callable(norm):
        return sum(p.numel() for p in norm(d).parameters())
    raise UsageError(f"norm must be one of {', '.join(NORM_PARAMS_PER_WIDTH)} or a factory d -> nn.Module, "
                     f"got {norm!r}")


def projector_count(params, d: int, norm="layernorm") -> int:
    """The visual projector (ProjectorParams), the shared token embedding excluded."""
    linears = params.feat_dim * d + d + params.pos_dim * d + d
    return linears + params.images * d + 2 * norm_count(norm, d)

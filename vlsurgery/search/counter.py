"""Exact counts of every member of a design space, computed incrementally.

Counting a member from scratch (plan + count) costs milliseconds; a space has up to millions of
members.  But a member's count is a sum of independent parts:

    trainable = rest + sum over statement groups of (site parameters) + shared tensors (each key once)
    total     = backbone + sum over groups of (site parameters) + shared tensors + projector

where *rest* (backbone, ``train`` targets, projector) does not depend on the statements, and a
**statement group** is a set of statements that may touch a common site for *some* member (the
override rule only ever combines statements on the same site: planning/resolve.py), so two
groups never interact.  Each group's part depends only on the options of the axes that appear in
its statements (their choices, and the ``let`` choices their ``$refs`` use); it is computed by the
real planner on a spec holding just that group, once per distinct option combination, and
memoised.  A member then costs one dictionary lookup per group.  Exactness is the planner's: the
same resolve, the same registry counts (tests/search checks it against ``count`` member by member).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vlsurgery.errors import VLSurgeryError
from vlsurgery.planning.counting import count_plan
from vlsurgery.planning.resolve import resolve
from vlsurgery.planning.slots import by_names, slots
from vlsurgery.profiles.backbone import load_backbone
from vlsurgery.spec.addresses import select
from vlsurgery.spec.choice import Choice, choices_of
from vlsurgery.spec.ir import Ref
from vlsurgery.search.fast import statement_part
from vlsurgery.spec.loader import resolve_lets
from vlsurgery.spec.space import Space


@dataclass(frozen=True)
class MemberCount:
    """Exact parameter counts of one member (``error``: why it does not plan, counts then 0)."""

    trainable: int
    total: int
    error: str | None = None

    @property
    def trainable_percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0


@dataclass
class _Group:
    statements: list[int]
    axes: tuple[int, ...]
    memo: dict


def _reason(error: VLSurgeryError) -> str:
    """One line saying why a member does not plan: its first problem and where it is (a spec
    error's first line only counts them, "3 problems in spec")."""
    problems = getattr(error, "errors", ())
    if problems:
        first = problems[0]
        return f"{first.span}: {first.message}" if first.span else first.message
    return str(error).split("\n", 1)[0]


def _refs(params) -> set[str]:
    return {p.value.name for p in params if isinstance(p.value, Ref)}


class Counter:
    """``counter(idx) -> MemberCount`` for the members of ``space`` on ``backbone``."""

    def __init__(self, space: Space, backbone=None):
        self.space = space
        spec = space.spec
        self.backbone = load_backbone(backbone if backbone is not None else spec.backbone)
        axis_of = {id(a.choice): k for k, a in enumerate(space.axes)}
        let_axes = {label[1:]: axis_of[id(c)] for label, c, _ in choices_of(spec) if label.startswith("$")}
        self.groups = [
            _Group(members, tuple(sorted({k for i in members for k in self._statement_axes(i, axis_of, let_axes)})), {})
            for members in self._groups()]
        projector = spec.projector.params if spec.projector else ()
        self.rest_axes = tuple(sorted({axis_of[id(p.value)] for p in projector if isinstance(p.value, Choice)}
                                      | {let_axes[r] for r in _refs(projector) if r in let_axes}))
        self.rest_memo: dict = {}
        self._site_memo: dict = {}

    # ---------------------------------------------------------------------------------------
    def _statement_axes(self, i, axis_of, let_axes) -> set[int]:
        s = self.space.spec.statements[i]
        parts = [s.target, s.method] + [p.value for p in s.params]
        axes = {axis_of[id(c)] for c in parts if isinstance(c, Choice)}
        params = list(s.params) + [p for o in (s.method.options if isinstance(s.method, Choice) else ())
                                   for p in o.params]
        return axes | {let_axes[r] for r in _refs(params) if r in let_axes}

    def _sites(self, i) -> set[str]:
        """Every slot statement ``i`` names for any of its target options."""
        profile, target = self.backbone.profile, self.space.spec.statements[i].target
        layers = {st.name: st.n_layers for st in profile.stacks}
        out = set()
        for address in (target.options if isinstance(target, Choice) else (target,)):
            names, _ = select(address, profile.roles, layers, self.backbone.name)
            out |= {slot.path for key in names for slot in self._named.get(key, ())}
        return out

    def _groups(self) -> list[list[int]]:
        """Statements joined when some options of theirs name a common site (union-find)."""
        self._named = by_names(slots(self.backbone.profile))
        n = len(self.space.spec.statements)
        parent = list(range(n))

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        owner: dict[str, int] = {}
        for i in range(n):
            for path in self._sites(i):
                if path in owner:
                    parent[find(i)] = find(owner[path])
                else:
                    owner[path] = i
        groups: dict[int, list[int]] = {}
        for i in range(n):
            groups.setdefault(find(i), []).append(i)
        return list(groups.values())

    # ---------------------------------------------------------------------------------------
    def _plan_part(self, idx, statements):
        """(site parameters, shared tensors) of a member's statements, or the planner's error."""
        member = self.space.member(idx)
        if len(statements) == 1:  # alone on its sites: one planner call per site shape (search/fast.py)
            try:
                fast = statement_part(resolve_lets(member).statements[statements[0]], self.backbone,
                                      self._named, self._site_memo)
            except VLSurgeryError:
                fast = None
            if fast is not None:
                return fast
        part = replace(member, statements=tuple(member.statements[i] for i in statements), projector=None, train=())
        try:
            plan = resolve(part, self.backbone)
        except VLSurgeryError as e:
            return _reason(e)
        return sum(s.trainable for s in plan.sites), plan.shared

    def _rest(self, idx):
        member = self.space.member(idx)
        try:
            count = count_plan(resolve(replace(member, statements=()), self.backbone))
        except VLSurgeryError as e:
            return _reason(e)
        projector = count.projector if count.projector_trainable else 0
        return count.base_trainable + projector, count.base + count.projector

    def __call__(self, idx) -> MemberCount:
        key = tuple(idx[k] for k in self.rest_axes)
        rest = self.rest_memo.get(key)
        if rest is None:
            rest = self.rest_memo[key] = self._rest(idx)
        if isinstance(rest, str):
            return MemberCount(0, 0, rest)
        trainable, total = rest
        shared: dict = {}
        for g in self.groups:
            key = tuple(idx[k] for k in g.axes)
            part = g.memo.get(key)
            if part is None:
                part = g.memo[key] = self._plan_part(idx, g.statements)
            if isinstance(part, str):
                return MemberCount(0, 0, part)
            trainable += part[0]
            total += part[0]
            for name, numel in part[1].items():
                if shared.setdefault(name, numel) != numel:
                    return MemberCount(0, 0, f"shared tensor '{name}' has {numel} elements in one place "
                                             f"and {shared[name]} in another")
        extra = sum(shared.values())
        return MemberCount(trainable + extra, total + extra)

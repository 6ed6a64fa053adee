"""Fixtures of the compiler tests (helpers live in compiler_cases.py)."""

from compiler_cases import backbone  # noqa: F401  (a fixture)

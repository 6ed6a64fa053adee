"""The three kinds of change a diff row reports, shared by every module of the package."""

ADDED, REMOVED, CHANGED = "added", "removed", "changed"

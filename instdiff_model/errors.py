"""The one error type the pack raises for bad user input or bad files."""
from contextlib import contextmanager


class InstDiffError(ValueError):
    """Bad input (layout, file, model) with a message that names the fix; `index` / `field`: the instance (its index
    in the layout being built) and the field (e.g. "box", "caption") it concerns, None when it concerns no one."""

    def __init__(self, message: str, *, index: int | None = None, field: str | None = None):
        super().__init__(message)
        self.index, self.field = index, field

    def relabeled(self, label: str) -> "InstDiffError":
        """The same error with `label: ` in front of its message (say which input element the instance came from)."""
        return InstDiffError(f"{label}: {self}", index=self.index, field=self.field)


@contextmanager
def concerning(index: int | None = None, field: str | None = None):
    """InstDiffErrors raised inside concern instance `index` / `field` (where they do not say so themselves)."""
    try:
        yield
    except InstDiffError as exc:
        exc.index = exc.index if exc.index is not None else index
        exc.field = exc.field or field
        raise

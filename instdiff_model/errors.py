"""The one error type the pack raises for bad user input or bad files."""


class InstDiffError(ValueError):
    """Bad input (layout, file, model) with a message that names the fix."""

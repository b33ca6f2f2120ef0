"""Errors raised on bad input, each naming the file, row or key at fault."""


class DataError(ValueError):
    """Input data that cannot be used as given."""


class MissingColumnError(DataError):
    """A required column is missing from a metadata file."""

    def __init__(self, path: object, column: str, present: list[str]):
        super().__init__(f"{path}: required column '{column}' is missing (columns found: {', '.join(present)})")
        self.path, self.column = path, column


class LeakageError(DataError):
    """A group (patient / lesion) appears in more than one split."""

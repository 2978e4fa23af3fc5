"""Domain errors raised by services; the API and the views map them to answers."""

from dataclasses import dataclass, field
from typing import Any


class ServiceError(Exception):
    """A refused write; nothing was stored."""

    status = 400
    code = "invalid"

    def __init__(
        self,
        message: str,
        *,
        fields: dict[str, list[str]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.extra = extra or {}


class InvalidInput(ServiceError):
    status = 400
    code = "invalid"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"

    def __init__(self, message: str, *, code: str = "conflict", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.code = code


@dataclass
class RowError:
    row: int
    column: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "message": self.message}


@dataclass
class FileRejected(Exception):
    """A whole file refused, with every error found (row, column, why)."""

    message: str
    errors: list[RowError] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [self.message] + [f"row {e.row}, {e.column}: {e.message}" for e in self.errors]
        return "\n".join(lines)

"""Building blocks of every module's contract: frozen DTOs, contract errors, pages."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

T = TypeVar("T")

MAX_PAGE_SIZE = 100
SAFE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
"""Ids that are safe as MongoDB keys and path segments: no dots, no `$`, bounded length."""


class FrozenModel(BaseModel):
    """An immutable DTO that rejects unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Page(FrozenModel, Generic[T]):
    """One page of a list: `{items, total, limit, skip}`."""

    items: list[T]
    total: int
    limit: int
    skip: int


class PageRequest(FrozenModel):
    """Which page to read; `limit` is bounded."""

    limit: int = Field(default=20, ge=1, le=MAX_PAGE_SIZE)
    skip: int = Field(default=0, ge=0, le=1_000_000)


class CreatedWithin(PageRequest):
    """A page of records created in `[from_, to)`: `from_` inclusive, `to` exclusive, both optional.

    Both bounds carry a time zone; a range whose start is after its end is refused. Every list
    filtered by creation time (payments, shipments) uses this one shape.
    """

    from_: AwareDatetime | None = None
    to: AwareDatetime | None = None

    @model_validator(mode="after")
    def check_range(self) -> Self:
        """Refuse a range whose start is after its end."""
        if self.from_ is not None and self.to is not None and self.from_ > self.to:
            raise ValueError("from must not be after to")
        return self

    def covers(self, created_at: datetime) -> bool:
        """Whether `created_at` lies in the range."""
        return (self.from_ is None or created_at >= self.from_) and (self.to is None or created_at < self.to)


class ContractError(Exception):
    """A failure a caller handles, with a stable dotted `code`.

    Contract errors are business outcomes: they are not retryable, and the saga engine
    compensates when a step raises one. They travel over HTTP as RFC 9457 problem+json
    (`status`, `title`, `code`, `detail`) and are raised again, the same class, on the other side.
    """

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Request failed"
    retryable: ClassVar[bool] = False
    registry: ClassVar[dict[str, type[ContractError]]] = {}

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            ContractError.registry[cls.code] = cls


class NotFoundError(ContractError):
    """The requested resource does not exist."""

    code = "not_found"
    status = 404
    title = "Not found"


class ConflictError(ContractError):
    """The request conflicts with the resource's current state."""

    code = "conflict"
    status = 409
    title = "Conflict"


class InvalidRequestError(ContractError):
    """The request is well-formed but not acceptable."""

    code = "invalid_request"
    status = 422
    title = "Invalid request"


class ServiceUnavailableError(ContractError):
    """A dependency did not answer; trying again later may succeed."""

    code = "service_unavailable"
    status = 503
    title = "Service unavailable"
    retryable = True

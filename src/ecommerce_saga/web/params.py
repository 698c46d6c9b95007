"""Query-parameter types shared by the routers."""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ValidationError

M = TypeVar("M", bound=BaseModel)

_ISO_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _iso_only(value: object) -> object:
    """Refuse what pydantic would otherwise read as a Unix timestamp (`?to=0.5`)."""
    if isinstance(value, str) and not _ISO_DATE_TIME.match(value):
        raise ValueError("must be an ISO 8601 date-time with a time zone, e.g. 2026-01-31T12:00:00Z")
    return value


IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_only)]
"""An ISO 8601 date-time with a time zone; numbers are refused."""

FROM_DESCRIPTION = "Created at or after this instant (ISO 8601 with a time zone); not after `to`."
TO_DESCRIPTION = "Created before this instant (ISO 8601 with a time zone)."


def query_model(model: type[M], **values: Any) -> M:
    """`model` built from query parameters; a rule across them (e.g. `from` after `to`) → 422.

    FastAPI checks each parameter alone; a model validator that compares several raises a
    pydantic `ValidationError`, which would otherwise be a 500. This turns it into the same
    RFC 9457 validation problem as a bad single parameter.
    """
    try:
        return model(**values)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("query", *e["loc"])} for e in errors]) from None

"""`SHOP_<NAME>_FILE`: a secret setting read from a file, as mounted from a Kubernetes Secret.

For every secret setting (a `SecretStr` field of `Settings`: `SHOP_MONGODB_URL`, `SHOP_SERVICE_TOKEN`,
`SHOP_ADMIN_TOKEN`, ...), the variable `SHOP_<NAME>_FILE` may name a file whose content, stripped of
surrounding whitespace, is the value. The content is passed through as is (a comma-separated token
list stays one string). Setting both the variable and its `_FILE` variant is an error, and so is a
missing, unreadable or empty file. Error messages name the variable and the path, never the content.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo

FILE_SUFFIX = "_FILE"


class SecretFileError(ValueError):
    """A `SHOP_<NAME>_FILE` variable that cannot be used (pydantic reports it as a validation error)."""


def secret_fields(fields: Mapping[str, FieldInfo]) -> list[str]:
    """The names of the fields typed `SecretStr` or `SecretStr | None`."""
    return [name for name, info in fields.items() if _is_secret(info.annotation)]


def _is_secret(annotation: object) -> bool:
    if annotation is SecretStr:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return SecretStr in typing.get_args(annotation)
    return False


def read_secret_file(variable: str, path: str) -> str:
    """The stripped content of the file at `path`, named by the environment variable `variable`."""
    try:
        content = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise SecretFileError(f"{variable} names {path}, which does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretFileError(
            f"{variable} names {path}, which cannot be read ({type(exc).__name__})"
        ) from None
    if not content:
        raise SecretFileError(f"{variable} names {path}, which is empty")
    return content


def apply_secret_files(
    values: dict[str, Any], names: Iterable[str], environ: Mapping[str, str], prefix: str
) -> dict[str, Any]:
    """`values` with each secret `name` whose `<PREFIX><NAME>_FILE` is set read from that file.

    Args:
        values: the settings gathered so far (keyed by field name), from the environment and arguments.
        names: the secret fields.
        environ: the environment (matched case-insensitively, like pydantic-settings does).
        prefix: the settings' environment prefix, e.g. `SHOP_`.

    Raises:
        SecretFileError: A value is given both directly and through its file, or the file is unusable.
    """
    lowered = {key.lower(): value for key, value in environ.items()}
    result = dict(values)
    for name in names:
        variable = f"{prefix}{name}".upper()
        path = lowered.get(f"{variable}{FILE_SUFFIX}".lower())
        if not path:
            continue
        if result.get(name) is not None:
            raise SecretFileError(f"set {variable} or {variable}{FILE_SUFFIX}, not both")
        result[name] = read_secret_file(f"{variable}{FILE_SUFFIX}", path)
    return result

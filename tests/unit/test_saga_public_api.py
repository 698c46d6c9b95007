"""Every type in a public signature of `ecommerce_saga.saga` is exported from it.

A library user must be able to name what the engine hands them or asks of them (an observer's
event, a hook's context, a store's query) without importing from a private module.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

from ecommerce_saga import saga
from ecommerce_saga.saga import testing
from ecommerce_saga.saga.stores import memory, mongo

PACKAGE = "ecommerce_saga.saga"
PUBLIC_MODULES = [memory, mongo, testing]
"""Where the stores and the test kit live: what they define under a public name is public too."""


def _public_names() -> Iterator[tuple[str, Any]]:
    for name in saga.__all__:
        yield name, getattr(saga, name)
    for module in PUBLIC_MODULES:
        for name, value in vars(module).items():
            if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__:
                yield f"{module.__name__}.{name}", value


def _exported(cls: type) -> bool:
    if getattr(saga, cls.__name__, None) is cls:
        return True
    module = next((m for m in PUBLIC_MODULES if m.__name__ == cls.__module__), None)
    return module is not None and not cls.__name__.startswith("_") and getattr(module, cls.__name__) is cls


def _public_callables() -> Iterator[tuple[str, Callable[..., Any]]]:
    """Every public function and class, and the public methods and constructors of the classes."""
    for name, value in _public_names():
        if inspect.isclass(value):
            yield name, value
            for attribute, member in vars(value).items():
                if attribute.startswith("_") and attribute != "__init__":
                    continue
                function = member.fget if isinstance(member, property) else member
                function = getattr(function, "__func__", function)  # classmethod, staticmethod
                if inspect.isfunction(function):
                    yield f"{name}.{attribute}", function
        elif inspect.isfunction(value):
            yield name, value


def _hints(target: Callable[..., Any]) -> dict[str, Any]:
    if inspect.isclass(target):
        if issubclass(target, BaseException) or not hasattr(target, "__dataclass_fields__"):
            return {}
        target = target.__init__  # type: ignore[misc]
    return typing.get_type_hints(target)


def _classes_in(annotation: Any) -> Iterator[type]:
    """The classes an annotation names, unpacking unions, generics and aliases."""
    if isinstance(annotation, typing.TypeVar):
        return
    origin = typing.get_origin(annotation)
    if origin is not None or isinstance(annotation, types.UnionType):
        if inspect.isclass(origin):
            yield origin
        for argument in typing.get_args(annotation):
            yield from _classes_in(argument)
        return
    if inspect.isclass(annotation):
        yield annotation


def test_every_engine_type_in_a_public_signature_is_exported() -> None:
    unexported: set[str] = set()
    checked = 0
    for where, target in _public_callables():
        for annotation in _hints(target).values():
            for cls in _classes_in(annotation):
                checked += 1
                if cls.__module__.startswith(PACKAGE) and not _exported(cls):
                    unexported.add(f"{cls.__module__}.{cls.__qualname__} (in {where})")

    assert checked > 100  # the walk found the signatures
    assert not unexported, sorted(unexported)

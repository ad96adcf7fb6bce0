"""Light packages: public names imported from their modules the first time they are asked
for, and packages that are also functions (`ferry.batch(...)`, `ferry.export(...)`,
`ferry.monitor(...)`: a function of the package's name would be hidden by the package as soon
as anything imported it, so the package's module object answers the call).

    __getattr__ = lazy_names(__name__, {"batch": "ferry.batch.runner", ...})
    callable_package(__name__, "ferry.batch.runner:batch")
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: each name of `homes` imported from the module
    it names the first time it is asked for, then kept in the package."""

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(homes[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


def callable_package(package: str, function: str) -> None:
    """Make `package` callable: a call runs `function` ("module:name"), which is imported at
    the first call."""
    module_name, _, name = function.partition(":")

    class CallablePackage(types.ModuleType):
        def __call__(self, *args: Any, **options: Any) -> Any:
            return getattr(importlib.import_module(module_name), name)(*args, **options)

    CallablePackage.__call__.__doc__ = f"`{module_name}.{name}`."
    sys.modules[package].__class__ = CallablePackage

"""A step's stored form: its source, the imports it uses and the versions of their packages.

A step is a module-level function `fn(batch) -> batch`. It is kept as source code, never as a
pickle, so that what loading it would run can be read first (`ferry show`). Only the parts of
its module that it names are kept with it: the import statements binding names it uses, and
module-level constants (numbers, strings) it reads. Anything else it reads from its module (a
helper function, an object) is refused at registration with a message saying what to inline.
"""

from __future__ import annotations

import ast
import builtins
import functools
import importlib.metadata
import inspect
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FunctionType, ModuleType
from typing import Any

from ferry.errors import InvalidInputError

CONSTANT_TYPES = (int, float, str, bool, bytes, type(None))
"""Module-level values a step may read: kept as `NAME = repr(value)` with its source."""


@dataclass(frozen=True)
class StepSource:
    """One stored step: the function's `source`, defining `name`; the `imports` and
    `constants` it needs, in order; the installed versions of the imported packages (None
    for the standard library)."""

    name: str
    source: str
    imports: tuple[str, ...] = ()
    packages: dict[str, str | None] = field(default_factory=dict)
    constants: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "imports": list(self.imports),
                "packages": dict(self.packages), "constants": list(self.constants)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepSource:
        return cls(name=str(data["name"]), source=str(data["source"]),
                   imports=tuple(data.get("imports") or ()),
                   packages=dict(data.get("packages") or {}),
                   constants=tuple(data.get("constants") or ()))

    def describe(self) -> str:
        """`tokenize (numpy 2.3.1)`: the name and the non-standard packages it imports."""
        packages = ", ".join(f"{name} {version}" for name, version in sorted(
            self.packages.items()) if version is not None)
        return f"{self.name} ({packages})" if packages else self.name

    def code(self) -> str:
        """The module text that defines the step: imports, constants, then the function."""
        return "\n".join([*self.imports, *self.constants, "", self.source])


def capture(fn: Callable[..., Any], role: str) -> StepSource:
    """The stored form of `fn`, the `role` (preprocess, postprocess) step; refuses what cannot
    be kept as source (lambdas, closures, methods, functions without a source file)."""
    function = _top_level_function(fn, role)
    source = _source(function, role)
    used = _names_used(source)
    imports = _imports_binding(_module_tree(function, role), used)
    bound = {name for name, _ in imports}
    constants = _constants(function, used - bound, role)
    statements = tuple(statement for _, statement in imports)
    return StepSource(name=function.__name__, source=source, imports=statements,
                      packages=_packages(statements), constants=constants)


def _top_level_function(fn: Callable[..., Any], role: str) -> FunctionType:
    """`fn` when it is a plain function defined at the top level of a module."""
    if not isinstance(fn, FunctionType) or fn.__name__ == "<lambda>" \
            or fn.__qualname__ != fn.__name__:
        raise InvalidInputError(
            f"{role}={fn!r} cannot be stored as source: define the step as a top-level"
            f" function (`def {role}(batch): ...` at module level, not a lambda, a closure"
            " or a method) in a file, and pass that function")
    return fn


def _source(function: FunctionType, role: str) -> str:
    try:
        return textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError) as exc:
        raise InvalidInputError(
            f"the source of {role} step {function.__name__!r} cannot be read ({exc}): define"
            " it in a .py file rather than typing it at an interactive prompt") from exc


def _module_tree(function: FunctionType, role: str) -> ast.Module:
    module = inspect.getmodule(function)
    try:
        return ast.parse(inspect.getsource(module)) if module else ast.Module([], [])
    except (OSError, TypeError) as exc:
        raise InvalidInputError(
            f"the module of {role} step {function.__name__!r} cannot be read ({exc}): define"
            " the step in a .py file") from exc


def _names_used(source: str) -> set[str]:
    """Names the function reads and does not bind itself (its globals and builtins)."""
    tree = ast.parse(source)
    read: set[str] = set()
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
    return read - bound


def _imports_binding(tree: ast.Module, used: set[str]) -> list[tuple[str, str]]:
    """(bound name, import statement) for each module-level import binding a used name."""
    found: list[tuple[str, str]] = []
    for node in _module_statements(tree.body):
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.extend(_split_import(node, used))
    return found


def _module_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The module's statements, including those under `if` and `try` (guarded imports)."""
    for node in body:
        yield node
        if isinstance(node, ast.If | ast.Try):
            yield from _module_statements([*node.body, *node.orelse])
        if isinstance(node, ast.Try):
            yield from _module_statements(node.finalbody)
            for handler in node.handlers:
                yield from _module_statements(handler.body)


def _split_import(node: ast.Import | ast.ImportFrom, used: set[str]) -> Iterator[tuple[str, str]]:
    """One statement per used alias of `node` (`import numpy as np`, `from re import sub`)."""
    if isinstance(node, ast.ImportFrom) and (node.level or node.module == "__future__"):
        return
    for alias in node.names:
        bound = alias.asname or alias.name.split(".")[0]
        if bound not in used:
            continue
        if isinstance(node, ast.Import):
            yield bound, ast.unparse(ast.Import(names=[alias]))
        else:
            yield bound, ast.unparse(ast.ImportFrom(module=node.module, names=[alias], level=0))


def _constants(function: FunctionType, names: set[str], role: str) -> tuple[str, ...]:
    """`NAME = value` for module-level constants the step reads; refuses other globals."""
    kept: list[str] = []
    for name in sorted(names & set(function.__globals__)):
        value = function.__globals__[name]
        if isinstance(value, ModuleType) or not isinstance(value, CONSTANT_TYPES):
            raise InvalidInputError(
                f"{role} step {function.__name__!r} uses {name!r} from its module, which"
                " cannot be stored with it: import it inside the step or define it there")
        kept.append(f"{name} = {value!r}")
    return tuple(kept)


def _packages(imports: tuple[str, ...]) -> dict[str, str | None]:
    """Top-level package of each import, with its installed version (None: standard
    library or not installed as a distribution)."""
    tops: set[str] = set()
    for statement in imports:
        node = ast.parse(statement).body[0]
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [
            alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        tops.update(name.split(".")[0] for name in names)
    return {top: package_version(top) for top in sorted(tops)}


def package_version(top: str) -> str | None:
    """The installed version of the distribution providing module `top`, or None."""
    if top in sys.stdlib_module_names or top in dir(builtins):
        return None
    for distribution in _distributions().get(top, [top]):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())

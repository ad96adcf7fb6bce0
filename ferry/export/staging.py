"""Folders written beside their target and renamed into place, so that a failed export
leaves nothing half-written and a reader never sees a folder being filled.

`--force` replaces only what an earlier export wrote (a folder holding its marker file, such
as `signature.json`): a mistyped path never removes someone's own files.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

from ferry.errors import InvalidInputError


def check_target(target: Path, *, force: bool, marker: str) -> None:
    """Refuse a target that is a file, or a non-empty folder unless `force` is set and the
    folder holds `marker` (an earlier export's)."""
    if target.exists() and not target.is_dir():
        raise InvalidInputError(f"{target} exists and is not a directory: give a directory")
    if not _has_entries(target):
        return
    if not force:
        raise InvalidInputError(f"{target} exists and is not empty: choose another directory,"
                                " or pass --force (force=True) to replace an earlier export")
    if not (target / marker).is_file():
        raise InvalidInputError(f"{target} is not empty and holds no {marker}: --force replaces"
                                " only an earlier export; choose another directory")


def write_directory(target: Path, files: Mapping[str, bytes], *, force: bool,
                    marker: str) -> None:
    """Write `files` (name to bytes) into a new folder beside `target`, then rename it to
    `target`, replacing an earlier export there when `force` is set."""
    check_target(target, force=force, marker=marker)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = _sibling(target, "tmp")
    staged.mkdir()
    try:
        for name, data in files.items():
            (staged / name).write_bytes(data)
        _swap(staged, target)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def write_file(target: Path, data: bytes) -> None:
    """Write one file through a temporary file beside it, renamed over `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = _sibling(target, "tmp")
    try:
        staged.write_bytes(data)
        os.replace(staged, target)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


def _swap(staged: Path, target: Path) -> None:
    """Rename `staged` to `target`; an existing `target` is moved aside first, then removed."""
    if not target.exists():
        staged.rename(target)
        return
    old = _sibling(target, "old")
    target.rename(old)
    try:
        staged.rename(target)
    except BaseException:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _has_entries(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _sibling(target: Path, kind: str) -> Path:
    """A hidden name beside `target` that no one else uses."""
    return target.with_name(f".{target.name}.{kind}-{uuid.uuid4().hex[:12]}")

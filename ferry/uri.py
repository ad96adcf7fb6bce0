"""One URI syntax everywhere: `name` (latest version), `name:3`, `name@production`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ferry.errors import InvalidNameError, InvalidURIError
from ferry.text import is_whole_number

MAX_NAME_LENGTH = 128
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def validate_name(name: object, what: str = "model name") -> str:
    """Return `name` if it can name a model or alias, else raise `InvalidNameError`."""
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"the {what} is empty: give letters, digits, '.', '_' or '-'")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(f"the {what} is longer than {MAX_NAME_LENGTH} characters")
    if not _NAME.fullmatch(name) or ".." in name:
        raise InvalidNameError(
            f"invalid {what} {name!r}: start with a letter or digit and use only letters,"
            " digits, '.', '_' and '-' (no '..', '/', spaces or control characters)"
        )
    return name


def validate_alias(alias: object) -> str:
    """Aliases follow the name rules and are not all digits, so they never read as versions."""
    name = validate_name(alias, "alias")
    if name.isdigit():  # names are ASCII already
        raise InvalidNameError(f"invalid alias {name!r}: an alias cannot be a number")
    return name


@dataclass(frozen=True)
class ModelURI:
    """A parsed reference to a model version: by number, by alias, or the latest."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelURI:
        if not isinstance(text, str) or not text.strip():
            raise InvalidURIError("empty model URI: use NAME, NAME:VERSION or NAME@ALIAS")
        text = text.strip()
        if text.startswith("models:/"):
            text = text[len("models:/") :]
        if "@" in text:
            name, _, alias = text.partition("@")
            return cls(name=validate_name(name), alias=validate_alias(alias))
        if ":" in text:
            name, _, number = text.partition(":")
            if not is_whole_number(number) or int(number) < 1:
                raise InvalidURIError(
                    f"invalid version {number!r} in {text!r}: versions are numbers from 1"
                )
            return cls(name=validate_name(name), version=int(number))
        return cls(name=validate_name(text))

    def __str__(self) -> str:
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return self.name

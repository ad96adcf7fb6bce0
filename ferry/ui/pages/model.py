"""One model's page (`/ui/models/NAME`): its versions, its aliases and their history, and the
form that moves an alias through the gate (`ferry.gate.promote.promote`, as `ferry promote`
does) once the admin token is checked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ferry.errors import InvalidInputError, ModelNotFoundError, VersionNotFoundError
from ferry.registry import Event, RegisteredModel, Registry
from ferry.registry.entities import Status
from ferry.text import is_whole_number
from ferry.ui.context import UIContext
from ferry.ui.pages.formats import FMT, check_state
from ferry.ui.render import render_page
from ferry.uri import validate_name

if TYPE_CHECKING:
    from ferry.gate.promote import Promotion


MAX_NOTICE_CHARS = 200
"""Longest alias name the "moved" notice repeats from the query."""
MAX_FORM_BYTES = 16 * 1024
"""Largest alias form read; a bigger body is refused before it is kept."""
MAX_FORM_FIELDS = 20
MAX_HISTORY = 300
"""History lines shown on a model page, newest first (the rest: `ferry history NAME`)."""


@dataclass(frozen=True)
class AliasLine:
    """An alias, the version it holds, and its last move."""

    alias: str
    version: int
    moved: Event | None


@dataclass(frozen=True)
class FormState:
    """What the alias form shows again after a refusal (never the token)."""

    values: dict[str, str] = field(default_factory=dict)
    error: str = ""
    notice: str = ""


def checked_name(name: str) -> str:
    """A model name from the path; an invalid one reads as a model that does not exist."""
    try:
        return validate_name(name)
    except InvalidInputError:
        raise ModelNotFoundError(f"no model named {name!r}: the models page lists them",
                                 model=None) from None


def show_model(context: UIContext, request: Request) -> Response:
    """`/ui/models/NAME`; `?moved=ALIAS` after the form moved an alias says so."""
    name = checked_name(request.path_params["name"])
    moved = request.query_params.get("moved", "")[:MAX_NOTICE_CHARS]
    return model_response(context, request, name, FormState(), moved=moved)


def model_response(context: UIContext, request: Request, name: str, form: FormState,
                   status_code: int = 200, moved: str = "") -> Response:
    """The model page, with the alias form in `form`'s state."""
    registry = context.registry
    model = registry.model(name)
    versions = registry.versions(name)
    history = registry.history(name)
    aliases = alias_lines(model, history)
    if moved and not form.notice:
        form = FormState(form.values, form.error, _moved_notice(aliases, moved))
    return render_page(request, "model.html", title=f"Model {name}", active="models",
                       status_code=status_code, model=model, versions=versions,
                       aliases=aliases, history=list(reversed(history))[:MAX_HISTORY],
                       older=max(0, len(history) - MAX_HISTORY), form=form,
                       ready=[v.version for v in versions if v.status == Status.READY],
                       locked=not context.admin_token, check_state=check_state, fmt=FMT)


def alias_lines(model: RegisteredModel, history: Sequence[Event]) -> list[AliasLine]:
    """Every alias with its version and the history event that last set it."""
    last: dict[str, Event] = {}
    for event in history:
        if event.alias and event.event in ("alias_set", "alias_moved"):
            last[event.alias] = event
    return [AliasLine(alias, version, last.get(alias))
            for alias, version in sorted(model.aliases.items())]


def _moved_notice(aliases: Sequence[AliasLine], alias: str) -> str:
    line = next((a for a in aliases if a.alias == alias), None)
    if line is None:
        return ""
    was = line.moved.from_version if line.moved else None
    return f"{alias} now points at version {line.version}" + (
        f" (moved from {was})" if was is not None else "")


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body, at most `MAX_FORM_BYTES` read and `MAX_FORM_FIELDS` fields;
    the first value of each field. Not Starlette's `request.form()`: it does not bound an
    urlencoded body's size, where this stops reading at the bound."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise InvalidInputError(f"the form is larger than {MAX_FORM_BYTES} bytes")
    try:
        fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True,
                          max_num_fields=MAX_FORM_FIELDS)
    except ValueError as exc:
        raise InvalidInputError(f"the form has more than {MAX_FORM_FIELDS} fields") from exc
    return {key: values[0] for key, values in fields.items()}


def promote_from_form(context: UIContext, request: Request,
                      form: dict[str, str]) -> Response:
    """Move an alias as `ferry promote` does; back to the model page (303) when it moved."""
    name = checked_name(request.path_params["name"])
    context.registry.model(name)
    kept = {k: v for k, v in form.items() if k != "token"}
    try:
        done = _promote(context.registry, name, form)
    except (InvalidInputError, VersionNotFoundError) as exc:
        return model_response(context, request, name, FormState(kept, error=str(exc)), 400)
    if done.moved:
        return RedirectResponse(f"{FMT.href(name)}?moved={quote(done.alias)}#aliases",
                                status_code=303)
    if done.from_version == done.to_version:
        note = f"{done.alias} already points at version {done.to_version}"
        return model_response(context, request, name, FormState(kept, notice=note))
    return model_response(context, request, name, FormState(kept, error=_refusal(done)), 409)


def _refusal(done: Promotion) -> str:
    """Why the gate kept the alias where it was (a `Promotion` that did not move)."""
    report = f" (gate report {done.report.id})" if done.report else ""
    return (f"the gate failed{report}: {done.alias} stays at version {done.from_version};"
            f" failed checks: {', '.join(done.to_dict()['failures']) or 'none named'}")


def _promote(registry: Registry, name: str, form: Mapping[str, str]) -> Promotion:
    """`ferry.gate.promote.promote` with the form's values, checked as the CLI checks them."""
    from ferry.gate.performance import TimingSettings
    from ferry.gate.promote import promote

    version = _form_version(form.get("version", ""))
    data, label = form.get("data", "").strip(), form.get("label", "").strip()
    if bool(data) != bool(label):
        raise InvalidInputError("give the data path and the label column together")
    if data and not Path(data).is_file():
        raise InvalidInputError(f"data {data!r}: no such file on the server")
    override = form.get("override") == "on"
    reason = form.get("reason", "").strip() or None
    timing = TimingSettings() if form.get("timing") == "on" else None
    return promote(name, form.get("alias", "").strip(), version, data or None, label or None,
                   override=override, reason=reason, registry=registry, timing=timing)


def _form_version(text: str) -> int:
    text = text.strip()
    if not is_whole_number(text) or len(text) > 9:
        raise InvalidInputError(f"version {text!r}: choose a version number")
    return int(text)



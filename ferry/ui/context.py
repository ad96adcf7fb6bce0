"""What the dashboard's pages read from: one small record handed to every page."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from ferry.errors import UnauthorizedError
from ferry.registry import Registry


@dataclass(frozen=True)
class UIContext:
    """The registry the pages show; `admin_token` guards every change made from a page (no
    token set: the pages change nothing); `live_metrics` gives the serving process's
    Prometheus exposition (None under `ferry ui`, which serves no models); `monitoring_url`
    is the monitoring store's URL (None: the default store)."""

    registry: Registry
    admin_token: str | None = None
    live_metrics: Callable[[], bytes] | None = None
    monitoring_url: str | None = None

    def authorize(self, token: str | None) -> None:
        """Refuse a change without the admin token (or when none is set)."""
        if not self.admin_token:
            raise UnauthorizedError("changes from the dashboard need an admin token: start"
                                    " the server with FERRY_ADMIN_TOKEN set")
        if not (token and hmac.compare_digest(token, self.admin_token)):
            raise UnauthorizedError("the admin token is missing or wrong")

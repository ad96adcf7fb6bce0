"""The access log: one JSON line per request, whatever the protocol, on `ferry.access`."""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger("ferry.access")


def enabled() -> bool:
    return log.isEnabledFor(logging.INFO)


def log_request(**fields: Any) -> None:
    log.info(json.dumps(fields))

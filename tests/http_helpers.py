"""A small JSON-over-HTTP client for tests that talk to a server on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
from typing import Any


def post_json(base_url: str, path: str, document: Any) -> tuple[int, Any]:
    """POST `document` as JSON to `base_url` + `path`; the status and the decoded answer."""
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("POST", path, json.dumps(document).encode(),
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()

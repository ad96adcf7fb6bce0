"""HTTP body compression, as tritonclient's `request_compression_algorithm` and
`response_compression_algorithm` use it: `Content-Encoding: gzip | deflate` on requests,
`Accept-Encoding` on responses.

A compressed request is inflated under the server's request limit, so a small body that
inflates past it (a zip bomb) is refused with 413 without ever being held whole. Responses
under `MIN_COMPRESSED_BYTES` are sent as they are: compressing them costs more than it saves.
"""

from __future__ import annotations

import zlib

from ferry.errors import InvalidInputError, RequestTooLargeError
from ferry.text import as_number

GZIP = "gzip"
DEFLATE = "deflate"
IDENTITY = "identity"
MIN_COMPRESSED_BYTES = 1024
_WBITS = {GZIP: (16 + zlib.MAX_WBITS,), DEFLATE: (zlib.MAX_WBITS, -zlib.MAX_WBITS)}
"""deflate is zlib-wrapped by the standard (and by tritonclient); raw deflate is accepted too."""


def decompress(body: bytes, encoding: bytes | None, limit: int) -> bytes:
    """The body, inflated when `encoding` (the Content-Encoding header) says it is compressed."""
    name = _encoding_name(encoding)
    if name == IDENTITY:
        return body
    if name not in _WBITS:
        raise InvalidInputError(f"Content-Encoding {name!r} is not supported: send the body"
                                " as gzip, deflate or uncompressed")
    for wbits in _WBITS[name]:
        try:
            return _inflate(body, wbits, limit)
        except zlib.error as exc:
            error = exc
    raise InvalidInputError(f"the body is not valid {name} data (Content-Encoding: {name}):"
                            f" {error}")


def _encoding_name(encoding: bytes | None) -> str:
    if not encoding:
        return IDENTITY
    return encoding.decode("latin-1").strip().lower()


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    data = inflater.decompress(body, limit + 1)
    if len(data) > limit or inflater.unconsumed_tail:
        raise RequestTooLargeError(f"the request body inflates past the limit of {limit} bytes")
    if not inflater.eof:
        raise zlib.error("the compressed stream ends early")
    return data


def response_encoding(accept: bytes | None) -> str | None:
    """The encoding to answer with for an Accept-Encoding header (gzip first), or None."""
    if not accept:
        return None
    offered = {_token(part) for part in accept.decode("latin-1").lower().split(",")}
    offered.discard(None)
    for name in (GZIP, DEFLATE):
        if name in offered:
            return name
    return None


def _token(part: str) -> str | None:
    name, _, params = part.strip().partition(";")
    quality = params.strip().removeprefix("q=")
    if params and as_number(quality) == 0:
        return None
    return name.strip() or None


def compress(payload: bytes, encoding: str | None) -> tuple[bytes, str | None]:
    """The payload as sent, and the Content-Encoding it was sent with (None: as it is)."""
    if encoding is None or len(payload) < MIN_COMPRESSED_BYTES:
        return payload, None
    if encoding == GZIP:
        compressor = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    else:
        compressor = zlib.compressobj()
    return compressor.compress(payload) + compressor.flush(), encoding

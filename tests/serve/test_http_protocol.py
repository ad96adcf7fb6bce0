"""The HTTP/1.1 details of the inference fast path (`ferry.serve.rest.protocol`), over raw
sockets: pipelining, `Expect: 100-continue`, size limits, HTTP/1.0 and clients that leave."""

from __future__ import annotations

import inspect
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from conftest import Served, SlowOrFailing
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

import ferry
from ferry.registry import Registry
from ferry.serve.rest.protocol import InferExchange
from ferry.serve.server import RunningServer, serve_in_thread
from ferry.serve.settings import ServeSettings

IRIS_BODY = json.dumps({"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32",
                                    "data": [5.1, 3.5, 1.4, 0.2]}]}).encode()


def connect(address: str) -> socket.socket:
    host, port = address.split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def post(path: str, body: bytes, extra: str = "", version: str = "1.1") -> bytes:
    return (f"POST {path} HTTP/{version}\r\nHost: test\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def read_responses(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """`count` HTTP responses from the socket (each with a Content-Length)."""
    data, responses = b"", []
    while len(responses) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed after {len(responses)} responses: {data!r}")
            data += chunk
        head, data = data.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(data) < length:
            data += sock.recv(65536)
        responses.append((status, headers, data[:length]))
        data = data[length:]
    return responses


def closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_pipelined_requests_answered_in_order_and_alike(served: Served) -> None:
    with connect(served.http_address) as sock:
        bad = post("/v2/models/iris/infer", b"{")
        sock.sendall(post("/v2/models/iris/infer", IRIS_BODY) + bad
                     + post("/v2/models/iris/infer", IRIS_BODY))
        first, second, third = read_responses(sock, 3)

    assert [first[0], second[0], third[0]] == [200, 400, 200]
    assert "invalid JSON" in json.loads(second[2])["error"]
    assert json.loads(first[2]) == json.loads(third[2])
    assert json.loads(first[2])["outputs"][0]["name"] == "label"


def test_expect_100_continue(served: Served) -> None:
    with connect(served.http_address) as sock:
        head, body = post("/v2/models/iris/infer", IRIS_BODY,
                          "Expect: 100-continue\r\n").split(b"\r\n\r\n", 1)
        sock.sendall(head + b"\r\n\r\n")
        interim = sock.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        [(status, _, answer)] = read_responses(sock, 1)

    assert status == 200
    assert json.loads(answer)["model_name"] == "iris"


def test_declared_size_over_the_limit_refused_before_the_body(served: Served) -> None:
    limit = served.running.server.settings.max_request_bytes
    with connect(served.http_address) as sock:
        sock.sendall((f"POST /v2/models/iris/infer HTTP/1.1\r\nHost: t\r\n"
                      f"Content-Length: {limit + 1}\r\nExpect: 100-continue\r\n\r\n").encode())
        [(status, headers, body)] = read_responses(sock, 1)
        assert closed(sock)

    assert status == 413
    assert headers["connection"] == "close"
    assert "over the limit" in json.loads(body)["error"]


def test_chunked_body_over_the_limit_is_413_and_connection_goes_on(served: Served) -> None:
    limit = served.running.server.settings.max_request_bytes
    chunk = b"x" * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk)
                      for _ in range(limit // len(chunk) + 2))
    with connect(served.http_address) as sock:
        sock.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: t\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
        sock.sendall(post("/v2/models/iris/infer", IRIS_BODY))
        (status, _, body), (after, _, _) = read_responses(sock, 2)

    assert status == 413
    assert "over the limit" in json.loads(body)["error"]
    assert after == 200


def test_http_1_0_gets_its_answer_and_a_closed_connection(served: Served) -> None:
    with connect(served.http_address) as sock:
        sock.sendall(post("/v2/models/iris/infer", IRIS_BODY, version="1.0"))
        [(status, headers, body)] = read_responses(sock, 1)
        assert closed(sock)

    assert status == 200
    assert headers["connection"] == "close"
    assert json.loads(body)["outputs"]


def test_percent_encoded_path_is_decoded(served: Served) -> None:
    with connect(served.http_address) as sock:
        sock.sendall(post("/v2/models/%69ris/infer", IRIS_BODY))
        [(status, _, body)] = read_responses(sock, 1)

    assert status == 200
    assert json.loads(body)["model_name"] == "iris"


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_client_leaving_before_the_answer_is_counted_and_skipped(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path / 'r.db'}", artifacts_url=str(tmp_path / "art"))
    x = np.ones((4, 3), dtype=np.float32)
    ferry.register(SlowOrFailing(0.4).fit(x, x[:, 0]), "slow", sample=x, force=True,
                   registry=registry)
    running = serve_in_thread(["slow"], registry=registry, settings=ServeSettings())
    try:
        address = running.http_url.removeprefix("http://")
        body = json.dumps({"inputs": [{"name": "X", "shape": [1, 3], "datatype": "FP32",
                                       "data": [1, 2, 3]}]}).encode()
        first = connect(address)
        first.sendall(post("/v2/models/slow/infer", body))
        time.sleep(0.1)  # its batch is running; the next one queues behind it
        second = connect(address)
        second.sendall(post("/v2/models/slow/infer", body))
        time.sleep(0.1)
        second.close()
        [(status, _, answer)] = read_responses(first, 1)
        first.close()
        deadline = time.monotonic() + 5
        text = ""
        while time.monotonic() < deadline:
            with connect(address) as sock:
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
                text = read_responses(sock, 1)[0][2].decode()
            if metric(text, "ferry_inference_requests_total", status="499"):
                break
            time.sleep(0.1)
    finally:
        running.stop()

    assert status == 200, answer
    assert metric(text, "ferry_inference_requests_total", model="slow", status="499") == 1
    assert metric(text, "ferry_inference_requests_total", model="slow", status="200") == 1
    assert metric(text, "ferry_inflight_requests", protocol="http") == 0
    batches = re.search(r'ferry_batch_size_count\{[^}]*model="slow"[^}]*\} (\S+)', text)
    assert batches is not None and float(batches.group(1)) == 1  # the dropped one never ran


UPLOAD_TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server with a short request timeout; its HTTP address."""
    running = serve_iris(tmp_path_factory.mktemp("impatient"),
                         ServeSettings(request_timeout_s=UPLOAD_TIMEOUT_S))
    yield running.http_url.removeprefix("http://")
    running.stop()


def serve_iris(root: Path, settings: ServeSettings | None = None) -> RunningServer:
    """A server of an iris classifier registered under `root`, HTTP only."""
    registry = Registry(f"sqlite:///{root / 'r.db'}", artifacts_url=str(root / "art"))
    x, y = load_iris(return_X_y=True)
    ferry.register(LogisticRegression(max_iter=300).fit(x, y), "iris",
                   sample=x.astype(np.float32), registry=registry)
    return serve_in_thread(["iris"], registry=registry, grpc_port=None, settings=settings)


def scrape(address: str) -> str:
    with connect(address) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        return read_responses(sock, 1)[0][2].decode()


def settled_metrics(address: str, status: str) -> str:
    """/metrics once a request with `status` has been counted (or after 5 s)."""
    deadline = time.monotonic() + 5
    text = scrape(address)
    while not metric(text, "ferry_inference_requests_total", status=status):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
        text = scrape(address)
    return text


@pytest.mark.parametrize("path", ["/v2/models/iris/infer",  # the fast path
                                  "/v2/models/%69ris/infer"])  # the ASGI way
def test_a_stalled_upload_is_answered_408_and_closed(impatient: str, path: str) -> None:
    head, body = post(path, IRIS_BODY).split(b"\r\n\r\n", 1)
    before = metric(scrape(impatient), "ferry_inference_requests_total", status="408")
    with connect(impatient) as sock:
        sock.sendall(head + b"\r\n\r\n" + body[:10])
        started = time.monotonic()
        [(status, headers, answer)] = read_responses(sock, 1)
        waited = time.monotonic() - started
        assert closed(sock)

    assert status == 408, answer
    assert headers["connection"] == "close"
    assert "timeout" in json.loads(answer)["error"]
    assert UPLOAD_TIMEOUT_S * 0.8 < waited < UPLOAD_TIMEOUT_S + 2
    text = settled_metrics(impatient, "408")
    assert metric(text, "ferry_inference_requests_total", status="408") == before + 1
    assert metric(text, "ferry_inflight_requests", protocol="http") == 0


def test_an_abandoned_upload_is_closed_as_client_gone(impatient: str) -> None:
    head, body = post("/v2/models/iris/infer", IRIS_BODY).split(b"\r\n\r\n", 1)
    before = metric(scrape(impatient), "ferry_inference_requests_total", status="499")
    with connect(impatient) as sock:
        sock.sendall(head + b"\r\n\r\n" + body[:10])
        time.sleep(0.05)

    text = settled_metrics(impatient, "499")
    assert metric(text, "ferry_inference_requests_total", status="499") == before + 1
    assert metric(text, "ferry_inflight_requests", protocol="http") == 0


def test_an_upload_in_time_is_answered(impatient: str) -> None:
    head, body = post("/v2/models/iris/infer", IRIS_BODY).split(b"\r\n\r\n", 1)
    with connect(impatient) as sock:
        sock.sendall(head + b"\r\n\r\n" + body[:10])
        time.sleep(UPLOAD_TIMEOUT_S / 3)
        sock.sendall(body[10:])
        time.sleep(UPLOAD_TIMEOUT_S)  # past the timeout counted from the headers: answered
        sock.sendall(post("/v2/models/iris/infer", IRIS_BODY))
        first, second = read_responses(sock, 2)

    assert (first[0], second[0]) == (200, 200)


BYPASSED = {"on_headers_complete", "on_body", "on_message_complete"}
"""uvicorn methods that `InferHttpProtocol` overrides and calls only for uvicorn's own cycles."""


def test_uvicorn_internals_the_fast_path_uses_are_there(served: Served) -> None:
    """The fast path subclasses uvicorn internals (pyproject caps uvicorn's version): this
    fails, naming what changed, on a uvicorn that no longer has them."""
    methods = ["connection_made", "connection_lost", "data_received", "on_headers_complete",
               "on_body", "on_message_complete", "on_response_complete", "shutdown"]
    missing = [m for m in methods if not callable(getattr(HttpToolsProtocol, m, None))]
    assert not missing, f"uvicorn's HttpToolsProtocol lost {missing}"
    assert STATUS_LINE[200].startswith(b"HTTP/1.1 200"), "uvicorn's STATUS_LINE changed"
    assert callable(getattr(uvicorn.Server, "capture_signals", None)), \
        "uvicorn.Server.capture_signals is gone: ferry's shutdown would race uvicorn's"
    server_state = served.running.server._uvicorn.server_state  # type: ignore[union-attr]
    with connect(served.http_address) as sock:
        sock.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: t\r\n")  # headers begun
        time.sleep(0.2)
        [protocol] = list(server_state.connections)
        attributes = ["parser", "url", "headers", "client", "transport", "flow", "pipeline",
                      "limit_concurrency", "cycle", "expect_100_continue", "server_state",
                      "loop"]
        missing = [a for a in attributes if not hasattr(protocol, a)]
        assert not missing, f"uvicorn's HttpToolsProtocol instances lost {missing}"
        assert isinstance(protocol.server_state.default_headers, list)


def test_uvicorn_reads_nothing_of_a_cycle_that_infer_exchange_lacks() -> None:
    """uvicorn's protocol touches `self.cycle` outside the methods the fast path takes over;
    `InferExchange` stands in for its cycle there and must have what it reads."""
    read: set[str] = set()
    for name, method in inspect.getmembers(HttpToolsProtocol, inspect.isfunction):
        if name not in BYPASSED:
            read |= set(re.findall(r"self\.cycle\.(\w+)", inspect.getsource(method)))
    missing = read - set(InferExchange.__slots__)
    assert read and not missing, f"uvicorn now reads cycle.{missing}; InferExchange lacks it"


KEEP_ALIVE_S = 0.6


@pytest.fixture(scope="module")
def brief(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server that closes a connection idle for `KEEP_ALIVE_S` after its last answer."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("ferry.serve.server.KEEP_ALIVE_S", KEEP_ALIVE_S)
        running = serve_iris(tmp_path_factory.mktemp("keep-alive"))
    yield running.http_url.removeprefix("http://")
    running.stop()


@pytest.mark.parametrize("path", ["/v2/models/iris/infer",  # the fast path
                                  "/v2/models/%69ris/infer"])  # the ASGI way
def test_a_connection_idle_for_the_keep_alive_time_is_closed(brief: str, path: str) -> None:
    with connect(brief) as sock:
        sock.sendall(post(path, IRIS_BODY))
        [(status, _, _)] = read_responses(sock, 1)
        answered = time.monotonic()
        assert closed(sock)
        idle = time.monotonic() - answered

    assert status == 200
    assert KEEP_ALIVE_S * 0.8 < idle < KEEP_ALIVE_S + 2


def test_a_connection_in_use_outlives_the_keep_alive_time(brief: str) -> None:
    """Requests each sent within the keep-alive time of the last answer keep the
    connection open, however long they go on (the timer counts idle time only)."""
    with connect(brief) as sock:
        started = time.monotonic()
        while time.monotonic() - started < KEEP_ALIVE_S * 3:
            sock.sendall(post("/v2/models/iris/infer", IRIS_BODY))
            [(status, _, _)] = read_responses(sock, 1)
            assert status == 200
            time.sleep(KEEP_ALIVE_S * 0.6)
        sock.sendall(post("/v2/models/%69ris/infer", IRIS_BODY))
        assert read_responses(sock, 1)[0][0] == 200

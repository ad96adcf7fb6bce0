"""The HTTP/1.1 details of the inference fast path (`ferry.serve.rest.protocol`), over raw
sockets: pipelining, `Expect: 100-continue`, size limits, HTTP/1.0 and clients that leave."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import numpy as np
from conftest import Served, SlowOrFailing

import ferry
from ferry.registry import Registry
from ferry.serve.server import serve_in_thread
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

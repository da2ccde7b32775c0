"""The Skill-Mix chat server against hostile input: bounded time, size, nesting, Host/Origin, connections.

Every test talks raw HTTP to a server it starts on 127.0.0.1 (loops are bounded by deadlines).
"""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from brainlike.analyses.skills import ChatServer, OpenAIChatClient, ScriptedClient
from brainlike.errors import BrainlikeError

TIMEOUT = 0.5  # the server's read timeout in these tests (s)


@pytest.fixture()
def server():
    srv = ChatServer(ScriptedClient(lambda m: "echo: " + m[-1]["content"]), read_timeout_s=TIMEOUT,
                     max_body_bytes=10_000, max_connections=64).start()
    yield srv
    srv.stop()


def _request(srv: ChatServer, body: bytes = b"", *, length: str | None = None, host: str | None = None,
             headers: dict | None = None, method: str = "POST", path: str = "/v1/chat/completions") -> bytes:
    host = host if host is not None else f"127.0.0.1:{srv.port}"
    head = {"Host": host, "Content-Type": "application/json", "Content-Length": str(len(body))
            if length is None else length, **(headers or {})}
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in head.items() if v is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _exchange(srv: ChatServer, raw: bytes, wait_s: float = 5.0) -> tuple[int, dict, float]:
    """Send ``raw``, read the answer until the server closes or ``wait_s`` passes: (status, JSON body, s)."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=wait_s) as s:
        s.sendall(raw)
        data = b""
        while time.monotonic() - t0 < wait_s:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            clen = [ln.split(b":", 1)[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
            if clen and len(rest) >= int(clen[0]):
                break
    status = int(data.split(b" ", 2)[1])
    body = json.loads(data.partition(b"\r\n\r\n")[2] or b"null")
    return status, body, time.monotonic() - t0


def _chat_body(content: str = "hi") -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": content}]}).encode()


def test_valid_request_is_answered(server):
    status, body, _ = _exchange(server, _request(server, _chat_body("hello")))
    assert status == 200 and body["choices"][0]["message"]["content"] == "echo: hello"
    client = OpenAIChatClient(server.base_url, "m", timeout_s=5, max_retries=0)
    assert client.chat([{"role": "user", "content": "x"}]).text == "echo: x"


def test_truncated_body_gets_408_within_the_timeout(server):
    body = _chat_body()
    status, answer, seconds = _exchange(server, _request(server, body[:10], length=str(len(body))))
    assert status == 408 and "did not arrive" in answer["error"]["message"]
    assert TIMEOUT * 0.8 <= seconds < TIMEOUT + 2.0


def test_body_dripped_slowly_gets_408_after_the_total_timeout(server):
    body = _chat_body()
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(_request(server, b"", length=str(len(body))))
        answer = b""
        for byte in body:                      # one byte every 0.1 s: each read is quick, the whole is not
            try:
                s.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.1)
            s.setblocking(False)
            try:
                answer += s.recv(4096)
            except BlockingIOError:
                pass
            except OSError:
                break
            finally:
                s.setblocking(True)
            if answer or time.monotonic() - t0 > TIMEOUT + 3:
                break
    assert answer.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - t0 < TIMEOUT + 1.5


def test_truncated_connections_free_their_threads(server):
    body = _chat_body()
    before = threading.active_count()
    socks = []
    for _ in range(50):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        s.sendall(_request(server, body[:5], length=str(len(body))))
        socks.append(s)
    deadline = time.monotonic() + 3.0
    while threading.active_count() < before + 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    peak = threading.active_count()
    deadline = time.monotonic() + TIMEOUT + 5.0
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    after = threading.active_count()
    for s in socks:
        s.close()
    assert peak >= before + 10          # the connections really held threads
    assert after <= before              # ... and every one was freed by the read timeout
    status, _, _ = _exchange(server, _request(server, _chat_body()))
    assert status == 200                # still serving


def test_idle_connection_is_closed_after_the_timeout(server):
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        assert s.recv(1024) == b""      # the server closed the silent connection
    assert time.monotonic() - t0 < TIMEOUT + 2.0


@pytest.mark.parametrize("length", ["abc", "-5", "1e3", "5, 7"])
def test_bad_content_length_is_400(server, length):
    status, body, _ = _exchange(server, _request(server, _chat_body(), length=length))
    assert status == 400 and "Content-Length" in body["error"]["message"]


def test_missing_content_length_is_411(server):
    raw = _request(server, b"", length=None, headers={"Content-Length": None})
    status, body, _ = _exchange(server, raw)
    assert status == 411 and "Content-Length" in body["error"]["message"]
    status, _, _ = _exchange(server, _request(server, b"", headers={"Transfer-Encoding": "chunked"}))
    assert status == 411


def test_body_over_the_limit_is_413_without_reading_it(server):
    status, body, seconds = _exchange(server, _request(server, b"", length=str(server.max_body_bytes + 1)))
    assert status == 413 and "over the limit" in body["error"]["message"]
    assert seconds < TIMEOUT            # answered at once, not after waiting for the body


@pytest.mark.parametrize("depth", [10_000, 100])
def test_deeply_nested_json_is_400(depth):
    with ChatServer(ScriptedClient(lambda m: "x"), max_body_bytes=100_000) as srv:
        nested = b'{"messages": ' + b"[" * depth + b"]" * depth + b"}"
        status, body, _ = _exchange(srv, _request(srv, nested))
        assert status == 400 and "nests deeper" in body["error"]["message"]
        status, _, _ = _exchange(srv, _request(srv, _chat_body()))
        assert status == 200


@pytest.mark.parametrize("host", ["evil.example:80", "127.0.0.1:1", "attacker.test", ""])
def test_wrong_host_header_is_403(server, host):
    status, body, _ = _exchange(server, _request(server, _chat_body(), host=host))
    assert status == 403 and "Host header" in body["error"]["message"]
    assert [r.status for r in server.requests] == [403]


def test_other_names_of_this_server_are_accepted(server):
    for host in (f"localhost:{server.port}", f"[::1]:{server.port}"):
        status, _, _ = _exchange(server, _request(server, _chat_body(), host=host))
        assert status == 200


def test_web_pages_cannot_drive_it(server):
    status, _, _ = _exchange(server, _request(server, _chat_body(), headers={"Origin": "https://evil.example"}))
    assert status == 403
    # a cross-origin "simple" POST (no preflight) can only send text/plain
    status, body, _ = _exchange(server, _request(server, _chat_body(), headers={"Content-Type": "text/plain"}))
    assert status == 415 and "application/json" in body["error"]["message"]
    assert not any(r.status == 200 for r in server.requests)


def test_connections_beyond_the_limit_get_503():
    with ChatServer(ScriptedClient(lambda m: "x"), max_connections=2, read_timeout_s=3.0) as srv:
        held = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(2)]
        time.sleep(0.2)
        status, body, seconds = _exchange(srv, _request(srv, _chat_body()))
        assert status == 503 and seconds < 1.0
        for s in held:
            s.close()
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            status, _, _ = _exchange(srv, _request(srv, _chat_body()))
            if status == 200:
                break
            time.sleep(0.05)
        assert status == 200


def test_request_log_is_bounded():
    with ChatServer(ScriptedClient(lambda m: "x"), max_log=5) as srv:
        for _ in range(12):
            assert _exchange(srv, _request(srv, _chat_body()))[0] == 200
        assert len(srv.requests) == 5 and srv.n_chat_requests == 12
        srv.clear()
        assert len(srv.requests) == 0 and srv.n_chat_requests == 0


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.org"])
def test_listens_on_loopback_only(host):
    with pytest.raises(BrainlikeError, match="loopback only"):
        ChatServer(ScriptedClient(lambda m: "x"), host=host)

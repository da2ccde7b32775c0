"""A tiny OpenAI-compatible chat server (standard library only) in front of any :class:`ChatClient`.

``ChatServer(HFChatClient("stories260k")).start()`` serves ``GET /v1/models`` and
``POST /v1/chat/completions`` on ``127.0.0.1`` (a free port by default; see :attr:`ChatServer.base_url`).
It exists so that the Skill-Mix harness can be exercised over real HTTP without network access, and so
that a local model can be shared by several processes. Fault injection for tests: queue :class:`Fault`
objects and the next chat requests get them in order (a delay before answering, an HTTP error status, a
non-JSON body, or a replacement answer text such as malformed grader JSON).

Not a production server: one model, requests answered one at a time by the backend's lock, no auth.
"""
from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

from brainlike.analyses.skills.clients import ChatClient, ClientError
from brainlike.errors import BrainlikeError


@dataclass(frozen=True)
class Fault:
    """One injected fault for the next chat request.

    Attributes:
        kind: ``"delay"`` (sleep ``seconds`` then answer normally), ``"error"`` (answer HTTP ``status`` with a
            JSON error body), ``"garbage"`` (HTTP 200 with a body that is not JSON), ``"text"`` (answer
            ``text`` instead of asking the backend).
    """

    kind: Literal["delay", "error", "garbage", "text"]
    seconds: float = 0.0
    status: int = 500
    text: str = ""


@dataclass
class RequestRecord:
    """What the server saw: path, parsed body (for POST), the fault applied, HTTP status sent."""

    path: str
    body: dict | None
    fault: str | None
    status: int
    time: float


class ChatServer:
    """OpenAI-compatible server backed by a chat client.

    Args:
        backend: answers the requests (:class:`HFChatClient`, :class:`ScriptedClient`, …).
        host / port: bind address (``port=0`` picks a free port).
        model_name: the id reported by ``/v1/models`` and in responses (default ``backend.name``).
        max_tokens_cap: upper limit on ``max_tokens`` honoured per request.

    Use as a context manager (``with ChatServer(...) as srv: srv.base_url``) or ``start()`` / ``stop()``.
    """

    def __init__(self, backend: ChatClient, *, host: str = "127.0.0.1", port: int = 0,
                 model_name: str | None = None, max_tokens_cap: int = 1024):
        self.backend = backend
        self.host = host
        self.port = int(port)
        self.model_name = model_name or getattr(backend, "name", "local")
        self.max_tokens_cap = int(max_tokens_cap)
        self.requests: list[RequestRecord] = []
        self._faults: collections.deque[Fault] = collections.deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> "ChatServer":
        if self._httpd is not None:
            return self
        handler = _make_handler(self)
        try:
            self._httpd = ThreadingHTTPServer((self.host, self.port), handler)
        except OSError as exc:
            raise BrainlikeError(f"cannot listen on {self.host}:{self.port}: {exc}") from None
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"chat-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "ChatServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://host:port/v1`` (after :meth:`start`)."""
        return f"http://{self.host}:{self.port}/v1"

    # -- faults and bookkeeping ------------------------------------------------------------------------------
    def add_faults(self, *faults: Fault) -> None:
        """Queue faults; each chat request takes the next one."""
        with self._lock:
            self._faults.extend(faults)

    def clear(self) -> None:
        """Forget queued faults and the request log."""
        with self._lock:
            self._faults.clear()
            self.requests.clear()

    @property
    def n_chat_requests(self) -> int:
        return sum(r.path.endswith("/chat/completions") for r in self.requests)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _log(self, rec: RequestRecord) -> None:
        with self._lock:
            self.requests.append(rec)

    # -- request handling --------------------------------------------------------------------------------------
    def completion(self, body: dict, fault: Fault | None) -> dict:
        """The OpenAI chat-completion object for a parsed request body."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("content", ""), str) and "role" in m for m in messages):
            raise _BadRequest("'messages' must be a non-empty list of {role, content} objects")
        try:
            max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 256)
            temperature = float(body.get("temperature", 0.0) or 0.0)
            seed = body.get("seed")
            seed = int(seed) if seed is not None else None
        except (TypeError, ValueError):
            raise _BadRequest("max_tokens, temperature and seed must be numbers") from None
        max_tokens = max(1, min(max_tokens, self.max_tokens_cap))
        if fault is not None and fault.kind == "text":
            text, finish, usage = fault.text, "stop", {}
        else:
            resp = self.backend.chat([{"role": m["role"], "content": m.get("content", "")} for m in messages],
                                     max_tokens=max_tokens, temperature=temperature, seed=seed)
            text, finish, usage = resp.text, resp.finish_reason or "stop", resp.usage
        return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
                "model": self.model_name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": finish}],
                "usage": usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}


class _BadRequest(Exception):
    pass


def _err(message: str, kind: str, code: int) -> dict:
    return {"error": {"message": message, "type": kind, "code": code}}


def _make_handler(server: ChatServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "brainlike-chat/0.1"

        def log_message(self, format, *args):  # noqa: A002 - silence per-request stderr logging
            pass

        def _send(self, status: int, payload: dict | bytes, content_type: str = "application/json") -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                pass  # the client gave up (timeout); nothing to do

        def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
            self._send(status, _err(message, kind, status))

        def do_GET(self):  # noqa: N802 - http.server API
            path = self.path.split("?")[0].rstrip("/")
            if path in ("/v1/models", "/models"):
                server._log(RequestRecord(path, None, None, 200, time.time()))
                self._send(200, {"object": "list", "data": [{"id": server.model_name, "object": "model",
                                                             "created": 0, "owned_by": "brainlike"}]})
            elif path in ("/health", "/v1/health"):
                self._send(200, {"status": "ok"})
            else:
                server._log(RequestRecord(path, None, None, 404, time.time()))
                self._error(404, f"no route {self.path}")

        def do_POST(self):  # noqa: N802 - http.server API
            path = self.path.split("?")[0].rstrip("/")
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if path not in ("/v1/chat/completions", "/chat/completions"):
                server._log(RequestRecord(path, None, None, 404, time.time()))
                self._error(404, f"no route {self.path}")
                return
            try:
                body = json.loads(raw.decode("utf-8") or "null")
                if not isinstance(body, dict):
                    raise ValueError("not an object")
            except (UnicodeDecodeError, ValueError):
                server._log(RequestRecord(path, None, None, 400, time.time()))
                self._error(400, "request body must be a JSON object")
                return
            fault = server._next_fault()
            if fault is not None and fault.kind == "delay":
                time.sleep(fault.seconds)
            payload: dict | bytes
            ctype = "application/json"
            if fault is not None and fault.kind == "error":
                status, payload = fault.status, _err(f"injected fault (HTTP {fault.status})", "server_error",
                                                     fault.status)
            elif fault is not None and fault.kind == "garbage":
                status, payload, ctype = 200, b"<html>this is not JSON", "text/html"
            else:
                try:
                    status, payload = 200, server.completion(body, fault)
                except _BadRequest as exc:
                    status, payload = 400, _err(str(exc), "invalid_request_error", 400)
                except ClientError as exc:
                    status, payload = 502, _err(f"backend failed: {exc}", "server_error", 502)
                except Exception as exc:  # noqa: BLE001 - report backend crashes as HTTP 500, keep serving
                    status, payload = 500, _err(f"backend error: {type(exc).__name__}: {exc}", "server_error", 500)
            # log before answering, so a client that has its answer always finds the request logged
            server._log(RequestRecord(path, body, fault.kind if fault else None, status, time.time()))
            self._send(status, payload, ctype)

    return Handler


def serve(model: str, host: str = "127.0.0.1", port: int = 8080, dtype: str = "float32") -> None:
    """Serve a local Hugging Face causal model at ``http://host:port/v1`` until interrupted (Ctrl-C).

    For the command line; any OpenAI-compatible client (including Skill-Mix runs on other machines of the
    same network when ``host="0.0.0.0"``) can then use it.
    """
    from brainlike.analyses.skills.clients import HFChatClient

    srv = ChatServer(HFChatClient(model, dtype=dtype), host=host, port=port).start()
    print(f"serving {srv.model_name} at {srv.base_url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()

"""A tiny OpenAI-compatible chat server (standard library only) in front of any :class:`ChatClient`.

``ChatServer(HFChatClient("stories260k")).start()`` serves ``GET /v1/models`` and
``POST /v1/chat/completions`` on ``127.0.0.1`` (a free port by default; see :attr:`ChatServer.base_url`).
It exists so that the Skill-Mix harness can be exercised over real HTTP without network access, and so
that a local model can be shared by several processes. Fault injection for tests: queue :class:`Fault`
objects and the next chat requests get them in order (a delay before answering, an HTTP error status, a
non-JSON body, or a replacement answer text such as malformed grader JSON).

Not a production server: one model, requests answered one at a time by the backend's lock, no auth.
Because it has no authentication it listens on loopback only and defends itself against what other
programs and web pages on the same machine can send it:

* time: every socket read and write has a timeout (``read_timeout_s``) and a request body must arrive
  within ``read_timeout_s`` in total, else HTTP 408 and the connection is closed (its thread ends);
* size: ``Content-Length`` must be a non-negative integer (400), is required for POST (411), and at most
  ``max_body_bytes`` (413, the body is not read); chunked bodies are refused (411);
* nesting: JSON nested deeper than ``max_json_depth`` is refused (400) before it is used;
* origin: the ``Host`` header must name this server (``127.0.0.1:<port>``, ``localhost:<port>``,
  ``[::1]:<port>``), else 403 (DNS rebinding); a browser ``Origin`` other than those is refused (403) and a
  POST body must be ``Content-Type: application/json`` (415), which a web page cannot send cross-origin
  without a CORS preflight that this server never grants;
* connections: at most ``max_connections`` at once; more are answered 503 at once.
"""
from __future__ import annotations

import collections
import ipaddress
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

    Attributes
    ----------
    kind : Literal['delay', 'error', 'garbage', 'text']
        ``"delay"`` (sleep ``seconds`` then answer normally), ``"error"`` (answer HTTP ``status`` with a
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

    Parameters
    ----------
    backend : ChatClient
        answers the requests (:class:`HFChatClient`, :class:`ScriptedClient`, …).
    host, port : str and int
        bind address (``port=0`` picks a free port).
    model_name : str | None
        the id reported by ``/v1/models`` and in responses (default ``backend.name``).
    max_tokens_cap : int
        upper limit on ``max_tokens`` honoured per request.
    read_timeout_s : float
        seconds a socket read or write may block, and the most a request body may take to
        arrive; an idle keep-alive connection is closed after it too.
    max_body_bytes : int
        largest request body accepted (bytes).
    max_json_depth : int
        deepest nesting of arrays/objects accepted in a request body.
    max_connections : int
        connections served at once (each has a thread); more get HTTP 503.
    max_log : int
        requests kept in :attr:`requests` (the newest; bodies included), so that memory stays
        bounded however many requests the server answers.

    Raises
    ------
    BrainlikeError
        ``host`` is not a loopback address (the server has no authentication).

    Use as a context manager (``with ChatServer(...) as srv: srv.base_url``) or ``start()`` / ``stop()``.
    """

    def __init__(self, backend: ChatClient, *, host: str = "127.0.0.1", port: int = 0,
                 model_name: str | None = None, max_tokens_cap: int = 1024, read_timeout_s: float = 10.0,
                 max_body_bytes: int = 4 * 1024 * 1024, max_json_depth: int = 64, max_connections: int = 32,
                 max_log: int = 1000):
        if not _is_loopback(host):
            raise BrainlikeError(f"the chat server has no authentication and listens on loopback only "
                                 f"(127.0.0.1, ::1 or localhost), not {host!r}; use host='127.0.0.1'")
        if read_timeout_s <= 0 or max_body_bytes < 0 or max_json_depth < 1 or max_connections < 1:
            raise BrainlikeError("read_timeout_s must be positive, max_body_bytes non-negative and "
                                 "max_json_depth, max_connections at least 1")
        self.backend = backend
        self.host = host
        self.read_timeout_s = float(read_timeout_s)
        self.max_body_bytes = int(max_body_bytes)
        self.max_json_depth = int(max_json_depth)
        self.max_connections = int(max_connections)
        self.port = int(port)
        self.model_name = model_name or getattr(backend, "name", "local")
        self.max_tokens_cap = int(max_tokens_cap)
        self.requests: collections.deque[RequestRecord] = collections.deque(maxlen=max(1, int(max_log)))
        self._n_chat = 0
        self._faults: collections.deque[Fault] = collections.deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> ChatServer:
        """Start serving in a background thread (no-op when running); returns the server."""
        if self._httpd is not None:
            return self
        handler = _make_handler(self)
        try:
            self._httpd = _BoundedServer((self.host, self.port), handler, self.max_connections)
        except OSError as exc:
            raise BrainlikeError(f"cannot listen on {self.host}:{self.port}: {exc}") from None
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"chat-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://host:port/v1`` (after :meth:`start`)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    def allowed_hosts(self) -> set[str]:
        """The ``Host`` header values this server answers (its loopback names with its port)."""
        names = {"127.0.0.1", "localhost", "[::1]"}
        if self.host not in ("127.0.0.1", "localhost", "::1"):
            names.add(f"[{self.host}]" if ":" in self.host else self.host)
        return {f"{n}:{self.port}" for n in names}

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
            self._n_chat = 0

    @property
    def n_chat_requests(self) -> int:
        """Chat requests seen since the start (or :meth:`clear`), also those no longer in :attr:`requests`."""
        with self._lock:
            return self._n_chat

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _log(self, rec: RequestRecord) -> None:
        with self._lock:
            self.requests.append(rec)
            self._n_chat += rec.path.endswith("/chat/completions")

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


class _RequestFailed(Exception):
    """A request refused before it reached the backend: HTTP ``status`` with ``message``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _too_deep(obj, limit: int) -> bool:
    """Whether ``obj`` (parsed JSON) nests lists/dicts deeper than ``limit`` (iterative, no recursion)."""
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (list, dict)):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in (node.values() if isinstance(node, dict) else node))
    return False


class _BoundedServer(ThreadingHTTPServer):
    """A threading HTTP server that serves at most ``max_connections`` connections at once (503 beyond)."""

    daemon_threads = True
    request_queue_size = 128  # listen backlog (socketserver's 5 makes bursts of clients wait for SYN retries)

    def __init__(self, address, handler, max_connections: int):
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            try:
                body = json.dumps(_err("too many connections; try again later", "server_error", 503)).encode()
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Connection: close\r\nRetry-After: 1\r\nContent-Length: "
                                + str(len(body)).encode() + b"\r\n\r\n" + body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _err(message: str, kind: str, code: int) -> dict:
    return {"error": {"message": message, "type": kind, "code": code}}


def _make_handler(server: ChatServer):
    allowed = None  # filled on the first request (the port is known only after binding)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "brainlike-chat/0.1"
        timeout = server.read_timeout_s  # socket timeout of every read and write (StreamRequestHandler)

        def log_message(self, format, *args):  # noqa: A002 - silence per-request stderr logging
            pass

        def _send(self, status: int, payload: dict | bytes, content_type: str = "application/json",
                  close: bool = False) -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            if close:
                self.close_connection = True
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                if close:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
                self.close_connection = True  # the client gave up (timeout); nothing to do

        def _error(self, status: int, message: str, kind: str = "invalid_request_error",
                   close: bool = False) -> None:
            self._send(status, _err(message, kind, status), close=close)

        def _refuse(self, path: str, exc: _RequestFailed) -> None:
            server._log(RequestRecord(path, None, None, exc.status, time.time()))
            # the rest of a refused body is never read: the connection cannot be reused
            self._error(exc.status, str(exc), close=True)

        def _check_origin(self) -> None:
            nonlocal allowed
            if allowed is None:
                allowed = server.allowed_hosts()
            host = (self.headers.get("Host") or "").strip().lower()
            if host not in allowed:
                raise _RequestFailed(403, f"Host header {host!r} does not name this server; use "
                                          f"{server.base_url} (requests for other host names are refused)")
            origin = self.headers.get("Origin")
            if origin is not None and origin.strip().lower() not in {f"http://{h}" for h in allowed}:
                raise _RequestFailed(403, f"requests from web pages ({origin!r}) are refused")

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding"):
                raise _RequestFailed(411, "chunked request bodies are not supported; send Content-Length")
            values = self.headers.get_all("Content-Length") or []
            if not values:
                raise _RequestFailed(411, "a POST request needs a Content-Length header")
            if len(set(v.strip() for v in values)) != 1 or not values[0].strip().isdigit():
                raise _RequestFailed(400, f"Content-Length must be one non-negative integer, not "
                                          f"{', '.join(values)!r}")
            length = int(values[0])
            if length > server.max_body_bytes:
                raise _RequestFailed(413, f"request body of {length} bytes is over the limit of "
                                          f"{server.max_body_bytes} bytes")
            deadline = time.monotonic() + server.read_timeout_s
            chunks, got = [], 0
            while got < length:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _RequestFailed(408, f"the request body did not arrive within {server.read_timeout_s:g} s")
                self.connection.settimeout(min(left, server.read_timeout_s))
                try:
                    chunk = self.rfile.read1(min(65536, length - got))
                except TimeoutError:
                    raise _RequestFailed(408, f"the request body did not arrive within "
                                              f"{server.read_timeout_s:g} s") from None
                if not chunk:
                    raise _RequestFailed(400, f"the connection closed after {got} of {length} body bytes")
                chunks.append(chunk)
                got += len(chunk)
            self.connection.settimeout(server.read_timeout_s)
            return b"".join(chunks)

        def do_GET(self):  # noqa: N802 - http.server API
            path = self.path.split("?")[0].rstrip("/")
            try:
                self._check_origin()
            except _RequestFailed as exc:
                self._refuse(path, exc)
                return
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
            try:
                self._check_origin()
                if path not in ("/v1/chat/completions", "/chat/completions"):
                    raise _RequestFailed(404, f"no route {self.path}")
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                if ctype != "application/json":
                    raise _RequestFailed(415, f"the request body must be Content-Type: application/json, not "
                                              f"{ctype or 'none'!r}")
                raw = self._read_body()
                try:
                    body = json.loads(raw.decode("utf-8") or "null")
                except RecursionError:
                    raise _RequestFailed(400, f"request body nests deeper than {server.max_json_depth} "
                                              "levels") from None
                except (UnicodeDecodeError, ValueError):
                    raise _RequestFailed(400, "request body must be a JSON object") from None
                if not isinstance(body, dict):
                    raise _RequestFailed(400, "request body must be a JSON object")
                if _too_deep(body, server.max_json_depth):
                    raise _RequestFailed(400, f"request body nests deeper than {server.max_json_depth} levels")
            except _RequestFailed as exc:
                self._refuse(path, exc)
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

    For the command line; any OpenAI-compatible client on this machine can then use it (the server listens
    on loopback only: it has no authentication; reach it from elsewhere through an SSH tunnel).
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

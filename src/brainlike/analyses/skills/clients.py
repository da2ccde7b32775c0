"""Chat clients behind one interface: a local Hugging Face model, or any OpenAI-compatible HTTP endpoint.

Every client has ``name`` and ``chat(messages, *, max_tokens, temperature, seed) -> ChatResponse``, where
``messages`` is the OpenAI list of ``{"role": "system"|"user"|"assistant", "content": str}``.

* :class:`OpenAIChatClient` — ``POST {base_url}/chat/completions`` with the standard library (``urllib``);
  retries timeouts, refused connections, HTTP 408/429/5xx and malformed bodies with exponential backoff;
  other HTTP errors (400, 401, 404 …) fail at once with the server's message. Works with OpenAI, vLLM,
  llama.cpp ``llama-server``, and :class:`brainlike.analyses.skills.server.ChatServer`.
* :class:`HFChatClient` — generates with a loaded transformers causal model (chat template when the
  tokenizer has one, else a plain ``System:/User:/Assistant:`` transcript).
* :class:`ScriptedClient` — a Python function as a client (deterministic graders, tests).
"""
from __future__ import annotations

import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from brainlike.errors import BrainlikeError

Messages = list[dict[str, str]]


class ClientError(BrainlikeError):
    """A chat request failed (after retries when the failure was transient); the message says why."""


@dataclass
class ChatResponse:
    """One completion.

    Attributes
    ----------
    text : str
        the assistant message content.
    model : str
        the model that answered (as reported by the server, or the local model's name).
    attempts : int
        HTTP attempts used (1 = no retry).
    latency_s : float
        seconds from the first attempt to the answer, retries and backoff included.
    finish_reason : str | None
        ``"stop"``, ``"length"`` … when known.
    usage : dict
        token counts when known.
    """

    text: str
    model: str
    attempts: int = 1
    latency_s: float = 0.0
    finish_reason: str | None = None
    usage: dict = field(default_factory=dict)


@runtime_checkable
class ChatClient(Protocol):
    """Anything with a ``name`` and a ``chat`` method."""

    name: str

    def chat(self, messages: Messages, *, max_tokens: int = 256, temperature: float = 0.0,
             seed: int | None = None) -> ChatResponse:
        """The model's reply to ``messages``."""
        ...


_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


class OpenAIChatClient:
    """Client for an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    Parameters
    ----------
    base_url : str
        up to and including ``/v1`` (e.g. ``http://127.0.0.1:8080/v1``).
    model : str
        the model id sent in requests (llama.cpp ignores it; vLLM needs the served name).
    api_key : str | None
        sent as ``Authorization: Bearer``; never written to results.
    timeout_s : float
        per-attempt socket timeout (connect and read).
    max_retries : int
        extra attempts after a transient failure.
    backoff_s, backoff_max_s : float
        sleep ``min(backoff_max_s, backoff_s * 2**(attempt-1))`` between attempts
        (a server's ``Retry-After`` is honoured up to ``backoff_max_s``).
    """

    def __init__(self, base_url: str, model: str = "default", *, api_key: str | None = None,
                 timeout_s: float = 60.0, max_retries: int = 3, backoff_s: float = 0.5, backoff_max_s: float = 8.0,
                 name: str | None = None):
        parsed = urllib.parse.urlparse(base_url)
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            raise ClientError(f"base_url must look like http://host:port/v1, not {base_url!r}")
        if timeout_s <= 0 or max_retries < 0 or backoff_s < 0:
            raise ClientError("timeout_s must be positive and max_retries, backoff_s non-negative")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.backoff_max_s = float(backoff_max_s)
        self.name = name or f"{model}@{parsed.netloc}"
        handlers = [urllib.request.ProxyHandler({})] if parsed.hostname in _LOOPBACK else []
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:
        return f"OpenAIChatClient({self.base_url!r}, model={self.model!r})"

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def _request(self, method: str, path: str, payload: dict | None) -> tuple[dict, int]:
        """One request with retries; returns the decoded JSON body and the attempts used."""
        data = None if payload is None else json.dumps(payload).encode()
        url = f"{self.base_url}{path}"
        last = ""
        for attempt in range(1, self.max_retries + 2):
            retry_after = None
            try:
                req = urllib.request.Request(url, data=data, headers=self._headers(), method=method)
                with self._opener.open(req, timeout=self.timeout_s) as resp:
                    body = resp.read()
                try:
                    return json.loads(body.decode("utf-8")), attempt
                except (UnicodeDecodeError, json.JSONDecodeError):
                    last = f"malformed JSON body from {url}: {body[:120]!r}"
            except urllib.error.HTTPError as exc:
                detail = _error_detail(exc)
                if exc.code in (408, 429) or exc.code >= 500:
                    last = f"HTTP {exc.code} from {url}: {detail}"
                    retry_after = _retry_after(exc)
                else:
                    raise ClientError(f"HTTP {exc.code} from {url}: {detail}") from None
            except urllib.error.URLError as exc:
                last = f"cannot reach {url}: {exc.reason}"
            except TimeoutError:
                last = f"no answer from {url} within {self.timeout_s:g} s"
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                last = f"connection to {url} failed: {exc!r}"
            if attempt <= self.max_retries:
                wait = min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1))
                if retry_after is not None:
                    wait = min(self.backoff_max_s, max(wait, retry_after))
                time.sleep(wait)
        raise ClientError(f"{last} (gave up after {self.max_retries + 1} attempts)")

    def chat(self, messages: Messages, *, max_tokens: int = 256, temperature: float = 0.0,
             seed: int | None = None) -> ChatResponse:
        """The model's reply to ``messages``."""
        payload = {"model": self.model, "messages": messages, "max_tokens": int(max_tokens),
                   "temperature": float(temperature)}
        if seed is not None:
            payload["seed"] = int(seed)
        t0 = time.perf_counter()
        body, attempts = self._request("POST", "/chat/completions", payload)
        try:
            choice = body["choices"][0]
            text = choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise ClientError(f"response from {self.base_url} has no choices[0].message.content: "
                              f"{json.dumps(body)[:200]}") from None
        return ChatResponse(text=text if isinstance(text, str) else "", model=str(body.get("model", self.model)),
                            attempts=attempts, latency_s=time.perf_counter() - t0,
                            finish_reason=choice.get("finish_reason"), usage=dict(body.get("usage") or {}))

    def list_models(self) -> list[str]:
        """Model ids served at ``{base_url}/models``."""
        body, _ = self._request("GET", "/models", None)
        return [str(m.get("id")) for m in body.get("data", []) if isinstance(m, dict)]


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read().decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - the body is only for the message
        return str(exc.reason)
    try:
        err = json.loads(raw).get("error", raw)
        return str(err.get("message", err) if isinstance(err, dict) else err)[:300]
    except (json.JSONDecodeError, AttributeError):
        return raw[:300] or str(exc.reason)


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    value = exc.headers.get("Retry-After") if exc.headers else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class HFChatClient:
    """Chat with a local Hugging Face causal model.

    Parameters
    ----------
    model : LoadedModel or str
        a :class:`brainlike.models.LoadedModel` or a name for :func:`brainlike.models.load_model`.
    dtype, device : str
        used when loading by name (e.g. ``"bfloat16"``, ``"cuda"``).
    max_context : int | None
        tokens the model sees (default its position limit); long prompts keep their end.

    Generation is greedy at ``temperature == 0`` and sampled otherwise (``torch.manual_seed(seed)``); calls
    are serialised with a lock so a threaded server can share one client.
    """

    def __init__(self, model, *, max_context: int | None = None, dtype: str = "float32", device: str = "cpu",
                 name: str | None = None):
        from brainlike.models import LoadedModel, load_model

        self.loaded = model if isinstance(model, LoadedModel) else load_model(str(model), dtype=dtype, device=device)
        if self.loaded.kind != "causal":
            raise ClientError(f"{self.loaded.name} is an encoder; Skill-Mix needs a causal (generative) model")
        self.max_context = int(max_context or self.loaded.max_tokens)
        self.name = name or self.loaded.name
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HFChatClient({self.name!r})"

    def format_prompt(self, messages: Messages) -> list[int]:
        """Token ids of the conversation, ending where the assistant's answer starts."""
        tok = self.loaded.tokenizer
        if getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return list(ids)
        text = "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in messages) + "Assistant:"
        return list(tok(text, verbose=False)["input_ids"])

    def chat(self, messages: Messages, *, max_tokens: int = 256, temperature: float = 0.0,
             seed: int | None = None) -> ChatResponse:
        """The model's reply to ``messages``."""
        import torch

        t0 = time.perf_counter()
        tok = self.loaded.tokenizer
        max_new = max(1, min(int(max_tokens), self.max_context // 2))
        ids = self.format_prompt(messages)[-(self.max_context - max_new):]
        device = next(self.loaded.model.parameters()).device
        input_ids = torch.tensor([ids], dtype=torch.long, device=device)
        kwargs = dict(max_new_tokens=max_new, pad_token_id=tok.pad_token_id if tok.pad_token_id is not None
                      else tok.eos_token_id)
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=float(temperature))
        else:
            kwargs.update(do_sample=False)
        with self._lock, torch.no_grad():
            if seed is not None:
                torch.manual_seed(int(seed))
            out = self.loaded.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                             **kwargs)
        new = out[0, input_ids.shape[1]:].tolist()
        finish = "stop" if (tok.eos_token_id is not None and tok.eos_token_id in new) else "length"
        text = tok.decode(new, skip_special_tokens=True)
        return ChatResponse(text=text, model=self.name, attempts=1, latency_s=time.perf_counter() - t0,
                            finish_reason=finish, usage={"prompt_tokens": len(ids), "completion_tokens": len(new),
                                                         "total_tokens": len(ids) + len(new)})


class ScriptedClient:
    """A function ``fn(messages) -> str`` used as a chat client (deterministic graders, tests)."""

    def __init__(self, fn: Callable[[Messages], str], name: str = "scripted"):
        self.fn = fn
        self.name = name

    def chat(self, messages: Messages, *, max_tokens: int = 256, temperature: float = 0.0,
             seed: int | None = None) -> ChatResponse:
        """The model's reply to ``messages``."""
        t0 = time.perf_counter()
        return ChatResponse(text=str(self.fn(messages)), model=self.name, latency_s=time.perf_counter() - t0,
                            finish_reason="stop")


class ClientConfig(BaseModel):
    """How to reach a generator or grader.

    ``kind="hf"``: ``model`` is a registered name, a local folder or a ``.gguf`` file (loaded in-process).
    ``kind="openai"``: ``base_url`` (``http://host:port/v1``) and ``model`` (the served id); the API key is
    read from the environment variable named by ``api_key_env`` (keys never go in specs or results).
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["hf", "openai"] = "openai"
    model: str = "default"
    base_url: str | None = None
    api_key_env: str | None = None
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0, le=20)
    backoff_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(8.0, ge=0)
    max_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0, le=2)
    dtype: str = "float32"
    device: str = "cpu"
    name: str | None = None

    @model_validator(mode="after")
    def _needs_url(self) -> ClientConfig:
        if self.kind == "openai" and not self.base_url:
            raise ValueError("an 'openai' client needs base_url (e.g. http://127.0.0.1:8080/v1)")
        return self

    def identity(self) -> dict:
        """What identifies this client's outputs (no secrets): used in resume keys and tables."""
        return {"kind": self.kind, "model": self.model, "base_url": self.base_url, "max_tokens": self.max_tokens,
                "temperature": self.temperature}


def make_client(config: ClientConfig) -> ChatClient:
    """Build the client a :class:`ClientConfig` describes."""
    if config.kind == "hf":
        return HFChatClient(config.model, dtype=config.dtype, device=config.device, name=config.name)
    key = None
    if config.api_key_env:
        key = os.environ.get(config.api_key_env)
        if not key:
            raise ClientError(f"environment variable {config.api_key_env} (api_key_env) is not set")
    return OpenAIChatClient(config.base_url, config.model, api_key=key, timeout_s=config.timeout_s,
                            max_retries=config.max_retries, backoff_s=config.backoff_s,
                            backoff_max_s=config.backoff_max_s, name=config.name)

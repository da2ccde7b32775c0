"""One forward pass per prompt: attention matrices (as graph statistics) and the inputs of every MLP.

:func:`capture_prompt` runs one prompt (batch of 1, no padding), so every attention row is a proper
distribution over real tokens and no padding token enters the point clouds; :func:`capture_batch` runs
several right-padded prompts and cuts the padding off (the same numbers to float precision). With
``generate_tokens`` the prompt's forward pass is also the prefill of a greedy answer decoded from its KV
cache, so capture and generation cost one pass (the arithmetic task). The MLP inputs are captured with forward
pre-hooks (see :mod:`brainlike.analyses.geometry.modules`), which are always removed afterwards.

Layer numbering: ``layer = k`` (1-based) is transformer block ``k`` — its attention and the input of its
MLP — matching hidden-state index ``k`` of :func:`brainlike.models.extract_features` (0 = embeddings).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from brainlike.analyses.geometry.attention import ATTENTION_MEASURES, attention_graph_stats
from brainlike.analyses.geometry.modules import mlp_modules
from brainlike.errors import BrainlikeError, ModelError
from brainlike.models.hooks import base_module as _base_module
from brainlike.models.loading import LoadedModel


@dataclass
class PromptCapture:
    """What the forward pass of one prompt yields.

    Attributes
    ----------
    input_ids : np.ndarray
        ``(n_tokens,)`` int64 token ids (special tokens included).
    attention : np.ndarray | None
        ``(n_layers, n_heads, n_tokens, n_tokens)`` float32 attention weights, or ``None`` when
        not kept (statistics only).
    mlp_inputs : np.ndarray
        ``(n_layers, n_tokens, hidden_size)`` float32 — the tensor each block's MLP received.
    offsets : np.ndarray
        ``(n_tokens, 2)`` int64 character span of each token in the prompt (``(0, 0)`` for specials).
    special : np.ndarray
        ``(n_tokens,)`` bool, special tokens (BOS, CLS, SEP).
    generated : str | None
        the greedy continuation decoded from the same forward pass (``generate_tokens > 0``), else ``None``.
    """

    input_ids: np.ndarray
    attention: np.ndarray | None
    mlp_inputs: np.ndarray
    offsets: np.ndarray
    special: np.ndarray
    generated: str | None = None

    @property
    def n_tokens(self) -> int:
        """The number of tokens."""
        return int(self.input_ids.shape[0])

    def scope_mask(self, span: tuple[int, int] | None) -> np.ndarray:
        """``(n_tokens,)`` bool.

        All tokens (``span=None``) or the non-special tokens whose characters overlap ``span = (start, end)`` of the
        prompt (e.g. the question text after a context passage).
        """
        if span is None:
            return np.ones(self.n_tokens, dtype=bool)
        a, b = span
        overlap = np.minimum(self.offsets[:, 1], b) - np.maximum(self.offsets[:, 0], a)
        return (~self.special) & (overlap > 0)


def _first_tensor(args: tuple, kwargs: dict) -> torch.Tensor:
    if args and isinstance(args[0], torch.Tensor):
        return args[0]
    if isinstance(kwargs.get("hidden_states"), torch.Tensor):
        return kwargs["hidden_states"]
    for value in list(args) + list(kwargs.values()):
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value
    raise ModelError("the MLP module was called without a tensor input; cannot capture it")


@torch.inference_mode()
def capture_prompt(
    lm: LoadedModel,
    text: str,
    *,
    keep_attention: bool = True,
    mlp_path: str | None = None,
    device: str | None = None,
    generate_tokens: int = 0,
) -> PromptCapture:
    """Run one prompt and capture every block's attention weights and MLP input.

    With ``generate_tokens > 0`` (causal models) the same forward pass is the prefill of a greedy
    decode: the captured tensors come from the prompt, the answer is decoded from its KV cache
    (:attr:`PromptCapture.generated`; stops at end of sequence or once the first non-empty line is
    complete), so capture and answer cost one pass over the prompt instead of two.

    Parameters
    ----------
    lm : LoadedModel
        a loaded model; attention weights need ``attn_implementation="eager"`` (the default of
        :func:`brainlike.models.load_model`).
    text : str
        the prompt (the tokenizer adds BOS/CLS/SEP as the model expects).
    keep_attention : bool
        return the attention weights (otherwise ``attention`` is ``None``).
    mlp_path : str | None
        dotted MLP path template for unknown architectures (see :func:`mlp_modules`).
    device : str | None
        where the model lives (default: the device of its first parameter).
    generate_tokens : int
        at most this many greedily decoded tokens (0 = no generation).
    """
    if not isinstance(text, str) or not text.strip():
        raise BrainlikeError("a prompt must be a non-empty string")
    enc = lm.tokenizer(text, return_tensors="pt", return_offsets_mapping=True, return_special_tokens_mask=True)
    offsets = enc.pop("offset_mapping")[0].numpy().astype(np.int64)
    special = enc.pop("special_tokens_mask")[0].numpy().astype(bool)
    n_tok = int(enc["input_ids"].shape[1])
    if n_tok > lm.max_tokens:
        raise BrainlikeError(f"{lm.name}: a prompt has {n_tok} tokens, more than the model's limit {lm.max_tokens}")
    if generate_tokens and lm.kind != "causal":
        raise BrainlikeError(f"{lm.name} is an encoder; only causal models generate answers")
    device = device or str(next(lm.model.parameters()).device)
    inputs = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    if generate_tokens:
        out, captured = _hooked_forward(lm, mlp_path, lambda: lm.model(
            **inputs, output_attentions=keep_attention, use_cache=True, logits_to_keep=1))
    else:
        out, captured = _hooked_forward(lm, mlp_path, lambda: _base_module(lm.model)(
            **inputs, output_attentions=keep_attention))
    attention = None
    if keep_attention:
        attention = np.stack([a[0].float().cpu().numpy() for a in _attentions(lm, out)]).astype(np.float32)
    generated = _greedy_from_cache(lm, out, inputs, generate_tokens) if generate_tokens else None
    return PromptCapture(enc["input_ids"][0].cpu().numpy().astype(np.int64), attention,
                         np.stack([c[0].numpy() for c in captured]).astype(np.float32), offsets, special, generated)


def _hooked_forward(lm: LoadedModel, mlp_path: str | None, run) -> tuple[object, list[torch.Tensor]]:
    """``run()`` (a forward pass) with a pre-hook on every block's MLP; returns its output and the MLP inputs.

    The inputs are ``(batch, n_tokens, hidden)`` float CPU tensors, one per block; the hooks are always removed.
    """
    modules = mlp_modules(lm.model, lm.n_layers, mlp_path)
    captured: list[torch.Tensor | None] = [None] * len(modules)

    def make_hook(i: int):
        def hook(module, args, kwargs):
            captured[i] = _first_tensor(args, kwargs).detach().float().cpu()
        return hook

    handles = [m.register_forward_pre_hook(make_hook(i), with_kwargs=True) for i, m in enumerate(modules)]
    try:
        out = run()
    finally:
        for h in handles:
            h.remove()
    if any(c is None for c in captured):
        raise ModelError(f"{lm.name}: the MLP hooks did not fire for every block (unsupported architecture?)")
    return out, captured


def _attentions(lm: LoadedModel, out) -> tuple:
    """The per-block attention weights of a forward output (an error naming the fix when absent)."""
    atts = getattr(out, "attentions", None)
    if not atts or any(a is None for a in atts):
        raise ModelError(f"{lm.name} returned no attention weights; load it with attn_implementation='eager'")
    return atts


def _eos_ids(lm: LoadedModel) -> set[int]:
    """End-of-sequence token ids: the generation config's (one or a list) and the tokenizer's."""
    eos = lm.model.generation_config.eos_token_id if getattr(lm.model, "generation_config", None) else None
    eos = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
    if lm.tokenizer.eos_token_id is not None:
        eos.add(int(lm.tokenizer.eos_token_id))
    return eos


def _cache_kwarg(lm: LoadedModel) -> str:
    """The name of the model's KV-cache argument and output field (``cache`` or ``past_key_values``)."""
    import inspect

    return "cache" if "cache" in inspect.signature(type(lm.model).forward).parameters else "past_key_values"


def _first_line_done(text: str) -> bool:
    """Whether ``text`` holds a complete first non-empty line (a newline after some non-blank text)."""
    return "\n" in text.lstrip()


def _greedy_from_cache(lm: LoadedModel, prefill, inputs: dict, max_new_tokens: int) -> str:
    """Greedy continuation from the prefill's logits and KV cache.

    Stops after ``max_new_tokens`` tokens, at an end-of-sequence token, or once the first non-empty line is
    complete (the arithmetic checker reads only that line).
    """
    eos, key = _eos_ids(lm), _cache_kwarg(lm)
    past, logits = getattr(prefill, key), prefill.logits[0, -1]
    mask = inputs.get("attention_mask")
    tokens: list[int] = []
    for _ in range(max_new_tokens):
        nxt = int(torch.argmax(logits))
        if nxt in eos:
            break
        tokens.append(nxt)
        if _first_line_done(lm.tokenizer.decode(tokens, skip_special_tokens=True)) or len(tokens) == max_new_tokens:
            break
        ids = torch.tensor([[nxt]], device=logits.device)
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones((1, 1))], dim=1)
        out = lm.model(input_ids=ids, attention_mask=mask, use_cache=True, **{key: past})
        past, logits = getattr(out, key), out.logits[0, -1]
    return lm.tokenizer.decode(tokens, skip_special_tokens=True)


@dataclass
class PromptSetGeometry:
    """Attention statistics and pooled MLP inputs of a set of prompts.

    Attributes
    ----------
    attention : pd.DataFrame
        tidy table, one row per (prompt, layer, head): ``prompt`` (index), ``layer`` (1-based
        block), ``head``, ``n_tokens``, and the measures of :data:`ATTENTION_MEASURES`.
    points : list[np.ndarray]
        ``n_layers`` arrays ``(n_points, hidden_size)`` float32 — the MLP inputs of the in-scope
        tokens of all prompts, pooled (prompt after prompt, tokens in order).
    n_tokens : np.ndarray
        ``(n_prompts,)`` tokens per prompt.
    """

    attention: pd.DataFrame
    points: list[np.ndarray]
    n_tokens: np.ndarray


def measure_prompts(
    lm: LoadedModel,
    prompts: Sequence[str],
    *,
    scope_spans: Sequence[tuple[int, int] | None] | None = None,
    threshold: float = 0.01,
    relative_threshold: float = 1.0,
    mlp_path: str | None = None,
    progress: bool = True,
    desc: str = "geometry",
) -> PromptSetGeometry:
    """Attention-graph statistics per (prompt, layer, head) and pooled MLP inputs per layer.

    Parameters
    ----------
    lm : LoadedModel
        a loaded model (eager attention).
    prompts : Sequence[str]
        the texts, run one at a time.
    scope_spans : Sequence[tuple[int, int] | None] | None
        per prompt, the ``(start, end)`` characters whose tokens are pooled for intrinsic
        dimension (``None`` = every token, specials included). Attention statistics use the whole prompt.
    threshold, relative_threshold : float
        see :func:`attention_graph_stats`.
    """
    if len(prompts) == 0:
        raise BrainlikeError("no prompts to measure")
    scope_spans = list(scope_spans) if scope_spans is not None else [None] * len(prompts)
    if len(scope_spans) != len(prompts):
        raise BrainlikeError(f"{len(scope_spans)} scope spans for {len(prompts)} prompts")
    causal = lm.kind == "causal"
    rows: list[pd.DataFrame] = []
    pooled: list[list[np.ndarray]] = [[] for _ in range(lm.n_layers)]
    n_tokens = np.zeros(len(prompts), dtype=np.int64)
    for p, text in enumerate(tqdm(prompts, desc=desc, unit="prompt", disable=not progress, leave=False)):
        cap = capture_prompt(lm, text, mlp_path=mlp_path)
        n_tokens[p] = cap.n_tokens
        n_layers, n_heads = cap.attention.shape[:2]
        stats = [attention_graph_stats(cap.attention[layer], causal, threshold, relative_threshold)
                 for layer in range(n_layers)]
        table = pd.DataFrame({
            "prompt": p, "layer": np.repeat(np.arange(1, n_layers + 1), n_heads),
            "head": np.tile(np.arange(n_heads), n_layers), "n_tokens": cap.n_tokens,
            **{m: np.concatenate([s[m] for s in stats]) for m in ATTENTION_MEASURES}})
        rows.append(table)
        mask = cap.scope_mask(scope_spans[p])
        for layer in range(lm.n_layers):
            pooled[layer].append(cap.mlp_inputs[layer][mask])
    points = [np.concatenate(chunks).astype(np.float32) for chunks in pooled]
    return PromptSetGeometry(pd.concat(rows, ignore_index=True), points, n_tokens)


@torch.inference_mode()
def capture_batch(
    lm: LoadedModel,
    texts: Sequence[str],
    *,
    generate_tokens: int = 0,
    mlp_path: str | None = None,
    device: str | None = None,
) -> list[PromptCapture]:
    """:func:`capture_prompt` (with attention) for several prompts of a causal model in one right-padded batch.

    Right padding keeps every prompt at positions ``0 .. n - 1``, and causal attention keeps its queries off
    the padding that follows, so each prompt's attention rows and MLP inputs are those of its own
    unbatched pass (the tests check this to float precision); padding rows and columns are cut off. With
    ``generate_tokens > 0`` the batch's prefill is also the start of a greedy decode for every prompt
    (each continues from its own last token at its own position, padding masked out); each continuation
    is then cut as :func:`capture_prompt` cuts it (end of sequence, or once the first non-empty line is
    complete). One batch costs one read of the weights per step instead of one per prompt and step.

    Parameters
    ----------
    lm : LoadedModel
        a causal model loaded with eager attention.
    texts : Sequence[str]
        the prompts.
    generate_tokens : int
        at most this many greedily decoded tokens per prompt (0 = none).
    mlp_path, device
        as in :func:`capture_prompt`.

    Returns
    -------
    list[PromptCapture]
        one per prompt, in order.
    """
    if lm.kind != "causal":
        raise BrainlikeError(f"{lm.name} is an encoder; batched capture needs a causal model")
    if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
        raise BrainlikeError("every prompt must be a non-empty string")
    encs = [lm.tokenizer(t, return_offsets_mapping=True, return_special_tokens_mask=True) for t in texts]
    lens = np.array([len(e["input_ids"]) for e in encs])
    if lens.max() > lm.max_tokens:
        raise BrainlikeError(f"{lm.name}: a prompt has {lens.max()} tokens, more than the model's limit "
                             f"{lm.max_tokens}")
    device = device or str(next(lm.model.parameters()).device)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else (lm.tokenizer.eos_token_id or 0)
    B, T = len(texts), int(lens.max())
    ids = torch.full((B, T), int(pad), dtype=torch.long)
    mask = torch.zeros((B, T), dtype=torch.long)
    for b, e in enumerate(encs):
        ids[b, : lens[b]] = torch.tensor(e["input_ids"])
        mask[b, : lens[b]] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = torch.arange(T, device=device)[None].expand(B, T)
    key = _cache_kwarg(lm)
    out, captured = _hooked_forward(lm, mlp_path, lambda: _base_module(lm.model)(
        input_ids=ids, attention_mask=mask, position_ids=positions, output_attentions=True,
        use_cache=bool(generate_tokens)))
    atts = _attentions(lm, out)
    generated: list[str | None] = [None] * B
    if generate_tokens:
        last = torch.as_tensor(lens - 1, device=device)
        hidden = out.last_hidden_state[torch.arange(B, device=device), last]  # (B, hidden)
        logits = lm.model.get_output_embeddings()(hidden)
        cache = getattr(out, key, None)
        if cache is None:
            cache = out.past_key_values
        eos = _eos_ids(lm)
        tokens: list[list[int]] = [[] for _ in range(B)]
        done = np.zeros(B, dtype=bool)
        for step in range(generate_tokens):
            nxt = torch.argmax(logits, dim=-1)
            for b in np.flatnonzero(~done):
                t = int(nxt[b])
                if t in eos:
                    done[b] = True
                    continue
                tokens[b].append(t)
                if _first_line_done(lm.tokenizer.decode(tokens[b], skip_special_tokens=True)):
                    done[b] = True
            if done.all() or step == generate_tokens - 1:
                break
            mask = torch.cat([mask, torch.ones((B, 1), dtype=mask.dtype, device=device)], dim=1)
            pos = torch.as_tensor(lens + step, device=device)[:, None]
            step_out = lm.model(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos, use_cache=True,
                                **{key: cache})
            cache, logits = getattr(step_out, key), step_out.logits[:, -1]
        generated = [lm.tokenizer.decode(t, skip_special_tokens=True) for t in tokens]
    result = []
    for b, e in enumerate(encs):
        n = int(lens[b])
        attention = np.stack([a[b, :, :n, :n].float().cpu().numpy() for a in atts]).astype(np.float32)
        mlp = np.stack([c[b, :n].numpy() for c in captured]).astype(np.float32)
        result.append(PromptCapture(np.asarray(e["input_ids"], dtype=np.int64), attention, mlp,
                                    np.asarray(e["offset_mapping"], dtype=np.int64).reshape(n, 2),
                                    np.asarray(e["special_tokens_mask"], dtype=bool), generated[b]))
    return result

"""One forward pass per prompt: attention matrices (as graph statistics) and the inputs of every MLP.

Prompts are run one at a time (batch of 1, no padding), so every attention row is a proper distribution
over real tokens and no padding token enters the point clouds. The MLP inputs are captured with forward
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
    """

    input_ids: np.ndarray
    attention: np.ndarray | None
    mlp_inputs: np.ndarray
    offsets: np.ndarray
    special: np.ndarray

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
) -> PromptCapture:
    """Run one prompt and capture every block's attention weights and MLP input.

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
    """
    if not isinstance(text, str) or not text.strip():
        raise BrainlikeError("a prompt must be a non-empty string")
    enc = lm.tokenizer(text, return_tensors="pt", return_offsets_mapping=True, return_special_tokens_mask=True)
    offsets = enc.pop("offset_mapping")[0].numpy().astype(np.int64)
    special = enc.pop("special_tokens_mask")[0].numpy().astype(bool)
    n_tok = int(enc["input_ids"].shape[1])
    if n_tok > lm.max_tokens:
        raise BrainlikeError(f"{lm.name}: a prompt has {n_tok} tokens, more than the model's limit {lm.max_tokens}")
    device = device or str(next(lm.model.parameters()).device)
    inputs = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    modules = mlp_modules(lm.model, lm.n_layers, mlp_path)
    captured: list[np.ndarray | None] = [None] * len(modules)

    def make_hook(i: int):
        def hook(module, args, kwargs):
            captured[i] = _first_tensor(args, kwargs).detach()[0].float().cpu().numpy()
        return hook

    handles = [m.register_forward_pre_hook(make_hook(i), with_kwargs=True) for i, m in enumerate(modules)]
    try:
        out = _base_module(lm.model)(**inputs, output_attentions=keep_attention)
    finally:
        for h in handles:
            h.remove()
    if any(c is None for c in captured):
        raise ModelError(f"{lm.name}: the MLP hooks did not fire for every block (unsupported architecture?)")
    attention = None
    if keep_attention:
        atts = getattr(out, "attentions", None)
        if not atts or any(a is None for a in atts):
            raise ModelError(f"{lm.name} returned no attention weights; load it with attn_implementation='eager'")
        attention = np.stack([a[0].float().cpu().numpy() for a in atts]).astype(np.float32)
    return PromptCapture(enc["input_ids"][0].cpu().numpy().astype(np.int64), attention,
                         np.stack(captured).astype(np.float32), offsets, special)


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

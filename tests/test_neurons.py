"""Neuron-level activations: equality with a manual recomputation, streaming, resume, bounded memory."""
import tracemalloc

import numpy as np
import pytest
import torch

from brainlike import Stimulus
from brainlike.errors import BrainlikeError, ModelError
from brainlike.models.alignment import tokenize_words
from brainlike.models.neurons import NeuronActivations, extract_neurons, find_neuron_sites

pytestmark = pytest.mark.usefixtures("single_thread")


SENTENCE = "The little dog ran to the big red barn and barked at the moon all night long"


def _mlp_input(lm, module, ids):
    """The input of ``module`` for one sequence, captured with a pre-hook (the MLP's own input)."""
    got = {}
    handle = module.register_forward_pre_hook(lambda _m, args: got.__setitem__("x", args[0][0].detach().clone()))
    try:
        with torch.no_grad():
            lm.model(input_ids=torch.tensor([ids]))
    finally:
        handle.remove()
    return got["x"]


def test_sites_are_the_mlp_down_projections(stories260k, minilm):
    sites = find_neuron_sites(stories260k)
    assert [s.layer for s in sites] == [1, 2, 3, 4, 5]
    assert all(s.n_neurons == stories260k.model.config.intermediate_size == 172 for s in sites)
    assert sites[0].module_name.endswith("layers.0.mlp.down_proj")
    bert = find_neuron_sites(minilm)
    assert len(bert) == 6 and all(s.n_neurons == 1536 for s in bert)
    # the FFN's output.dense, not the attention's output.dense (hidden -> hidden)
    assert all(s.module_name.endswith("output.dense") and "attention" not in s.module_name for s in bert)
    assert [s.layer for s in find_neuron_sites(minilm, layers=[2, 6])] == [2, 6]
    with pytest.raises(BrainlikeError, match="1..6"):
        find_neuron_sites(minilm, layers=[0])


def test_other_architectures_and_a_clear_error():
    import transformers as T

    gpt2 = T.GPT2Model(T.GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=50, bos_token_id=0, eos_token_id=0))
    assert [(s.module_name, s.n_neurons) for s in find_neuron_sites(gpt2)] == [("h.0.mlp.c_proj", 64),
                                                                              ("h.1.mlp.c_proj", 64)]
    moe = T.MixtralModel(T.MixtralConfig(num_hidden_layers=2, hidden_size=16, intermediate_size=32,
                                         num_attention_heads=2, num_key_value_heads=1, num_local_experts=2,
                                         vocab_size=50))
    with pytest.raises(ModelError, match="mixture-of-experts"):
        find_neuron_sites(moe)


def test_llama_neurons_match_manual_recomputation(stories260k, tmp_path):
    """Layer 2 of stories260k: SiLU(gate_proj(x)) * up_proj(x) from the MLP input, at each word's last token
    (and averaged over its tokens for mean pooling)."""
    lm = stories260k
    stim = Stimulus.from_text(SENTENCE)
    act = extract_neurons(lm, stim, out_dir=tmp_path / "last", progress=False, chunk_rows=5)
    mean = extract_neurons(lm, stim, out_dir=tmp_path / "mean", progress=False, pooling="mean")
    assert act.n_rows == len(stim) and act.n_neurons == 5 * 172 and act.layer_sizes == (172,) * 5
    assert len(list((tmp_path / "last").glob("chunk_*.safetensors"))) == 4  # 17 words in chunks of 5
    tw = tokenize_words(lm.tokenizer, stim.words)
    ids = list(tw.prefix) + tw.input_ids.tolist()
    mlp = lm.model.model.layers[1].mlp
    x = _mlp_input(lm, mlp, ids)
    with torch.no_grad():
        manual = (torch.nn.functional.silu(x @ mlp.gate_proj.weight.T) * (x @ mlp.up_proj.weight.T)).numpy()
    p = len(tw.prefix)
    got = act.read(2)
    assert got.dtype == np.float32 and got.shape == (len(stim), 172)
    np.testing.assert_allclose(got, manual[tw.word_end - 1 + p], atol=1e-5, rtol=1e-5)
    multi = [i for i in range(len(stim)) if tw.word_end[i] - tw.word_start[i] > 1]
    assert multi, "the sentence should contain a multi-token word"
    for i in multi:
        np.testing.assert_allclose(mean.read(2)[i], manual[tw.word_start[i] + p:tw.word_end[i] + p].mean(axis=0),
                                   atol=1e-5, rtol=1e-5)
    # the global neuron order is layer-major
    table = act.neuron_table()
    np.testing.assert_array_equal(act.to_array()[:, table.index[(table.layer == 2)]], got)


def test_bert_neurons_are_the_gelu_intermediate(minilm, tmp_path):
    lm = minilm
    stim = Stimulus.from_text(SENTENCE)
    act = extract_neurons(lm, stim, out_dir=tmp_path, progress=False, level="token", layers=(3,))
    tw = tokenize_words(lm.tokenizer, stim.words)
    assert act.n_rows == tw.n_tokens and act.layers == (3,)
    np.testing.assert_array_equal(act.word_index, np.repeat(np.arange(len(stim)), tw.word_end - tw.word_start))
    ids = list(tw.prefix) + tw.input_ids.tolist() + list(tw.suffix)
    inter = lm.model.encoder.layer[2].intermediate
    x = _mlp_input(lm, inter, ids)
    with torch.no_grad():
        manual = torch.nn.functional.gelu(inter.dense(x)).numpy()
    p = len(tw.prefix)
    np.testing.assert_allclose(act.read(3), manual[p:p + tw.n_tokens], atol=1e-4, rtol=1e-4)


def test_windows_chunks_and_resume(stories260k, story_text, tmp_path, monkeypatch):
    """A story longer than the window: chunking does not change values, a word far into the story equals a
    forward pass over its window, and an interrupted run resumes without recomputing finished chunks."""
    lm = stories260k
    stim = Stimulus.from_text(" ".join(story_text.split()[:150]))
    ref = extract_neurons(lm, stim, out_dir=tmp_path / "ref", progress=False, max_window=48, chunk_rows=1000)
    small = extract_neurons(lm, stim, out_dir=tmp_path / "small", progress=False, max_window=48, chunk_rows=7)
    np.testing.assert_array_equal(ref.to_array(), small.to_array())
    # word 120: read from the window [stop - window, stop) whose emitted part holds its last token
    from brainlike.models.neurons import _window_plan

    tw = tokenize_words(lm.tokenizer, stim.words)
    window = 48 - len(tw.prefix)
    last = tw.word_end[120] - 1
    start, stop, _ = next(w for w in _window_plan(tw.n_tokens, window) if w[2] <= last < w[1])
    assert start > 0
    mlp = lm.model.model.layers[4].mlp
    x = _mlp_input(lm, mlp, list(tw.prefix) + tw.input_ids[start:stop].tolist())
    with torch.no_grad():
        manual = (torch.nn.functional.silu(x @ mlp.gate_proj.weight.T) * (x @ mlp.up_proj.weight.T)).numpy()
    np.testing.assert_allclose(ref.read(5)[120], manual[last - start + len(tw.prefix)], atol=1e-5, rtol=1e-5)

    # interrupt after a few chunks, then resume
    import brainlike.models.neurons as neurons_mod

    real_save, calls = neurons_mod._atomic_save, {"n": 0}

    def failing_save(tensors, path):
        if calls["n"] == 3:
            raise KeyboardInterrupt
        calls["n"] += 1
        real_save(tensors, path)

    monkeypatch.setattr(neurons_mod, "_atomic_save", failing_save)
    folder = tmp_path / "resume"
    with pytest.raises(KeyboardInterrupt):
        extract_neurons(lm, stim, out_dir=folder, progress=False, max_window=48, chunk_rows=20)
    assert len(list(folder.glob("chunk_*"))) == 3 and not (folder / "done.json").exists()
    with pytest.raises(BrainlikeError, match="incomplete"):
        NeuronActivations(folder)
    monkeypatch.setattr(neurons_mod, "_atomic_save", real_save)
    before = {f.name: f.stat().st_mtime_ns for f in folder.glob("chunk_*")}
    resumed = extract_neurons(lm, stim, out_dir=folder, progress=False, max_window=48, chunk_rows=20)
    assert all((folder / n).stat().st_mtime_ns == t for n, t in before.items())  # not rewritten
    np.testing.assert_array_equal(resumed.to_array(), ref.to_array())
    # a complete folder is reused as it is
    again = extract_neurons(lm, stim, out_dir=folder, progress=False, max_window=48, chunk_rows=20)
    assert again.path == resumed.path


def test_memory_stays_bounded(minilm, story_text, tmp_path):
    """MiniLM (9,216 neurons) on a ~2,300-word story: with 64-token windows and 32-row chunks, the peak
    memory held in activation arrays while extracting and while reading neuron blocks is a small fraction
    of the full (n_words, n_neurons) matrix. (Activations are copied into numpy arrays, which tracemalloc
    counts; the transient torch tensors of one forward pass are bounded by the window as well.)"""
    stim = Stimulus.from_text(story_text + " " + story_text)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        act = extract_neurons(minilm, stim, out_dir=tmp_path, progress=False, max_window=64, chunk_rows=32)
        _, peak_extract = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        total = 0.0
        for neurons, block in act.iter_blocks(block_size=256):
            assert block.shape == (act.n_rows, len(neurons))
            total += float(block.sum(dtype=np.float64))
        _, peak_read = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    full = act.nbytes
    assert act.n_neurons == 9216 and full > 80e6
    print(f"full matrix {full / 1e6:.0f} MB, peak while extracting {peak_extract / 1e6:.1f} MB, "
          f"while reading blocks {peak_read / 1e6:.1f} MB")
    assert peak_extract < 0.1 * full, (peak_extract, full)
    assert peak_read < 0.1 * full, (peak_read, full)
    assert np.isclose(total, float(act.to_array().sum(dtype=np.float64)), rtol=1e-6)


# ------------------------------------------------------------------------------ the checksummed cache
def test_user_folder_is_never_cleaned(stories260k, tmp_path):
    """A folder the user passes in: their own files survive a recompute, and a folder holding another
    extraction is refused (nothing in it changes), never emptied."""
    stim = Stimulus.from_text(SENTENCE)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    first = extract_neurons(stories260k, stim, out_dir=folder, progress=False, chunk_rows=5)
    want = first.to_array()
    again = extract_neurons(stories260k, stim, out_dir=folder, progress=False, chunk_rows=5, use_cache=False)
    np.testing.assert_array_equal(again.to_array(), want)
    assert (folder / "notes.txt").read_text() == "keep me"
    before = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}
    with pytest.raises(BrainlikeError, match="another extraction.*new or empty folder"):
        extract_neurons(stories260k, stim, out_dir=folder, progress=False, chunk_rows=5, pooling="mean")
    assert {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()} == before
    with pytest.raises(BrainlikeError, match="is a file"):
        extract_neurons(stories260k, stim, out_dir=folder / "notes.txt", progress=False)


@pytest.mark.parametrize("fault", ["flip", "truncate", "delete_checksums", "delete_chunk"])
def test_fault_injection_ends_correct(stories260k, tmp_path, fault):
    """Damaged chunks are caught by their SHA-256 (reading raises, never a wrong number); extracting again
    recomputes what is damaged and ends equal to a clean run."""
    from brainlike.models.neurons import CorruptNeuronsError

    stim = Stimulus.from_text(SENTENCE)
    want = extract_neurons(stories260k, stim, out_dir=tmp_path / "ref", progress=False, chunk_rows=5).to_array()
    folder = tmp_path / "hurt"
    extract_neurons(stories260k, stim, out_dir=folder, progress=False, chunk_rows=5)
    chunk = sorted(folder.glob("chunk_*.safetensors"))[1]
    if fault == "flip":
        with open(chunk, "r+b") as fh:
            fh.seek(chunk.stat().st_size - 300)
            data = bytearray(fh.read(256))
            fh.seek(chunk.stat().st_size - 300)
            fh.write(bytes(b ^ 0xFF for b in data))
    elif fault == "truncate":
        with open(chunk, "r+b") as fh:
            fh.truncate(chunk.stat().st_size // 2)
    elif fault == "delete_chunk":
        chunk.unlink()
    else:
        (folder / "done.json").unlink()
        (folder / "journal.txt").unlink()
    if fault != "delete_checksums":
        with pytest.raises(CorruptNeuronsError, match=chunk.name):
            NeuronActivations(folder)
        with pytest.warns(RuntimeWarning, match="damaged"):
            fixed = extract_neurons(stories260k, stim, out_dir=folder, progress=False, chunk_rows=5)
    else:
        with pytest.raises(BrainlikeError, match="incomplete"):
            NeuronActivations(folder)
        fixed = extract_neurons(stories260k, stim, out_dir=folder, progress=False, chunk_rows=5)
    np.testing.assert_array_equal(fixed.to_array(), want)
    np.testing.assert_array_equal(NeuronActivations(folder).to_array(), want)

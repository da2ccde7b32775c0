"""A SIGKILLed extraction resumes without recomputing finished units and ends bit-identical to an
uninterrupted run; corrupt bytes (in the unfinished file or in a finished cache entry) are detected by
their checksums and recomputed."""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from brainlike.models import Features

N_WORDS, CONTEXT, BATCH = 360, 6, 4
N_UNITS = N_WORDS // BATCH

CHILD = textwrap.dedent(f"""
    import json, sys, time
    import torch
    torch.set_num_threads(1)
    from brainlike import Stimulus
    from brainlike.data import default_story
    from brainlike.models import extract as ex

    cache, delay, report = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    calls = {{"n": 0}}
    real = ex._forward

    def counted(*args):
        calls["n"] += 1
        time.sleep(delay)  # slows the run down so that the test can kill it midway
        return real(*args)

    ex._forward = counted
    stim = Stimulus.from_text(" ".join(default_story().split()[:{N_WORDS}]), name="kill-test")
    feats = ex.extract_features("stories260k", stim, cache_dir=cache, progress=False,
                                context_tokens={CONTEXT}, batch_size={BATCH})
    json.dump({{"forwards": calls["n"], "shape": list(feats.layers.shape)}}, open(report, "w"))
""")

_UNIT = re.compile(r"^unit (\d+) \d+ \d+ [0-9a-f]{64}$")


def _run(script, cache, delay, report, wait=True):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(script), str(cache), str(delay), str(report)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(report.read_text()), err


def _finished_units(journal) -> set[int]:
    lines = journal.read_text().split("\n")[1:-1]
    return {int(m.group(1)) for m in map(_UNIT.match, lines) if m}


def _data_offset(path) -> int:
    with open(path, "rb") as fh:
        return 8 + int.from_bytes(fh.read(8), "little")


@pytest.mark.slow
def test_sigkill_resume_checksums(shared_data, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    killed, ref_cache = tmp_path / "killed", tmp_path / "reference"

    proc = _run(script, killed, 0.03, tmp_path / "r0.json", wait=False)
    journal = None
    deadline = time.time() + 90
    while time.time() < deadline:
        found = list(killed.rglob("journal.txt"))
        if found and len(_finished_units(found[0])) >= 8:
            journal = found[0]
            break
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.01)
    assert journal is not None, "the extraction never got going"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    entry = journal.parent
    finished = _finished_units(journal)
    assert 8 <= len(finished) < N_UNITS and not (entry / "features.safetensors").exists()
    assert finished == set(range(len(finished)))  # units run in order

    # corrupt one finished unit's bytes in the unfinished file: it must be caught and recomputed
    partial = entry / "features.safetensors.partial"
    hidden = 64
    unit, layer = 2, 3
    word = unit * BATCH + 1
    pos = _data_offset(partial) + ((layer * N_WORDS + word) * hidden + 5) * 4
    with open(partial, "r+b") as fh:
        fh.seek(pos)
        byte = fh.read(1)
        fh.seek(pos)
        fh.write(bytes([byte[0] ^ 0x40]))

    resumed, err = _run(script, killed, 0.0, tmp_path / "r1.json")
    assert resumed["forwards"] == N_UNITS - len(finished) + 1  # only unfinished units + the corrupt one
    assert "unit 2" in err and "checksum" in err
    assert resumed["shape"] == [6, N_WORDS, hidden]
    assert not partial.exists() and not journal.exists()

    reference, _ = _run(script, ref_cache, 0.0, tmp_path / "r2.json")
    assert reference["forwards"] == N_UNITS
    (final,) = killed.rglob("features.safetensors")
    (ref_final,) = ref_cache.rglob("features.safetensors")
    assert final.read_bytes() == ref_final.read_bytes()  # header and every feature bit-identical

    # a flipped bit in a finished cache entry: detected by the per-layer checksums and recomputed
    pos = _data_offset(final) + ((4 * N_WORDS + 100) * hidden + 7) * 4
    raw = bytearray(final.read_bytes())
    raw[pos] ^= 0x01
    final.write_bytes(bytes(raw))
    with pytest.raises(Exception, match="layer 4"):
        Features.load(final, verify=True)
    again, err = _run(script, killed, 0.0, tmp_path / "r3.json")
    assert again["forwards"] == N_UNITS and "corrupt feature cache entry" in err
    assert final.read_bytes() == ref_final.read_bytes()
    np.testing.assert_array_equal(Features.load(final, verify=True).layers, Features.load(ref_final).layers)
    cached, _ = _run(script, killed, 0.0, tmp_path / "r4.json")
    assert cached["forwards"] == 0  # a verified entry is used as is

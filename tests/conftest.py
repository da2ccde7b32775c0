"""Shared fixtures. Tests never touch the network: HF_HUB_OFFLINE is forced here."""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """A fresh brainlike cache per test session (never the user's ~/.cache)."""
    path = tmp_path_factory.mktemp("brainlike-cache")
    old = os.environ.get("BRAINLIKE_CACHE")
    os.environ["BRAINLIKE_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("BRAINLIKE_CACHE", None)
    else:
        os.environ["BRAINLIKE_CACHE"] = old


@pytest.fixture(scope="module")
def single_thread():
    """One torch and one BLAS thread: tiny models run ~10-50x faster so when the 2 shared cores are busy
    (modules opt in with ``pytestmark = pytest.mark.usefixtures("single_thread")``)."""
    import torch
    from threadpoolctl import threadpool_limits

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _close_figures():
    """Plot functions return their figures to the caller; close them after each test."""
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    from brainlike.models.registry import shared_data_dir

    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data not present (set BRAINLIKE_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def stories260k(shared_data):
    from brainlike.models import load_model

    return load_model("stories260k")


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M from the PyPI package (always available offline)."""
    from brainlike.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def minilm():
    from brainlike.models import load_model

    return load_model("minilm-l6")


@pytest.fixture(scope="session")
def story_text() -> str:
    from brainlike.data import default_story

    return default_story()


# ------------------------------------------------------------------------------ BIDS iEEG writers
def write_edf(path: Path, data: np.ndarray, sfreq: int, names: list[str]) -> None:
    """A minimal EDF (16-bit, 1-s records) of ``data`` ``(n_channels, n_samples)`` in volts."""
    n_ch, n = data.shape
    n_rec = n // sfreq
    uv = data[:, : n_rec * sfreq] * 1e6
    pmax = np.abs(uv).max(axis=1) * 1.01 + 1e-3

    def f(value, width):
        return str(value)[:width].ljust(width).encode("ascii")

    head = f("0", 8) + f("X X X X", 80) + f("Startdate 01-JAN-2020 X X X", 80) + f("01.01.20", 8) + f("00.00.00", 8)
    head += f(256 + 256 * n_ch, 8) + f("", 44) + f(n_rec, 8) + f(1, 8) + f(n_ch, 4)
    widths = [16, 80, 8, 8, 8, 8, 8, 80, 8, 32]
    columns = [names, [""] * n_ch, ["uV"] * n_ch, [f"{-m:.3f}" for m in pmax], [f"{m:.3f}" for m in pmax],
               [-32768] * n_ch, [32767] * n_ch, [""] * n_ch, [sfreq] * n_ch, [""] * n_ch]
    for w, col in zip(widths, columns):
        for v in col:
            head += f(v, w)
    dig = np.round((uv + pmax[:, None]) / (2 * pmax[:, None]) * 65535 - 32768).astype("<i2")
    path.write_bytes(head + dig.reshape(n_ch, n_rec, sfreq).transpose(1, 0, 2).tobytes())



@pytest.fixture(scope="session")
def ieeg_bids(tmp_path_factory):
    """A Podcast-like BIDS iEEG dataset written with mne-bids from an EDF file."""
    import mne
    import mne_bids

    root = tmp_path_factory.mktemp("ds005574")
    sf, dur = 512, 20
    t = np.arange(sf * dur) / sf
    rng = np.random.default_rng(0)
    modulation = 1.0 + 0.8 * np.sin(2 * np.pi * 0.3 * t)
    data = rng.normal(0, 5e-6, (5, len(t)))
    data[0] += 40e-6 * modulation * np.sin(2 * np.pi * 100 * t)  # G1: 100 Hz carrier, modulated
    data[3] = 0.0  # G4: flat
    names = ["G1", "G2", "G3", "G4", "EKG1"]
    src = root.parent / "src_raw.edf"
    write_edf(src, data, sf, names)
    raw = mne.io.read_raw_edf(src, preload=False, verbose="error")
    raw.set_channel_types({"G1": "ecog", "G2": "ecog", "G3": "ecog", "G4": "ecog", "EKG1": "ecg"})
    pos = {"G1": [-0.050, 0.010, 0.020], "G2": [-0.055, 0.012, 0.021], "G3": [-0.060, 0.0, 0.0],
           "G4": [-0.061, 0.0, 0.001]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw.set_montage(mne.channels.make_dig_montage({k: np.array(v) for k, v in pos.items()},
                                                      coord_frame="mni_tal"), on_missing="ignore")
    raw.info["bads"] = ["G3"]
    bp = mne_bids.BIDSPath(subject="01", task="podcast", datatype="ieeg", root=root)
    mne_bids.write_raw_bids(raw, bp, overwrite=True, verbose="error")
    ieeg = root / "sub-01" / "ieeg"
    el = next(ieeg.glob("*_electrodes.tsv"))
    df = pd.read_csv(el, sep="\t")
    df["group"] = ["G", "G", "G", "G", "EKG"][: len(df)]
    df["region"] = ["STG", "STG", "MTG", "IFG", "n/a"][: len(df)]
    df.to_csv(el, sep="\t", index=False, na_rep="n/a")
    stim_dir = root / "stimuli"
    stim_dir.mkdir()
    pd.DataFrame({"word": ["Act", "one,", "monkey", "lost", ""], "start": [3.71, 3.99, 4.651, np.nan, 6.0],
                  "end": [3.79, 4.19, 4.931, np.nan, 6.2]}).to_csv(stim_dir / "podcast_transcript.csv", index=False)
    return root, modulation, sf


@pytest.fixture()
def run_cli(monkeypatch):
    """Invoke the CLI; returns (exit code, output with whitespace collapsed, exception)."""
    from typer.testing import CliRunner

    from brainlike import cli

    monkeypatch.setattr(cli.console, "width", 1000)
    runner = CliRunner()

    def invoke(*args):
        res = runner.invoke(cli.app, [str(a) for a in args])
        text = res.output + (res.stderr if res.stderr_bytes is not None else "")
        return res.exit_code, " ".join(text.split()), res.exception

    return invoke

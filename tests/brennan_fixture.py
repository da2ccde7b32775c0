"""Private reader of the Brennan et al. (2016) ROI time courses for the tests.

# replaced by load_brennan2016 at merge (brainlike.neural.brennan.load_brennan2016)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from brainlike import Stimulus
from brainlike.models.registry import shared_data_dir

TR = 2.0
ROIS = ("LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG")


def brennan_root() -> Path | None:
    root = shared_data_dir()
    if root is None:
        return None
    path = root / "recordings" / "brennan2016-alice"
    return path if path.is_dir() else None


def load_brennan(max_subjects: int | None = None):
    """``(data (n_subjects, 362, 6), stimulus on the volume clock, subject ids)``; s33 (all zeros) excluded.

    Volume i was acquired at TextGrid time 20 + 2 i s, so word times are shifted by -20 s (volume 0 = 0 s).
    """
    root = brennan_root()
    files = sorted((root / "alice_data_shared" / "6mm").glob("s*-timecourses.txt"))
    data, ids = [], []
    for f in files:
        arr = np.loadtxt(f)
        if not np.any(arr):
            continue  # s33 is all zeros
        data.append(arr)
        ids.append(f.name.split("-")[0])
        if max_subjects and len(data) >= max_subjects:
            break
    stim = Stimulus.from_textgrid(root / "alice_stim_shared" / "DownTheRabbitHoleFinal_exp120_pad_1.TextGrid")
    stim = Stimulus(stim.words, stim.onsets - 20.0, stim.offsets - 20.0, "alice")
    return np.stack(data), stim, ids

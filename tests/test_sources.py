"""Subjects of a spec from BIDS iEEG recordings, and hierarchy positions (brainlike.neural.sources)."""
from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from brainlike.errors import NeuralDataError
from brainlike.neural.dataset import NeuralDataset
from brainlike.neural.sources import check_same_words, hierarchy_positions, load_bids_ieeg_subjects


def _dataset(**kw) -> NeuralDataset:
    base = dict(data=np.zeros((10, 3), np.float32), times=np.arange(10) / 10.0, channels=["a", "b", "c"])
    return NeuralDataset(**{**base, **kw})


def test_hierarchy_positions_forms(tmp_path):
    ds = _dataset(coords=np.array([[-42.0, -22, 8], [-45, -22, 8], [-42, 8, 8]]), regions=["HG", "stg", "IFG"],
                  hierarchy=np.array([0.0, 1.0, 2.0]))
    np.testing.assert_array_equal(hierarchy_positions(ds, "hierarchy"), [0, 1, 2])
    np.testing.assert_allclose(hierarchy_positions(ds, "distance:-42,-22,8"), [0.0, 3.0, 30.0])
    # region order: case-insensitive; regions not in the order are NaN (left out of the correlation)
    np.testing.assert_array_equal(hierarchy_positions(ds, "order:HG>STG"), [0.0, 1.0, np.nan])
    el = tmp_path / "electrodes.tsv"
    pd.DataFrame({"name": ["c", "a", "b"], "latency": [0.3, 0.1, "n/a"]}).to_csv(el, sep="\t", index=False)
    np.testing.assert_array_equal(hierarchy_positions(ds, "latency", el), [0.1, np.nan, 0.3])


@pytest.mark.parametrize("how,match", [
    ("distance:1,2", "three numbers"), ("order:STG", "at least two"), ("latency", "no electrodes.tsv"),
])
def test_hierarchy_errors_say_what_to_give(how, match):
    with pytest.raises(NeuralDataError, match=match):
        hierarchy_positions(_dataset(coords=np.zeros((3, 3))), how)
    with pytest.raises(NeuralDataError, match="no hierarchy positions"):
        hierarchy_positions(_dataset(), "hierarchy")


def test_bids_ieeg_subjects_with_distance_hierarchy(ieeg_bids, tmp_path):
    root, _, _ = ieeg_bids
    copy = tmp_path / "ds"
    shutil.copytree(root, copy)
    shutil.copytree(copy / "sub-01", copy / "sub-02")  # a second subject (same recording, renamed files)
    for f in (copy / "sub-02").rglob("sub-01_*"):
        f.rename(f.with_name(f.name.replace("sub-01", "sub-02")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flat channel / untimed word warnings (tested in test_bids)
        subs = load_bids_ieeg_subjects(copy, ["01", "sub-02"], task="podcast", hierarchy="distance:-50,10,20",
                                       stimulus="stimuli/podcast_transcript.csv")
    assert [s.dataset.subject for s in subs] == ["sub-01", "sub-02"]
    assert subs[0].stimulus.words == ("Act", "one,", "monkey") and subs[0].truth is None
    # G1 sits at (-50, 10, 20) mm, G2 at (-55, 12, 21) mm
    np.testing.assert_allclose(subs[0].dataset.hierarchy, [0.0, np.sqrt(25 + 4 + 1)], atol=1e-6)
    other = tmp_path / "other.csv"
    pd.DataFrame({"word": ["x", "y"], "start": [1.0, 2.0], "end": [1.5, 2.5]}).to_csv(other, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = load_bids_ieeg_subjects(copy, ["02"], task="podcast", hierarchy="distance:0,0,0", stimulus=other)
    with pytest.raises(NeuralDataError, match="different words"):
        check_same_words(subs + b)

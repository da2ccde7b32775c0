"""BIDS loaders: round trips through files written with nibabel / MNE / mne-bids in tmp_path."""
import json
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainlike.errors import NeuralDataError
from brainlike.neural import (
    fmri_design_layers,
    fmri_responses,
    high_gamma_envelope,
    load_bids_fmri,
    load_bids_fmri_runs,
    load_bids_ieeg,
    load_pereira2018,
    read_word_timings,
)
from brainlike.neural.bids import find_bids_file, find_sidecar, parse_bids_name, stimulus_onset_from_events


# ---------------------------------------------------------------------------------------------- writers
def write_textgrid(path: Path, words: list[tuple[float, float, str]], xmax: float) -> None:
    items = []
    t = 0.0
    for on, off, w in words:
        if on > t:
            items.append((t, on, ""))
        items.append((on, off, w))
        t = off
    items.append((t, xmax, "sp"))
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {xmax}",
             "tiers? <exists>", "size = 1", "item []:", "    item [1]:", '        class = "IntervalTier"',
             '        name = "word"', "        xmin = 0", f"        xmax = {xmax}",
             f"        intervals: size = {len(items)}"]
    for i, (a, b, w) in enumerate(items, start=1):
        lines += [f"        intervals [{i}]:", f"            xmin = {a}", f"            xmax = {b}",
                  f'            text = "{w}"']
    path.write_text("\n".join(lines) + "\n")


def story_words(n: int, start: float = 0.5, step: float = 0.4) -> list[tuple[float, float, str]]:
    return [(round(start + i * step, 3), round(start + i * step + 0.3, 3), f"word{i}") for i in range(n)]


# ---------------------------------------------------------------------------------------------- iEEG
def test_ieeg_edf_round_trip_with_mne_bids(ieeg_bids):
    root, modulation, sf = ieeg_bids
    with pytest.warns(UserWarning):  # the flat channel and the untimed transcript word are reported
        rec = load_bids_ieeg(root=root, subject="01", task="podcast",
                             stimulus=root / "stimuli" / "podcast_transcript.csv")
    ds = rec.dataset
    assert ds.channels == ["G1", "G2"]  # EKG dropped by type, G3 marked bad, G4 flat
    assert rec.excluded["G3"].startswith("marked bad") and "flat" in rec.excluded["G4"]
    assert "EKG1" not in rec.excluded
    np.testing.assert_allclose(ds.coords[0], [-50.0, 10.0, 20.0], atol=1e-6)  # metres -> mm
    assert ds.regions == ["STG", "STG"] and ds.meta["region_column"] == "region"
    assert abs(ds.sfreq - 100.0) < 1e-6 and ds.data.dtype == np.float32 and ds.modality == "ecog"
    assert ds.subject == "sub-01" and rec.files["channels"].endswith("_channels.tsv")
    # the planted amplitude modulation is recovered by the high-gamma envelope
    mod = np.interp(ds.times, np.arange(len(modulation)) / sf, modulation)
    inner = slice(100, -100)
    assert np.corrcoef(ds.data[inner, 0], mod[inner])[0, 1] > 0.9
    assert abs(np.corrcoef(ds.data[inner, 1], mod[inner])[0, 1]) < 0.3
    stim = rec.stimulus
    assert stim.words == ("Act", "one,", "monkey") and np.isclose(stim.onsets[2], 4.651)


def test_ieeg_derivative_fif_uses_raw_sidecars(ieeg_bids, tmp_path):
    import mne

    root, modulation, sf = ieeg_bids
    info = mne.create_info(["G1", "G2", "G3", "G4"], 512.0, "ecog")
    data = np.random.default_rng(1).normal(size=(4, 512 * 10))
    deriv = root / "derivatives" / "ecogprep" / "sub-01" / "ieeg"
    deriv.mkdir(parents=True, exist_ok=True)
    fif = deriv / "sub-01_task-podcast_desc-highgamma_ieeg.fif"
    mne.io.RawArray(data, info, verbose="error").save(fif, overwrite=True, verbose="error")
    rec = load_bids_ieeg(fif, high_gamma=False, sfreq_out=128.0)
    assert rec.dataset.channels == ["G1", "G2", "G4"]  # G3 bad in the raw dataset's channels.tsv
    assert "sub-01_task-podcast_channels.tsv" in rec.files["channels"]
    assert abs(rec.dataset.sfreq - 128.0) < 1e-6
    np.testing.assert_allclose(rec.dataset.data.std(0), 1.0, atol=1e-3)
    assert rec.dataset.regions == ["STG", "STG", "IFG"]


def test_high_gamma_recovers_planted_modulation():
    sf = 1000.0
    t = np.arange(int(sf * 30)) / sf
    rng = np.random.default_rng(3)
    env_true = 1.0 + 0.7 * np.sin(2 * np.pi * 0.25 * t) * np.cos(2 * np.pi * 0.07 * t)
    x = np.column_stack([
        env_true * np.sin(2 * np.pi * 100 * t) + 0.2 * rng.standard_normal(len(t)),  # in band
        env_true * np.sin(2 * np.pi * 20 * t) + 0.2 * rng.standard_normal(len(t)),   # beta carrier: ignored
    ])
    env, times = high_gamma_envelope(x, sf, sfreq_out=100.0)
    assert env.shape == (3000, 2) and env.dtype == np.float32 and np.isclose(times[1], 0.01)
    truth = np.interp(times, t, env_true)
    inner = slice(50, -50)
    # the three sub-bands without the carrier add their own (fast) noise envelopes to the average
    assert np.corrcoef(env[inner, 0], truth[inner])[0, 1] > 0.85
    assert abs(np.corrcoef(env[inner, 1], truth[inner])[0, 1]) < 0.3
    slow, st = high_gamma_envelope(x, sf, sfreq_out=10.0)  # low-passed at 5 Hz on the way down
    assert np.corrcoef(slow[5:-5, 0], np.interp(st, t, env_true)[5:-5])[0, 1] > 0.95
    narrow, _ = high_gamma_envelope(x, sf, bands=((90, 110),))
    assert np.corrcoef(narrow[inner, 0], truth[inner])[0, 1] > 0.95
    np.testing.assert_allclose(env.mean(0), 0, atol=1e-4)
    # one wide band, no z-scoring: in units of the mean envelope
    raw_env, _ = high_gamma_envelope(x[:, :1], sf, bands=((70, 150),), zscore=False, line_freq=60.0)
    assert abs(raw_env[inner].mean() - 1.0) < 0.05
    with pytest.raises(NeuralDataError, match="too low"):
        high_gamma_envelope(x, 250.0)
    with pytest.raises(NeuralDataError, match="NaN"):
        high_gamma_envelope(np.full((5000, 1), np.nan), sf)


def test_ieeg_errors_name_the_problem(ieeg_bids, tmp_path):
    root, _, _ = ieeg_bids
    with pytest.raises(NeuralDataError, match=r"no ieeg file matching sub-01_task-story"):
        load_bids_ieeg(root=root, subject="01", task="story")
    bad = tmp_path / "sub-01_foo-bar_task-podcast_ieeg.edf"
    bad.write_bytes(b"")
    with pytest.raises(NeuralDataError, match="unknown BIDS entity 'foo'"):
        load_bids_ieeg(bad)
    with pytest.raises(NeuralDataError, match="not found"):
        load_bids_ieeg(tmp_path / "sub-01_task-podcast_ieeg.edf")
    late = tmp_path / "late.tsv"
    pd.DataFrame({"word": ["a", "b"], "onset": [1.0, 25.0], "duration": [0.2, 0.2]}).to_csv(late, sep="\t", index=False)
    with pytest.raises(NeuralDataError, match="after the recording ends"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_bids_ieeg(root=root, subject="01", task="podcast", stimulus=late, high_gamma=False)


# ---------------------------------------------------------------------------------------------- fMRI
def _bold(shape=(5, 4, 3), n=60, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.normal(100, 5, size=shape + (n,)).astype(np.float32)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = [-10, -20, 5]
    return data, affine


def test_nifti_narratives_layout_round_trip(tmp_path):
    root = tmp_path / "ds002345"
    raw_func = root / "sub-001" / "func"
    raw_func.mkdir(parents=True)
    (raw_func / "sub-001_task-pieman_bold.json").write_text(json.dumps({"RepetitionTime": 1.5}))
    pd.DataFrame({"onset": [0.0, 15.0], "duration": [13.0, 60.0], "trial_type": ["music", "story"],
                  "stim_file": ["pieman_audio.wav"] * 2}).to_csv(raw_func / "sub-001_task-pieman_events.tsv",
                                                                 sep="\t", index=False)
    deriv = root / "derivatives" / "afni-nosmooth" / "sub-001" / "func"
    deriv.mkdir(parents=True)
    data, affine = _bold()
    data[0, 0, 0] = 0.0  # outside the mask: background
    data[1, 1, 1] = 7.0  # flat voxel inside the mask
    data[2, 1, 1, 10] = np.nan
    img = nib.Nifti1Image(data, affine)
    img.header.set_zooms((3.0, 3.0, 3.0, 2.0))  # header TR differs: the sidecar JSON wins
    bold = deriv / "sub-001_task-pieman_space-MNI152NLin2009cAsym_res-native_desc-clean_bold.nii.gz"
    nib.save(img, bold)
    mask = np.ones(data.shape[:3], np.uint8)
    mask[0, 0, 0] = 0
    nib.save(nib.Nifti1Image(mask, affine), tmp_path / "mask.nii.gz")
    atlas = np.zeros(data.shape[:3], np.int16)
    atlas[3:, :, :] = 2
    atlas[:2, :2, :] = 1
    nib.save(nib.Nifti1Image(atlas, affine), tmp_path / "atlas.nii.gz")
    gentle = root / "stimuli" / "gentle" / "pieman"
    gentle.mkdir(parents=True)
    (gentle / "align.csv").write_text("I,i,0.5,0.7\nbegan,began,0.8,1.2\nthe,the,,\nstory,story,1.5,1.9\n")
    with pytest.warns(UserWarning) as record:
        rec = load_bids_fmri(root=root / "derivatives" / "afni-nosmooth", subject="001", task="pieman",
                             mask=tmp_path / "mask.nii.gz", atlas=tmp_path / "atlas.nii.gz",
                             atlas_labels={1: "HG", 2: "IFG"}, stimulus=gentle / "align.csv",
                             stimulus_onset="events")
    messages = " ".join(str(w.message) for w in record)
    assert "NaN or flat" in messages and "no timing" in messages
    ds = rec.dataset
    assert ds.meta["tr"] == 1.5 and np.isclose(ds.times[-1], 59 * 1.5) and ds.modality == "fmri"
    assert ds.n_channels == 5 * 4 * 3 - 3 and ds.meta["n_outside_mask"] == 1
    assert rec.excluded == {"vox_1_1_1": "flat (zero variance)", "vox_2_1_1": "contains NaN or inf"}
    i = ds.channels.index("vox_4_3_2")
    np.testing.assert_allclose(ds.data[:, i], data[4, 3, 2])
    np.testing.assert_allclose(ds.coords[i], [-10 + 12, -20 + 9, 5 + 6])
    assert ds.regions[i] == "IFG" and ds.regions[ds.channels.index("vox_0_1_0")] == "HG"
    assert ds.regions[ds.channels.index("vox_2_2_2")] == "unlabeled"
    assert rec.stimulus.words == ("I", "began", "story")  # the unaligned word is dropped
    np.testing.assert_allclose(rec.stimulus.onsets, [0.5, 0.8, 1.5])  # audio starts at the first event (0 s)
    assert rec.files["events"].endswith("sub-001_task-pieman_events.tsv")
    assert stimulus_onset_from_events(rec.files["events"], trial_type="story") == 15.0


def test_gifti_both_hemispheres(tmp_path):
    func = tmp_path / "sub-001" / "func"
    func.mkdir(parents=True)
    rng = np.random.default_rng(0)
    n_v, n_t = 12, 40
    series = {}
    for h in ("L", "R"):
        d = rng.normal(size=(n_t, n_v)).astype(np.float32)
        d[:, 0] = 0.0  # medial wall
        series[h] = d
        darrays = [nib.gifti.GiftiDataArray(d[t], intent="NIFTI_INTENT_TIME_SERIES") for t in range(n_t)]
        nib.save(nib.GiftiImage(darrays=darrays),
                 func / f"sub-001_task-pieman_space-fsaverage6_hemi-{h}_desc-clean.func.gii")
        coords = rng.normal(size=(n_v, 3)).astype(np.float32) * 30
        faces = np.array([[0, 1, 2]], dtype=np.int32)
        nib.save(nib.GiftiImage(darrays=[nib.gifti.GiftiDataArray(coords, intent="NIFTI_INTENT_POINTSET"),
                                         nib.gifti.GiftiDataArray(faces, intent="NIFTI_INTENT_TRIANGLE")]),
                 tmp_path / f"{h}.pial.surf.gii")
    with pytest.warns(UserWarning, match="NaN or flat"):
        rec = load_bids_fmri(root=tmp_path, subject="001", task="pieman", hemi="both", tr=1.5,
                             surface=(tmp_path / "L.pial.surf.gii", tmp_path / "R.pial.surf.gii"))
    ds = rec.dataset
    assert ds.n_channels == 2 * (n_v - 1) and set(rec.excluded) == {"L_0", "R_0"}
    np.testing.assert_allclose(ds.data[:, ds.channels.index("R_5")], series["R"][:, 5])
    right = nib.load(tmp_path / "R.pial.surf.gii").darrays[0].data
    np.testing.assert_allclose(ds.coords[ds.channels.index("R_5")], right[5], rtol=1e-6)
    with pytest.raises(NeuralDataError, match="repetition time"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_bids_fmri(func / "sub-001_task-pieman_space-fsaverage6_hemi-L_desc-clean.func.gii")


def test_lebel_stories_as_runs(tmp_path):
    """One run per story, TextGrid words starting 10 s after the first volume; run-aware design."""
    root = tmp_path / "ds003020"
    stories = {"alternateithicatom": 70, "souls": 64}
    textgrids = root / "derivative" / "TextGrids"
    textgrids.mkdir(parents=True)
    paths, grids = [], []
    for k, (story, n) in enumerate(stories.items()):
        func = root / "sub-UTS01" / "ses-1" / "func"
        func.mkdir(parents=True, exist_ok=True)
        data, affine = _bold(n=n, seed=k)
        p = func / f"sub-UTS01_ses-1_task-{story}_bold.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), p)
        paths.append(p)
        write_textgrid(textgrids / f"{story}.TextGrid", story_words(200), xmax=100.0)
        grids.append(textgrids / f"{story}.TextGrid")
    (root / "task-souls_bold.json").write_text(json.dumps({"RepetitionTime": 2.0}))  # inherited sidecar
    ds, stims = load_bids_fmri_runs(paths, grids, stimulus_onset=10.0, tr=2.0)
    assert list(dict.fromkeys(ds.runs)) == ["ses-1_task-alternateithicatom", "ses-1_task-souls"]
    assert ds.n_samples == 134 and ds.meta["tr"] == 2.0
    assert stims[1].name == "souls" and np.isclose(stims[0].onsets[0], 10.5) and len(stims[0]) == 200
    feats = np.random.default_rng(0).normal(size=(2, 400, 3)).astype(np.float32)
    design = fmri_design_layers(feats, stims, ds, trim_start=10, trim_end=5)
    assert design.X.shape == (2, 134 - 30, 12)
    assert fmri_responses(ds, design).shape == (104, ds.n_channels)
    rec = load_bids_fmri(paths[1])
    assert rec.dataset.meta["tr"] == 2.0 and rec.files["sidecar"].endswith("task-souls_bold.json")
    with pytest.raises(NeuralDataError, match="start after the recording ends"):
        load_bids_fmri(paths[1], stimulus=grids[1], stimulus_onset=80.0)


def test_bids_names_and_lookup(tmp_path):
    name = parse_bids_name("sub-01_ses-2_task-x_run-3_space-fsaverage6_hemi-L_desc-clean.func.gii")
    assert name.entities == {"sub": "01", "ses": "2", "task": "x", "run": "3", "space": "fsaverage6",
                             "hemi": "L", "desc": "clean"}
    assert name.suffix is None and name.extension == ".func.gii"
    assert parse_bids_name("sub-01_task-x_bold.nii.gz").suffix == "bold"
    with pytest.raises(NeuralDataError, match="unknown BIDS entity 'color'"):
        parse_bids_name("sub-01_color-red_bold.nii.gz")
    with pytest.raises(NeuralDataError, match="sub-"):
        parse_bids_name("task-x_bold.nii.gz")
    with pytest.raises(NeuralDataError, match="unknown BIDS entity 'colour'"):
        find_bids_file(tmp_path, datatype="func", suffix="bold", extensions=(".nii.gz",), subject="01", colour="red")
    func = tmp_path / "sub-01" / "func"
    func.mkdir(parents=True)
    data, affine = _bold(n=5)
    for run in (1, 2):
        nib.save(nib.Nifti1Image(data, affine), func / f"sub-01_task-x_run-{run}_bold.nii.gz")
    with pytest.raises(NeuralDataError, match="2 files match"):
        find_bids_file(tmp_path, datatype="func", suffix="bold", extensions=(".nii.gz",), subject="01", task="x")
    one = find_bids_file(tmp_path, datatype="func", suffix="bold", extensions=(".nii.gz",), subject="01", run=2)
    assert one.name == "sub-01_task-x_run-2_bold.nii.gz"
    (func / "sub-01_task-x_events.tsv").write_text("onset\tduration\n0\t1\n")
    assert find_sidecar(one, "events", ".tsv").name == "sub-01_task-x_events.tsv"
    assert find_sidecar(one, "channels", ".tsv") is None


def test_read_word_timings_formats(tmp_path):
    gj = tmp_path / "align.json"
    gj.write_text(json.dumps({"words": [
        {"word": "Hello", "case": "success", "start": 0.1, "end": 0.5},
        {"word": "there", "case": "not-found-in-audio"},
        {"word": "world", "case": "success", "start": 0.45, "end": 0.9}]}))
    with pytest.warns(UserWarning, match="1 of 3 words"):
        stim = read_word_timings(gj, onset_shift=2.0)
    assert stim.words == ("Hello", "world")
    np.testing.assert_allclose(stim.onsets, [2.1, 2.45])
    np.testing.assert_allclose(stim.offsets, [2.45, 2.9])  # the overlap is clipped
    tsv = tmp_path / "words.tsv"
    pd.DataFrame({"onset": [0.0, 1.0], "duration": [0.5, 0.5], "word": ["a", "b"]}).to_csv(tsv, sep="\t", index=False)
    assert read_word_timings(tsv).words == ("a", "b")
    tg = tmp_path / "story.TextGrid"
    write_textgrid(tg, story_words(5), xmax=5.0)
    assert read_word_timings(tg).words == tuple(f"word{i}" for i in range(5))
    with pytest.raises(NeuralDataError, match="unknown word-timing format"):
        (tmp_path / "x.wav").write_bytes(b"")
        read_word_timings(tmp_path / "x.wav")
    with pytest.raises(NeuralDataError, match="not found"):
        read_word_timings(tmp_path / "missing.csv")


# ---------------------------------------------------------------------------------------------- Pereira
def test_pereira_mat_round_trip(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    n_sent, n_vox = 8, 10
    data = rng.normal(size=(n_sent, n_vox))
    sentences = np.array([f"Sentence number {i} is here." for i in range(n_sent)], dtype=object)
    rois = np.empty(1, dtype=object)
    rois[0] = np.array(["LH_AntTemp", "LH_IFG"], dtype=object)
    cols = np.empty(1, dtype=object)
    cc = np.empty(2, dtype=object)
    cc[0] = np.array([1, 2, 3])
    cc[1] = np.array([5, 6])
    cols[0] = cc
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-90, -126, -72]
    meta = {"colToCoord": np.column_stack([np.arange(1, n_vox + 1), np.ones(n_vox), np.ones(n_vox) * 2]),
            "matrix": affine, "atlases": np.array(["languageLH"], dtype=object), "rois": rois, "roiColumns": cols}
    path = tmp_path / "M02" / "data_384sentences.mat"
    path.parent.mkdir()
    savemat(path, {"examples_passagesentences": data, "keySentences": sentences,
                   "labelsPassageForEachSentence": np.repeat([1, 2], 4), "meta": meta})
    pd_ = load_pereira2018(path)
    ds = pd_.dataset
    assert ds.n_samples == n_sent and ds.n_channels == n_vox and ds.subject == "M02"
    np.testing.assert_allclose(ds.data, data, rtol=1e-6)
    assert ds.regions[:4] == ["LH_AntTemp"] * 3 + ["none"] and ds.regions[5] == "LH_IFG"
    np.testing.assert_allclose(ds.coords[0], [-90.0, -126.0, -70.0])
    assert list(dict.fromkeys(ds.runs)) == ["passage-1", "passage-2"]
    assert pd_.sentences[3] == "Sentence number 3 is here."
    assert len(pd_.stimulus) == 5 * n_sent and pd_.word_sentence[5] == 1
    with pytest.raises(NeuralDataError, match="atlas 'aal'"):
        load_pereira2018(path, atlas="aal")

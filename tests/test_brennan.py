"""The Brennan et al. (2016) Alice fMRI recording: shipped copy, authors' layout, timing, noise ceilings."""
from __future__ import annotations

import fnmatch
import json
import shutil
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sstats

from brainlike import Stimulus
from brainlike.errors import BrainlikeError, NeuralDataError
from brainlike.models.registry import shared_data_dir
from brainlike.neural import NeuralDataset, fmri_design
from brainlike.neural.brennan import (
    BRENNAN_GROUP_PREDICTORS,
    BRENNAN_ROIS,
    Brennan2016,
    brennan2016_dataset,
    brennan_control_names,
    brennan_design_controls,
    load_brennan2016,
    shipped_copy_dir,
    write_compact_copy,
)
from brainlike.neural.stats import add_ceiling_columns, loo_isc, spearman_brown, split_half_ceiling

REPO = Path(__file__).resolve().parents[1]
EXPECTED_LOO_ISC_6MM = {"LATL": 0.31, "RATL": 0.20, "LPTL": 0.38, "LIPL": 0.28, "LPreM": 0.22, "LIFG": 0.14}


def _load(*args, **kwargs) -> Brennan2016:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_brennan2016(*args, **kwargs)


@pytest.fixture(scope="module")
def rec() -> Brennan2016:
    return _load()


@pytest.fixture(scope="module")
def authors_root() -> Path:
    base = shared_data_dir()
    root = base / "recordings" / "brennan2016-alice" if base else None
    if root is None or not (root / "alice_data_shared").is_dir():
        pytest.skip("the authors' Brennan 2016 folder is not in the shared data")
    return root


# ---------------------------------------------------------------------------------------------- shipped copy
def test_shipped_copy_shapes_and_excluded_subject():
    with pytest.warns(UserWarning, match=r"excluded s33 \(all-zero time courses\)"):
        rec = load_brennan2016()
    assert rec.data.shape == (27, 362, 6) and rec.data.dtype == np.float64
    assert len(rec.subjects) == 27 and "s33" not in rec.subjects and rec.subjects[0] == "s18"
    assert rec.excluded == {"s33": "all-zero time courses"}
    assert rec.rois == BRENNAN_ROIS == ("LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG")
    assert rec.tr == 2.0 and rec.radius == "6mm"
    np.testing.assert_allclose(rec.volume_times, 20.0 + 2.0 * np.arange(362))
    assert isinstance(rec.stimulus, Stimulus) and len(rec.stimulus) == 2127 and "sp" not in rec.stimulus.words
    assert rec.stimulus.words[:3] == ("Alice", "was", "beginning")
    assert rec.stimulus.onsets[0] > rec.volume_times[0] and rec.stimulus.offsets[-1] < rec.volume_times[-1] + 2
    assert rec.controls["word_rate"].shape == (27, 362) and rec.controls["sound_power"].shape == (27, 362)
    assert rec.controls["motion"].shape == (27, 362, 6)
    assert rec.group_predictors.shape == (362, 12)
    assert tuple(rec.group_predictors.columns) == BRENNAN_GROUP_PREDICTORS
    assert "Brennan" in rec.citation and "CC BY 4.0" in rec.license and "Creative Commons" in rec.license
    # raw scanner units, not z-scored
    assert rec.data.mean() > 50 and np.all(rec.data.std(axis=1) > 0)


def test_other_radius_differs_and_bad_radius_is_an_error(rec):
    ten = _load(radius="10mm")
    assert ten.data.shape == rec.data.shape and ten.subjects == rec.subjects and ten.radius == "10mm"
    assert not np.allclose(ten.data, rec.data)
    # same subjects, same region: the two radii are strongly but not perfectly correlated
    r = np.corrcoef(ten.data[0, :, 2], rec.data[0, :, 2])[0, 1]
    assert 0.5 < r < 0.9999
    with pytest.raises(BrainlikeError, match="radius must be one of 6mm, 10mm"):
        load_brennan2016(radius="8mm")


def test_datasets_mean_and_select(rec):
    ds = rec.datasets()
    assert len(ds) == 27 and all(isinstance(d, NeuralDataset) for d in ds)
    assert ds[3].subject == rec.subjects[3] and ds[3].data.shape == (362, 6) and ds[3].modality == "fmri"
    assert ds[3].channels == list(BRENNAN_ROIS) == ds[3].regions and ds[3].meta["tr"] == 2.0
    np.testing.assert_allclose(ds[3].data, rec.data[3], rtol=1e-6)
    np.testing.assert_array_equal(ds[3].times, rec.volume_times)
    # the group mean is over subjects z-scored per ROI (scipy's zscore as the reference)
    np.testing.assert_allclose(rec.mean(), sstats.zscore(rec.data, axis=1).mean(axis=0), atol=1e-12)
    sub = rec.select(["s22", "s18"])
    assert sub.subjects == ("s22", "s18")
    np.testing.assert_array_equal(sub.data[1], rec.data[0])
    np.testing.assert_array_equal(sub.controls["motion"][0], rec.controls["motion"][1])
    with pytest.raises(BrainlikeError, match="s33 is excluded"):
        rec.select(["s33"])
    with pytest.raises(BrainlikeError, match="no subject 's99'"):
        rec.select(["s99"])
    assert _load(subjects=[18, "s22"]).subjects == ("s18", "s22")


def test_datasets_feed_the_generic_fmri_design(rec):
    """Word rate through the generic Lanczos + FIR design explains the authors' HRF-convolved word rate."""
    stim = rec.stimulus_on_volume_clock()
    np.testing.assert_allclose(stim.onsets, rec.stimulus.onsets - 20.0)
    ds = rec.datasets()[0]
    design = fmri_design(np.ones((len(stim), 1)), stim, ds, delays=(1, 2, 3, 4), trim_start=5, trim_end=5)
    y = rec.controls["word_rate"][0][design.keep]
    X = np.column_stack([np.ones(len(y)), design.X])
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    r = np.corrcoef(X @ beta, y)[0, 1]
    assert r > 0.9, r


def test_design_controls(rec):
    X = brennan_design_controls(rec)
    assert X.shape == (27, 362, 2) and brennan_control_names() == ("word_rate", "sound_power")
    np.testing.assert_allclose(X.mean(axis=1), 0, atol=1e-10)
    np.testing.assert_allclose(X.std(axis=1), 1, atol=1e-10)
    np.testing.assert_allclose(X[..., 0], sstats.zscore(rec.controls["word_rate"], axis=1), atol=1e-10)
    Xm = brennan_design_controls(rec, motion=True, zscore=False)
    assert Xm.shape == (27, 362, 8) and len(brennan_control_names(motion=True)) == 8
    np.testing.assert_array_equal(Xm[..., 1], rec.controls["sound_power"])
    np.testing.assert_array_equal(Xm[..., 2:], rec.controls["motion"])


# ---------------------------------------------------------------------------------------------- authors' files
def test_shipped_values_equal_the_authors_files(rec, authors_root):
    d = authors_root / "alice_data_shared"
    for i, s in enumerate(rec.subjects):
        np.testing.assert_allclose(rec.data[i], np.loadtxt(d / "6mm" / f"{s}-timecourses.txt"), rtol=1e-7, atol=0)
        np.testing.assert_allclose(rec.controls["word_rate"][i], np.loadtxt(d / f"{s}-rate.txt"), rtol=1e-7,
                                   atol=1e-12)
        np.testing.assert_allclose(rec.controls["sound_power"][i], np.loadtxt(d / f"{s}-sndpwr.txt"), rtol=1e-7,
                                   atol=1e-12)
        (rp,) = d.glob(f"{s}-rp_*.txt")
        np.testing.assert_allclose(rec.controls["motion"][i], np.loadtxt(rp)[10:], rtol=1e-7, atol=1e-12)
    assert not np.any(np.loadtxt(d / "6mm" / "s33-timecourses.txt"))
    grp = np.loadtxt(d / "sept18-generic-predictors-under-hrf-with-logfrqhal.txt")
    np.testing.assert_allclose(rec.group_predictors.to_numpy(), grp[10:], rtol=1e-7, atol=1e-12)
    tg = Stimulus.from_textgrid(authors_root / "alice_stim_shared" / "DownTheRabbitHoleFinal_exp120_pad_1.TextGrid")
    assert tg.words == rec.stimulus.words
    np.testing.assert_allclose(rec.stimulus.onsets, tg.onsets, atol=5e-7, rtol=0)
    np.testing.assert_allclose(rec.stimulus.offsets, tg.offsets, atol=5e-7, rtol=0)


def test_loader_reads_the_authors_layout(rec, authors_root, tmp_path):
    raw = _load(authors_root)
    assert raw.subjects == rec.subjects and raw.excluded == rec.excluded and raw.source.endswith("alice_data_shared")
    np.testing.assert_allclose(raw.data, rec.data, rtol=1e-7)
    np.testing.assert_allclose(raw.controls["motion"], rec.controls["motion"], rtol=1e-6, atol=1e-12)
    assert raw.stimulus.words == rec.stimulus.words
    # alice_data_shared itself: the TextGrid is found in ../alice_stim_shared
    inner = _load(authors_root / "alice_data_shared", "10mm")
    np.testing.assert_allclose(inner.data, _load(radius="10mm").data, rtol=1e-7)
    # a lone alice_data_shared needs textgrid=
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "alice_data_shared").symlink_to(authors_root / "alice_data_shared")
    with pytest.raises(BrainlikeError, match="pass textgrid="):
        load_brennan2016(lone / "alice_data_shared")
    tg = authors_root / "alice_stim_shared" / "DownTheRabbitHoleFinal_exp120_pad_1.TextGrid"
    assert _load(lone / "alice_data_shared", textgrid=tg).stimulus.words == rec.stimulus.words
    with pytest.raises(BrainlikeError, match="not found"):
        load_brennan2016(tmp_path / "nowhere")
    with pytest.raises(BrainlikeError, match="not the Brennan 2016 data share"):
        load_brennan2016(tmp_path)


def test_authors_files_are_checked_against_sha256sums(authors_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(authors_root, root)
    f = root / "alice_data_shared" / "6mm" / "s22-timecourses.txt"
    lines = f.read_text().splitlines()
    lines[0] = "   9.9999999e+03" + lines[0][16:]
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(BrainlikeError, match=r"s22-timecourses\.txt does not match its SHA-256 in .*SHA256SUMS"):
        load_brennan2016(root)
    assert _load(root, verify=False).data[1, 0, 0] == 9999.9999  # the changed value is read when not verifying


def test_write_compact_copy_reproduces_the_shipped_files(authors_root, tmp_path):
    out = write_compact_copy(authors_root, tmp_path / "copy")
    shipped = shipped_copy_dir()
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in shipped.iterdir() if p.is_file()
                                                           and not p.name.startswith("__"))
    for p in shipped.glob("*.npy"):
        a, b = np.load(p, allow_pickle=False), np.load(out / p.name, allow_pickle=False)
        assert a.dtype == np.float32 and np.array_equal(a, b), p.name
    for name in ("words.tsv", "LICENSE.txt", "CITATION.txt", "README.md"):
        assert (out / name).read_text() == (shipped / name).read_text(), name
    mine, theirs = json.loads((out / "manifest.json").read_text()), json.loads((shipped / "manifest.json").read_text())
    assert mine == theirs
    assert theirs["excluded"] == {"s33": "all-zero time courses"} and len(theirs["sources"]) == 27 * 5 + 2 + 2
    # the source checksums are the ones the shared copy lists
    sums = dict(reversed(line.split(None, 1)) for line in (authors_root / "SHA256SUMS").read_text().splitlines())
    for rel, h in theirs["sources"].items():
        assert sums["./" + rel] == h, rel
    size = sum(p.stat().st_size for p in shipped.iterdir() if p.is_file())
    assert size < 1_000_000, size


def test_damaged_copy_is_a_clear_error(tmp_path, monkeypatch):
    copy = tmp_path / "b"
    shutil.copytree(shipped_copy_dir(), copy, ignore=shutil.ignore_patterns("__*"))
    assert _load(copy).subjects == _load().subjects
    f = copy / "timecourses_6mm.npy"
    raw = bytearray(f.read_bytes())
    raw[-3] ^= 0x01
    f.write_bytes(bytes(raw))
    with pytest.raises(BrainlikeError, match=r"is damaged: .*timecourses_6mm\.npy does not match its SHA-256"):
        load_brennan2016(copy)
    assert _load(copy, radius="10mm").n_subjects == 27  # the other radius is intact
    assert not np.array_equal(_load(copy, verify=False).data, _load().data)
    import brainlike.neural.brennan as bmod

    monkeypatch.setattr(bmod, "shipped_copy_dir", lambda: copy)
    with pytest.raises(BrainlikeError, match="shipped with brainlike is damaged.*reinstall brainlike"):
        load_brennan2016()
    (copy / "words.tsv").unlink()
    with pytest.raises(BrainlikeError, match=r"words\.tsv is missing"):
        load_brennan2016(copy, radius="10mm")
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["n_volumes"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BrainlikeError, match=r"cannot read .*manifest\.json \(KeyError"):
        load_brennan2016(copy)
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(BrainlikeError, match=r"cannot read .*manifest\.json"):
        load_brennan2016(copy)


def test_package_data_ships_the_copy():
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["brainlike"]
    pkg = REPO / "src" / "brainlike"
    shipped = [p for p in (pkg / "data" / "brennan2016").iterdir() if p.is_file()]
    assert {p.name for p in shipped} >= {"manifest.json", "LICENSE.txt", "CITATION.txt", "README.md", "words.tsv",
                                        "timecourses_6mm.npy", "timecourses_10mm.npy", "motion.npy"}
    for p in shipped:
        rel = p.relative_to(pkg).as_posix()
        assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} is not in pyproject's package-data"


# ---------------------------------------------------------------------------------------------- timing
def test_volume_i_is_at_textgrid_time_20_plus_2i(rec):
    """Word rate from the TextGrid, convolved with SPM's HRF, matches the authors' regressor at 20 + 2 i only."""
    from nilearn.glm.first_level.hemodynamic_models import compute_regressor

    on = rec.stimulus.onsets
    cond = np.vstack([on, np.zeros_like(on), np.ones_like(on)])
    rs = {}
    for d in (-2, -1, 0, 1, 2):
        frames = 20.0 + 2.0 * (np.arange(362) + d)
        reg, _ = compute_regressor(cond, "spm", frames, oversampling=50, min_onset=-30)
        rs[d] = np.array([np.corrcoef(reg[:, 0], y)[0, 1] for y in rec.controls["word_rate"]])
    assert rs[0].min() > 0.95, rs[0].min()
    for d in (-2, -1, 1, 2):
        assert np.all(rs[d] < rs[0] - 0.01), (d, rs[d].max(), rs[0].min())



def test_motion_row_i_plus_10_is_volume_i(rec, authors_root):
    """The 372-row motion files include the 10 discarded volumes: head jerks (framewise displacement) line
    up with jumps of the ROI signals when motion row k + 10 is taken as volume k, and at no other offset."""
    d = authors_root / "alice_data_shared"
    b = np.arange(10, 341)  # volume-to-volume changes compared at offsets -10..20
    offsets = np.arange(-10, 21)
    r = np.zeros((rec.n_subjects, len(offsets)))
    for i, s in enumerate(rec.subjects):
        (rp,) = d.glob(f"{s}-rp_*.txt")
        m = np.loadtxt(rp)
        fd = np.abs(np.diff(m[:, :3], axis=0)).sum(1) + 50 * np.abs(np.diff(m[:, 3:], axis=0)).sum(1)  # Power 2012
        jump = np.abs(np.diff(sstats.zscore(rec.data[i], axis=0), axis=0)).mean(1)
        r[i] = [np.corrcoef(fd[b + o], jump[b])[0, 1] for o in offsets]
    mean = r.mean(axis=0)
    assert offsets[np.argmax(mean)] == 10, dict(zip(offsets.tolist(), mean.round(3)))
    assert mean[offsets == 10][0] > 0.15

# ---------------------------------------------------------------------------------------------- noise ceilings
def test_loo_isc_of_brennan_6mm(rec):
    isc = loo_isc(rec.data)
    assert isc.per_subject.shape == (27, 6) and isc.n_subjects == 27 and isc.zscored
    for roi, m in zip(rec.rois, isc.mean):
        assert abs(m - EXPECTED_LOO_ISC_6MM[roi]) < 0.01, (roi, m)
    # reference: scipy's pearsonr of each z-scored subject with the mean of the others
    z = sstats.zscore(rec.data, axis=1)
    i, j = 5, 2
    ref = sstats.pearsonr(z[i, :, j], np.delete(z, i, axis=0)[:, :, j].mean(axis=0)).statistic
    assert np.isclose(isc.per_subject[i, j], ref, atol=1e-12)
    table = rec.noise_ceilings(n_splits=50, seed=0)
    assert list(table["roi"]) == list(BRENNAN_ROIS)
    np.testing.assert_allclose(table["loo_isc"], isc.mean)
    # the mean of 27 subjects is far more reliable than one subject is like the others
    assert np.all(table["group_ceiling"] > table["loo_isc"])
    assert np.all(table["reliability_low"] <= table["reliability"])
    assert np.all(table["reliability"] <= table["reliability_high"])


def test_spearman_brown_and_subject_ceilings_recover_planted_reliability():
    rng = np.random.default_rng(0)
    n_sub, n, c = 20, 5000, 5
    rho = np.array([0.05, 0.1, 0.2, 0.4, 0.7])  # planted single-subject reliability per target
    signal = rng.standard_normal((n, c))
    noise_sd = np.sqrt((1 - rho) / rho)
    scale = rng.uniform(0.5, 5.0, size=(n_sub, 1, 1))  # subjects in different raw units
    data = scale * (signal[None] + rng.standard_normal((n_sub, n, c)) * noise_sd) + 100.0
    full = n_sub * rho / (1 + (n_sub - 1) * rho)
    np.testing.assert_allclose(spearman_brown(rho, n_sub), full)
    np.testing.assert_allclose(spearman_brown(spearman_brown(rho, 10), 2), full)
    assert spearman_brown(-1.0) == -1.0
    sh = split_half_ceiling(data, n_splits=40, seed=1)
    np.testing.assert_allclose(sh.split_half_r, spearman_brown(rho, n_sub // 2), atol=0.03)
    np.testing.assert_allclose(sh.reliability, full, atol=0.03)  # ~2.5 SE at rho = .05
    np.testing.assert_allclose(sh.ceiling, np.sqrt(sh.reliability))
    assert sh.split_r.shape == (40, c) and np.all(sh.low <= sh.reliability) and np.all(sh.reliability <= sh.high)
    # the ceiling is what a perfect model reaches against the group mean
    zmean = sstats.zscore(data, axis=1).mean(axis=0)
    r_true = np.array([np.corrcoef(signal[:, k], zmean[:, k])[0, 1] for k in range(c)])
    np.testing.assert_allclose(sh.ceiling, r_true, atol=0.02)
    isc = loo_isc(data)
    expected = np.sqrt(rho) * np.sqrt(spearman_brown(rho, n_sub - 1))  # r(subject, mean of the others)
    np.testing.assert_allclose(isc.mean, expected, atol=0.02)
    assert split_half_ceiling(data, n_splits=40, seed=1).reliability.tolist() == sh.reliability.tolist()
    with pytest.raises(NeuralDataError, match="at least 2 subjects"):
        loo_isc(data[:1])
    with pytest.raises(NeuralDataError, match="ci must be in"):
        split_half_ceiling(data, ci=1.5)



def test_ceiling_normalised_scores_sit_beside_the_raw_ones(rec):
    import pandas as pd

    nc = rec.noise_ceilings(n_splits=20)
    scores = pd.DataFrame({"model": "m", "subject": np.repeat(["s18", "s22"], 6), "channel": list(rec.rois) * 2,
                           "r": np.linspace(0.01, 0.3, 12), "alpha": 1.0})
    out = add_ceiling_columns(scores, dict(zip(nc["roi"], nc["loo_isc"])), min_ceiling=0.15)
    assert list(out.columns) == ["model", "subject", "channel", "r", "ceiling", "r_normalized", "alpha"]
    pd.testing.assert_frame_equal(out[scores.columns], scores)  # the raw scores are kept as they were
    want = scores["r"] / scores["channel"].map(dict(zip(nc["roi"], nc["loo_isc"])))
    lifg = (scores["channel"] == "LIFG").to_numpy()  # LOO ISC .14 < min_ceiling: not normalised
    assert np.all(np.isnan(out["r_normalized"][lifg]))
    np.testing.assert_allclose(out["r_normalized"][~lifg], want[~lifg])
    # per (subject, channel) ceilings from a table
    isc = loo_isc(rec.data)
    table = pd.DataFrame({"subject": np.repeat(rec.subjects, 6), "channel": list(rec.rois) * rec.n_subjects,
                          "ceiling": isc.per_subject.reshape(-1)})
    out2 = add_ceiling_columns(scores, table, on=["subject", "channel"], min_ceiling=0.0)
    np.testing.assert_allclose(out2["ceiling"][:6], isc.per_subject[0])
    with pytest.raises(NeuralDataError, match="no column"):
        add_ceiling_columns(scores, table, on=["subject", "roi"])
    with pytest.raises(NeuralDataError, match="duplicate"):
        add_ceiling_columns(scores, pd.concat([table, table]), on=["subject", "channel"])

# ---------------------------------------------------------------------------------------------- registry hook
def test_registry_hook_builds_the_recording_and_names_bad_fields():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        rec = brennan2016_dataset({"kind": "brennan2016", "path": None, "radius": "10mm", "subjects": ["s18", 22]})
        assert rec.radius == "10mm" and rec.subjects == ("s18", "s22")
        assert brennan2016_dataset({}).n_subjects == 27
        bad = [({"radus": "6mm"}, "unknown field.*radus"), ({"radius": "8mm"}, "dataset.radius"),
               ({"radius": True}, "dataset.radius"), ({"subjects": "s18"}, "dataset.subjects"),
               ({"subjects": []}, "dataset.subjects"), ({"subjects": ["s33"]}, "dataset.subjects.*s33 is excluded"),
               ({"subjects": ["s99"]}, "dataset.subjects.*no subject"), ({"subjects": ["s18", 18]}, "twice"),
               ({"path": 3}, "dataset.path"), ({"verify": "yes"}, "dataset.verify"), ("6mm", "must be a mapping")]
        for section, msg in bad:
            with pytest.raises(BrainlikeError, match=msg):
                brennan2016_dataset(section)

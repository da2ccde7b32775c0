"""Ground truth for the organization analysis: voxels of known networks follow known neuron sub-groups.

1. :func:`plant_groups` picks ``n_groups`` sub-groups of a real model's neurons: k-means clusters of the
   neurons' TR-level time courses (``3 × n_groups`` clusters; the most coherent ``n_groups`` whose signals are
   pairwise distinct, ``|r| < max_corr``, are kept).
   A group's signal is the z-scored mean time course of its members.
2. :func:`simulate_network_fmri` builds a small 3-D grid cut into blocks; each network is a union of
   two separated blocks (label image + names). Network ``n`` listed in ``planted`` follows group
   ``planted[n]``: every voxel is ``a_v · (HRF ∗ group signal) + noise`` with ``a_v ~ U(0.5, 1.5)``;
   the next ``n_null_driven`` networks follow an independent AR(1) signal (``phi = 0.8`` per TR) that no
   neuron contains, with the same SNR: a *null network* that is real brain signal but unrelated to the
   model, which no pattern may be assigned to beyond the nominal rate;
   the other networks and the unlabelled voxels are noise only. The HRF is SPM's (the analysis assumes
   Glover's), noise is AR(1) per voxel, and each driven voxel's ``var(signal) / var(noise)`` equals ``snr``.

Everything is seeded.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from brainlike.analyses.organization.brain import BrainData
from brainlike.analyses.organization.glm import hrf_regressors
from brainlike.errors import BrainlikeError

__all__ = ["SimulatedOrganization", "plant_groups", "simulate_network_fmri"]


def plant_groups(timecourses: np.ndarray, n_groups: int = 3, seed: int = 0,
                 min_size: int = 5, max_corr: float = 0.3) -> tuple[list[np.ndarray], np.ndarray]:
    """Known neuron sub-groups of a real model.

    Parameters
    ----------
    timecourses : np.ndarray
        ``(n_trs, n_neurons)`` unit-norm TR-level time courses
        (:func:`.timecourses.normalize_timecourses`); constant neurons (all-zero) are never chosen.
    n_groups : int
        sub-groups to return.
    seed : int
        k-means seed.
    min_size : int
        smallest admissible group.
    max_corr : float
        largest |r| allowed between two groups' signals (distinct groups).

    Returns
    -------
    tuple[list[np.ndarray], np.ndarray]
        ``groups`` (global neuron indices per group, sorted) and ``signals`` ``(n_trs, n_groups)`` float32
        (the z-scored mean time course of each group).
    """
    from sklearn.cluster import KMeans

    X = np.asarray(timecourses, dtype=np.float64)
    live = np.flatnonzero(np.abs(X).sum(axis=0) > 0)
    n_clusters = 3 * n_groups
    if len(live) < n_clusters * min_size:
        raise BrainlikeError(f"too few live neurons ({len(live)}) to plant {n_groups} groups")
    km = KMeans(n_clusters=n_clusters, n_init=4, random_state=seed).fit(X[:, live].T)
    means = np.stack([X[:, live[km.labels_ == c]].mean(axis=1) for c in range(n_clusters)], axis=1)
    sizes = np.bincount(km.labels_, minlength=n_clusters)
    coherence = np.where(sizes >= min_size, np.linalg.norm(means, axis=0), -1.0)
    r = np.corrcoef(means.T)
    chosen: list[int] = []
    for c in np.argsort(-coherence, kind="stable"):  # most coherent first, distinct signals only
        if coherence[c] > 0 and all(abs(r[c, d]) < max_corr for d in chosen):
            chosen.append(int(c))
        if len(chosen) == n_groups:
            break
    if len(chosen) < n_groups:
        raise BrainlikeError(f"found only {len(chosen)} neuron groups with distinct signals (|r| < {max_corr}); "
                             f"plant fewer groups")
    groups = [np.sort(live[km.labels_ == c]) for c in chosen]
    signals = means[:, chosen]
    signals = (signals - signals.mean(axis=0)) / signals.std(axis=0)
    return groups, signals.astype(np.float32)


@dataclass
class SimulatedOrganization:
    """A simulated data set with its ground truth.

    Attributes
    ----------
    data : BrainData
        volume :class:`BrainData` (the mask is the whole grid).
    atlas : np.ndarray
        ``(x, y, z)`` int64 network label volume (0 = no network), same grid.
    names : dict[int, str]
        network id → name.
    truth : pd.DataFrame
        one row per network: ``network_id, network, kind`` (``"neurons"`` or ``"noise"``),
        ``group`` (planted neuron group or -1) and ``n_voxels``.
    signals : np.ndarray
        ``(n_trs, n_groups)`` float32 TR-level drive of each planted group (before HRF).
    voxel_truth : np.ndarray
        ``(n_voxels,)`` int64 planted group of every voxel (-1 = none).
    """

    data: BrainData
    atlas: np.ndarray
    names: dict[int, str]
    truth: pd.DataFrame
    signals: np.ndarray
    voxel_truth: np.ndarray
    params: dict = field(default_factory=dict)

    def atlas_image(self):
        """The label volume as a ``nibabel.Nifti1Image``."""
        import nibabel as nib

        return nib.Nifti1Image(self.atlas.astype(np.int16), self.data.affine)

    def bold_image(self):
        """The BOLD data as a 4-D ``nibabel.Nifti1Image`` (TR in the header)."""
        import nibabel as nib

        vol = np.zeros(self.data.mask.shape + (self.data.n_trs,), dtype=np.float32)
        vol[self.data.mask] = self.data.bold.T
        img = nib.Nifti1Image(vol, self.data.affine)
        img.header.set_zooms((2.0, 2.0, 2.0, float(self.data.tr)))
        return img

    def names_table(self) -> pd.DataFrame:
        """``index``/``name`` table (as written next to a label image)."""
        return pd.DataFrame({"index": list(self.names), "name": list(self.names.values())})


def _network_volume(grid: int, block: int, n_networks: int, rng: np.random.Generator) -> np.ndarray:
    """Label volume: each network = two blocks that do not touch (when the grid allows)."""
    nb = grid // block
    if nb ** 3 < 2 * n_networks:
        raise BrainlikeError(f"a {grid}³ grid with {block}³ blocks has room for {nb ** 3 // 2} networks, "
                             f"not {n_networks}")
    cells = [(a, b, c) for a in range(nb) for b in range(nb) for c in range(nb)]
    order = rng.permutation(len(cells))
    vol = np.zeros((grid, grid, grid), dtype=np.int64)
    used: list[tuple[int, int, int]] = []
    pool = [cells[i] for i in order]
    for n in range(1, n_networks + 1):
        first = pool.pop(0)
        far = [c for c in pool if max(abs(c[i] - first[i]) for i in range(3)) >= 2] or pool
        second = far[0]
        pool.remove(second)
        for a, b, c in (first, second):
            vol[a * block:(a + 1) * block, b * block:(b + 1) * block, c * block:(c + 1) * block] = n
        used += [first, second]
    return vol


def simulate_network_fmri(
    signals: np.ndarray,
    tr: float,
    planted: dict[int, int] | None = None,
    n_networks: int = 6,
    grid: int = 12,
    block: int = 4,
    snr: float = 1.0,
    ar_coef: float = 0.3,
    hrf_model: str = "spm",
    seed: int = 0,
    n_null_driven: int = 0,
) -> SimulatedOrganization:
    """Simulated volume fMRI in which planted networks follow the given group signals.

    Parameters
    ----------
    signals : np.ndarray
        ``(n_trs, n_groups)`` TR-level group signals (from :func:`plant_groups`).
    tr : float
        repetition time, seconds.
    planted : dict[int, int] | None
        network id (1-based) → group column of ``signals``; default: network ``g + 1`` follows
        group ``g``.
    n_networks : int
        networks in the atlas (must exceed the planted ones to leave null networks).
    grid : int
        the volume is ``grid³`` voxels; ``block``: block edge (voxels).
    snr : float
        variance ratio signal / noise in driven voxels.
    ar_coef : float
        AR(1) coefficient of the noise per TR.
    hrf_model : str
        HRF used to make the data (``"spm"`` by default, differing from the analysis' Glover).
    seed : int
        random seed.
    n_null_driven : int
        networks (the first ids not in ``planted``) driven by independent AR(1) signals
        unrelated to the model (``kind = "null_signal"`` in ``truth``).
    """
    signals = np.asarray(signals, dtype=np.float64)
    n_trs, n_groups = signals.shape
    planted = {g + 1: g for g in range(n_groups)} if planted is None else {int(k): int(v) for k, v in planted.items()}
    if any(not 1 <= n <= n_networks for n in planted):
        raise BrainlikeError(f"planted networks must be in 1..{n_networks}")
    if any(not 0 <= g < n_groups for g in planted.values()):
        raise BrainlikeError(f"planted groups must be columns 0..{n_groups - 1} of signals")
    if snr <= 0:
        raise BrainlikeError(f"snr must be positive, got {snr}")
    free = [n for n in range(1, n_networks + 1) if n not in planted]
    if n_null_driven > len(free):
        raise BrainlikeError(f"{n_null_driven} null-driven networks do not fit: only {len(free)} networks are "
                             "not planted")
    null_nets = free[:n_null_driven]
    rng = np.random.default_rng(seed)
    vol = _network_volume(grid, block, n_networks, rng)
    labels = vol.reshape(-1)
    n_vox = labels.size
    regs = hrf_regressors(signals.T, tr, hrf_model=hrf_model)  # (n_trs, n_groups), z-scored
    noise = lfilter([1.0], [1.0, -ar_coef], rng.normal(size=(n_trs, n_vox)), axis=0)
    noise /= noise.std(axis=0)
    bold = noise.copy()
    voxel_truth = np.full(n_vox, -1, dtype=np.int64)
    for n, g in planted.items():
        vox = np.flatnonzero(labels == n)
        amp = rng.uniform(0.5, 1.5, len(vox)) * np.sqrt(snr)
        bold[:, vox] += regs[:, [g]] * amp[None]
        voxel_truth[vox] = g
    null_rng = np.random.default_rng([seed, 7919])  # its own stream: the planted part is unchanged
    for n in null_nets:
        drive = lfilter([1.0], [1.0, -0.8], null_rng.normal(size=n_trs))
        reg = hrf_regressors(drive[None], tr, hrf_model=hrf_model)
        vox = np.flatnonzero(labels == n)
        bold[:, vox] += reg * (null_rng.uniform(0.5, 1.5, len(vox)) * np.sqrt(snr))[None]
    bold += 100.0  # a baseline, like real BOLD
    names = {n: f"net{n}" for n in range(1, n_networks + 1)}
    truth = pd.DataFrame({
        "network_id": list(names), "network": list(names.values()),
        "kind": ["neurons" if n in planted else "null_signal" if n in null_nets else "noise" for n in names],
        "group": [planted.get(n, -1) for n in names], "n_voxels": [(labels == n).sum() for n in names]})
    mask = np.ones(vol.shape, dtype=bool)
    data = BrainData(bold.astype(np.float32), tr, mask, np.diag([2.0, 2.0, 2.0, 1.0]), "simulated")
    params = dict(tr=tr, n_networks=n_networks, grid=grid, block=block, snr=snr, ar_coef=ar_coef,
                  hrf_model=hrf_model, seed=seed, planted=planted, n_null_driven=n_null_driven)
    return SimulatedOrganization(data, vol, names, truth, signals.astype(np.float32), voxel_truth, params)

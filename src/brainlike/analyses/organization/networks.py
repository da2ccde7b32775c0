"""Functional brain network templates, map-to-network overlap, and a permutation null.

**Templates.** A network atlas gives every voxel (or vertex / parcel) of the data one network label
(0 = none). It is loaded from

* ``"yeo7"`` / ``"yeo17"``: Yeo et al. (2011) through :func:`nilearn.datasets.fetch_atlas_yeo_2011`,
* ``"schaefer-<n_rois>-<7|17>"``: Schaefer et al. (2018) parcels grouped into their Yeo networks
  (the network is parsed from parcel names such as ``7Networks_LH_Vis_1``),
* a NIfTI label image (resampled to the data grid with nearest-neighbour interpolation), a GIfTI
  label file (surface data; names from its label table), or a ``.npy``/``.txt`` vector of one label per
  data column (parcel data),

plus an optional names table (TSV/CSV with columns ``index`` and ``name``, and optionally ``network``
to group parcels into networks). nilearn fetchers only work when the atlas is in the user's nilearn
data folder or the network is reachable.

**Overlap** of a pattern's map with network ``n``: Dice ``2|M∩T|/(|M|+|T|)`` and Jaccard
``|M∩T|/|M∪T|`` between the significant voxels ``M`` and the template ``T``, and the spatial (point-
biserial) correlation between the statistic map (``|t|`` for two-sided tests) and the template
indicator. The pattern is *assigned* the network with the highest overlap (``metric``).

**Null.** ``n_permutations`` random permutations of the voxels' network labels (equivalently, of the
map's voxels) give, for each pattern, the null distribution of its highest overlap over all networks;
``p_value = (1 + #{null max ≥ observed}) / (1 + n_permutations)`` is corrected for the choice among
networks, and Benjamini–Hochberg across patterns gives ``q_value``. A pattern is assigned when
``q_value < alpha``. Shuffling ignores spatial autocorrelation, so it is liberal for smooth volume
maps; a spin test (rotating a spherical surface map, e.g. with neuromaps/brainspace) respects it but
needs surface coordinates and is not implemented here — parcel-level data reduce the problem.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from brainlike.analyses.organization.brain import BrainData
from brainlike.errors import BrainlikeError

__all__ = ["METRICS", "NetworkAtlas", "YEO7_NAMES", "load_atlas", "match_networks", "network_of_parcel",
           "overlap_scores"]

METRICS = ("dice", "jaccard", "correlation")

#: Conventional names of the Yeo 7 networks (label 1..7).
YEO7_NAMES = {1: "Visual", 2: "Somatomotor", 3: "DorsalAttention", 4: "VentralAttention", 5: "Limbic",
              6: "Frontoparietal", 7: "Default"}

_SCHAEFER = re.compile(r"^(?:\d+Networks_)?(?:LH|RH)_([A-Za-z]+)")


@dataclass
class NetworkAtlas:
    """Network label of every data column.

    Attributes
    ----------
    labels : np.ndarray
        ``(n_voxels,)`` int64 network id per data column (0 = no network).
    names : dict[int, str]
        network id → name (ids ≥ 1).
    source : str
        where it came from.
    """

    labels: np.ndarray
    names: dict[int, str]
    source: str = ""

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels).astype(np.int64).reshape(-1)
        present = sorted(int(i) for i in np.unique(self.labels) if i > 0)
        if not present:
            raise BrainlikeError(f"atlas {self.source!r}: no voxel of the data carries a network label")
        self.names = {i: self.names.get(i, f"network_{i}") for i in present}

    @property
    def ids(self) -> np.ndarray:
        """``(n_networks,)`` network ids in ascending order."""
        return np.array(sorted(self.names), dtype=np.int64)

    def templates(self) -> np.ndarray:
        """``(n_networks, n_voxels)`` bool, one row per network in :attr:`ids` order."""
        return self.labels[None, :] == self.ids[:, None]

    def table(self) -> pd.DataFrame:
        """One row per network: ``network_id``, ``network`` name, ``n_voxels``."""
        return pd.DataFrame({"network_id": self.ids, "network": [self.names[i] for i in self.ids],
                             "n_voxels": [(self.labels == i).sum() for i in self.ids]})


def network_of_parcel(name: str) -> str:
    """The network of a Schaefer-style parcel name (``7Networks_LH_Vis_1`` → ``Vis``), else the name."""
    m = _SCHAEFER.match(str(name))
    return m.group(1) if m else str(name)


def _names_table(names) -> pd.DataFrame | None:
    """A names table (``index``, ``name`` [, ``network``]) from a path, dict or list (1-based)."""
    if names is None:
        return None
    if isinstance(names, dict):
        return pd.DataFrame({"index": [int(k) for k in names], "name": [str(v) for v in names.values()]})
    if isinstance(names, (list, tuple)):
        return pd.DataFrame({"index": np.arange(1, len(names) + 1), "name": [str(v) for v in names]})
    path = Path(names)
    if not path.exists():
        raise BrainlikeError(f"atlas names table not found: {path}")
    df = pd.read_csv(path, sep=None, engine="python")
    cols = {c.lower(): c for c in df.columns}
    if "index" not in cols or "name" not in cols:
        raise BrainlikeError(f"{path}: the names table needs columns 'index' and 'name' (got {list(df.columns)})")
    out = pd.DataFrame({"index": df[cols["index"]].astype(int), "name": df[cols["name"]].astype(str)})
    if "network" in cols:
        out["network"] = df[cols["network"]].astype(str)
    return out


def _group(labels: np.ndarray, table: pd.DataFrame | None, group_parcels: bool) -> tuple[np.ndarray, dict[int, str]]:
    """Map raw labels to network ids using the names table (grouping parcels into networks)."""
    labels = np.asarray(labels).astype(np.int64)
    if table is None:
        return labels, {}
    table = table[table["index"] > 0]
    if "network" in table or group_parcels:
        net = table["network"] if "network" in table else table["name"].map(network_of_parcel)
        uniq = list(dict.fromkeys(net.tolist()))
        net_id = {n: i + 1 for i, n in enumerate(uniq)}
        lut = np.zeros(max(int(labels.max()), int(table["index"].max())) + 1, dtype=np.int64)
        lut[table["index"].to_numpy()] = [net_id[n] for n in net]
        out = np.where(labels > 0, lut[np.clip(labels, 0, len(lut) - 1)], 0)
        return out, {i: n for n, i in net_id.items()}
    return labels, dict(zip(table["index"].astype(int), table["name"]))


def load_atlas(atlas, data: BrainData, names=None, group_parcels: bool | None = None,
               data_dir: str | None = None) -> NetworkAtlas:
    """Network labels for the columns of ``data``.

    Parameters
    ----------
    atlas : str, Path, nibabel image or ndarray
        ``"yeo7"``, ``"yeo17"``, ``"schaefer-400-7"`` (any n_rois/7|17), a NIfTI label image
        (path or nibabel image), a GIfTI ``.label.gii``, a ``.npy``/``.txt`` label vector, or an
        integer array with one label per column.
    data : BrainData
        the brain data the labels must match (grid for volumes, columns otherwise).
    names : str, Path, dict or list of str, optional
        names table path, ``{id: name}`` or a list of names for ids 1..n.
    group_parcels : bool | None
        group parcels into networks by parsing Schaefer-style names (default: True for
        ``schaefer-*`` atlases).
    data_dir : str | None
        nilearn data folder for the fetchers.
    """
    source = str(atlas) if isinstance(atlas, (str, Path)) else type(atlas).__name__
    table = _names_table(names)
    if isinstance(atlas, str) and (atlas.lower().startswith(("yeo", "schaefer"))) and not Path(atlas).exists():
        img, table, parcels = _fetch(atlas.lower(), data_dir)
        group_parcels = parcels if group_parcels is None else group_parcels
        labels = _volume_labels(img, data)
    elif isinstance(atlas, np.ndarray):
        labels = atlas.reshape(-1) if atlas.ndim == 1 else _volume_labels(_as_image(atlas, data), data)
    elif isinstance(atlas, (str, Path)) and str(atlas).endswith(".gii"):
        labels, gifti_names = _gifti_labels(Path(atlas))
        table = table if table is not None else gifti_names
    elif isinstance(atlas, (str, Path)) and str(atlas).endswith((".npy", ".txt", ".csv", ".tsv")):
        path = Path(atlas)
        if not path.exists():
            raise BrainlikeError(f"atlas label file not found: {path}")
        labels = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, dtype=np.int64).reshape(-1)
    else:
        from brainlike.analyses.organization.brain import _load_img

        labels = _volume_labels(_load_img(atlas, "atlas"), data)
    labels = np.asarray(labels)
    if labels.shape != (data.n_voxels,):
        raise BrainlikeError(f"atlas {source!r}: {labels.size} labels for {data.n_voxels} data columns")
    if np.any(labels < 0) or not np.allclose(labels, np.round(labels)):
        raise BrainlikeError(f"atlas {source!r}: labels must be non-negative integers")
    grouped, id_names = _group(labels, table, bool(group_parcels))
    return NetworkAtlas(grouped, id_names, source)


def _as_image(arr: np.ndarray, data: BrainData):
    import nibabel as nib

    if not data.is_volume:
        raise BrainlikeError("a 3-D atlas array needs volume data")
    return nib.Nifti1Image(np.asarray(arr).astype(np.int32), data.affine)


def _volume_labels(img, data: BrainData) -> np.ndarray:
    """Labels of the data's mask voxels, resampling the atlas image to the data grid when needed."""
    if not data.is_volume:
        raise BrainlikeError("a NIfTI atlas needs volume (NIfTI) data; for surface/parcel data give one label "
                             "per data column (.npy/.txt or GIfTI)")
    vol = np.asanyarray(img.dataobj)
    vol = vol[..., 0] if vol.ndim == 4 else vol
    if vol.shape != data.mask.shape or not np.allclose(img.affine, data.affine, atol=1e-3):
        import nibabel as nib
        from nilearn.image import resample_to_img

        img = resample_to_img(nib.Nifti1Image(vol.astype(np.int32), img.affine), data.reference_image(),
                              interpolation="nearest", force_resample=True, copy_header=True)
        vol = np.asanyarray(img.dataobj)
    return np.rint(vol[data.mask]).astype(np.int64)


def _gifti_labels(path: Path) -> tuple[np.ndarray, pd.DataFrame | None]:
    import nibabel as nib

    if not path.exists():
        raise BrainlikeError(f"atlas file not found: {path}")
    img = nib.load(str(path))
    labels = np.asarray(img.darrays[0].data).astype(np.int64).reshape(-1)
    lt = getattr(img, "labeltable", None)
    names = None
    if lt is not None and lt.labels:
        names = pd.DataFrame({"index": [int(lab.key) for lab in lt.labels], "name": [lab.label for lab in lt.labels]})
    return labels, names


def _fetch(name: str, data_dir: str | None):
    """(image, names table, group_parcels) of a nilearn atlas; a clear error when it is unavailable."""
    from nilearn import datasets

    try:
        if name in ("yeo7", "yeo17"):
            n = int(name[3:])
            atlas = datasets.fetch_atlas_yeo_2011(data_dir=data_dir, n_networks=n, thickness="thick", verbose=0)
            lut = atlas.lut
            table = pd.DataFrame({"index": lut["index"].astype(int), "name": lut["name"].astype(str)})
            if n == 7:
                table["name"] = [YEO7_NAMES.get(int(i), nm) for i, nm in zip(table["index"], table["name"])]
            return _load(atlas.maps), table, False
        m = re.fullmatch(r"schaefer-(\d+)-(7|17)", name)
        if not m:
            raise BrainlikeError(f"unknown atlas {name!r}: use yeo7, yeo17, schaefer-<n_rois>-<7|17> or a file")
        atlas = datasets.fetch_atlas_schaefer_2018(n_rois=int(m.group(1)), yeo_networks=int(m.group(2)),
                                                   resolution_mm=2, data_dir=data_dir, verbose=0)
        lut = atlas.lut
        table = pd.DataFrame({"index": lut["index"].astype(int), "name": lut["name"].astype(str)})
        return _load(atlas.maps), table, True
    except BrainlikeError:
        raise
    except Exception as exc:  # network errors, missing files
        raise BrainlikeError(f"atlas {name!r} is not available through nilearn ({type(exc).__name__}: {exc}); "
                             "download it once with network access, or give a label image and a names table") from None


def _load(img):
    import nibabel as nib

    return nib.load(str(img)) if isinstance(img, (str, Path)) else img


# -------------------------------------------------------------------------------------------- overlap
def _scores(counts: np.ndarray, n_map: np.ndarray, n_net: np.ndarray, sums: np.ndarray, n_vox: int) -> dict:
    """Overlap metrics from intersection counts ``(K, N)``, map sizes ``(K,)``.

    Network sizes ``(N,)`` and sums of the standardised statistic map inside each network ``(K, N)``.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(n_map[:, None] + n_net[None] > 0, 2 * counts / (n_map[:, None] + n_net[None]), 0.0)
        union = n_map[:, None] + n_net[None] - counts
        jac = np.where(union > 0, counts / union, 0.0)
        frac = n_net / n_vox
        corr = sums / (n_vox * np.sqrt(frac * (1 - frac)))[None]
    return {"dice": dice, "jaccard": jac, "correlation": np.nan_to_num(corr)}


def _standardize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    sd = x.std(axis=1, keepdims=True)
    return np.where(sd > 0, x / np.where(sd > 0, sd, 1.0), 0.0)


def overlap_scores(significant: np.ndarray, stat: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> dict:
    """Dice, Jaccard and spatial correlation of every map with every network.

    Parameters
    ----------
    significant : np.ndarray
        ``(K, n_voxels)`` bool maps.
    stat : np.ndarray
        ``(K, n_voxels)`` statistic maps (e.g. ``|t|``) for the correlation metric.
    labels : np.ndarray
        ``(n_voxels,)`` network id per voxel.
    ids : np.ndarray
        ``(N,)`` network ids.

    Returns
    -------
    dict
        dict ``metric -> (K, N)`` float64, plus ``"n_overlap"`` counts.
    """
    sig = np.asarray(significant, dtype=bool)
    z = _standardize(stat)
    index = np.searchsorted(ids, labels)
    valid = (index < len(ids)) & (ids[np.minimum(index, len(ids) - 1)] == labels)
    onehot = np.zeros((len(labels), len(ids)))
    onehot[np.flatnonzero(valid), index[valid]] = 1.0
    counts = sig.astype(np.float64) @ onehot
    out = _scores(counts, sig.sum(axis=1).astype(float), onehot.sum(axis=0), z @ onehot, len(labels))
    out["n_overlap"] = counts.astype(np.int64)
    return out


def match_networks(significant: np.ndarray, stat: np.ndarray, atlas: NetworkAtlas, metric: str = "dice",
                   n_permutations: int = 1000, alpha: float = 0.05, seed: int = 0, model: str = "",
                   progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Overlap of each pattern's map with each network, and the assigned network with a permutation null.

    Parameters
    ----------
    significant : np.ndarray
        ``(K, n_voxels)`` bool, significant voxels of each map.
    stat : np.ndarray
        ``(K, n_voxels)`` statistic maps (``|t|`` for two-sided, ``t`` for one-sided tests).
    atlas : NetworkAtlas
        the network labels of the same voxels.
    metric : str
        ``"dice"``, ``"jaccard"`` or ``"correlation"`` — used for the assignment.
    n_permutations : int
        label shuffles for the null (0: no p-values).
    alpha : float
        FDR level across patterns for calling an assignment.
    seed : int
        permutation seed.

    Returns
    -------
    tuple[pd.DataFrame, pd.DataFrame]
        ``overlaps``: one row per (pattern, network) with ``model, pattern, network_id, network, dice,
        jaccard, correlation, n_overlap, n_map, n_network, p_value`` (uncorrected, per pair); and
        ``assignments``: one row per pattern with ``model, pattern, network_id, network`` (best
        network), ``score`` (its ``metric``), ``n_map``, ``p_value`` (max-over-networks null),
        ``q_value`` (BH across patterns), ``assigned`` (bool) and ``assigned_network`` (name or ``None``).
    """
    if metric not in METRICS:
        raise BrainlikeError(f"metric must be one of {METRICS}, not {metric!r}")
    sig = np.asarray(significant, dtype=bool)
    stat = np.asarray(stat, dtype=np.float64)
    if sig.shape != stat.shape or sig.shape[1] != len(atlas.labels):
        raise BrainlikeError(f"maps {sig.shape} / {stat.shape} do not match the atlas ({len(atlas.labels)} voxels)")
    ids = atlas.ids
    obs = overlap_scores(sig, stat, atlas.labels, ids)
    k, n = obs["dice"].shape
    n_map = sig.sum(axis=1)
    n_net = np.array([(atlas.labels == i).sum() for i in ids])
    score = obs[metric]
    best = score.argmax(axis=1)
    best_score = score[np.arange(k), best]
    ge_pair = np.zeros((k, n))
    ge_max = np.zeros(k)
    if n_permutations > 0:
        rng = np.random.default_rng(seed)
        z = _standardize(stat)
        index = np.searchsorted(ids, atlas.labels)
        index = np.where((index < n) & (ids[np.minimum(index, n - 1)] == atlas.labels), index, n)  # n = none
        sig_idx = [np.flatnonzero(row) for row in sig]
        n_vox = len(atlas.labels)
        for _ in tqdm(range(n_permutations), desc="network null", disable=not progress, leave=False):
            perm = index[rng.permutation(n_vox)]
            counts = np.stack([np.bincount(perm[s], minlength=n + 1)[:n] for s in sig_idx]).astype(float)
            sums = np.stack([np.bincount(perm, weights=zi, minlength=n + 1)[:n] for zi in z]) \
                if metric == "correlation" else np.zeros((k, n))
            null = _scores(counts, n_map.astype(float), n_net.astype(float), sums, n_vox)[metric]
            ge_pair += null >= score - 1e-12
            ge_max += null.max(axis=1) >= best_score - 1e-12
        p_pair = (1 + ge_pair) / (1 + n_permutations)
        p_best = (1 + ge_max) / (1 + n_permutations)
    else:
        p_pair = np.full((k, n), np.nan)
        p_best = np.full(k, np.nan)
    if 0 < n_permutations and k / (n_permutations + 1) > alpha:
        warnings.warn(f"{n_permutations} permutations cannot reach q < {alpha} for {k} patterns (the smallest "
                      f"p-value is 1/{n_permutations + 1}); use at least {int(np.ceil(k / alpha))} permutations",
                      stacklevel=2)
    q_best = stats.false_discovery_control(p_best, method="bh") if n_permutations > 0 else p_best
    names = [atlas.names[i] for i in ids]
    overlaps = pd.DataFrame({
        "model": model, "pattern": np.repeat(np.arange(k), n), "network_id": np.tile(ids, k),
        "network": np.tile(names, k), "dice": obs["dice"].reshape(-1), "jaccard": obs["jaccard"].reshape(-1),
        "correlation": obs["correlation"].reshape(-1), "n_overlap": obs["n_overlap"].reshape(-1),
        "n_map": np.repeat(n_map, n), "n_network": np.tile(n_net, k), "p_value": p_pair.reshape(-1)})
    assigned = (q_best < alpha) & (best_score > 0)
    assignments = pd.DataFrame({
        "model": model, "pattern": np.arange(k), "network_id": ids[best], "network": [names[j] for j in best],
        "metric": metric, "score": best_score, "n_map": n_map, "p_value": p_best, "q_value": q_best,
        "assigned": assigned,
        "assigned_network": [names[j] if a else None for j, a in zip(best, assigned)]})
    return overlaps, assignments

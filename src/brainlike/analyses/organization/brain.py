"""Brain recordings for the organization analysis: a ``(n_trs, n_voxels)`` matrix plus its geometry.

Two kinds of data:

* **Volume** (NIfTI): a 4-D BOLD image; voxels inside a mask (given, or every voxel whose time course
  is not constant) become the columns, in C order of ``np.nonzero(mask)``. Maps go back to 3-D images
  with :meth:`BrainData.to_image`.
* **Surface / parcels**: any ``(n_trs, n_voxels)`` array (vertices, parcels, ROIs) with no geometry;
  network labels then come as one label per column.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainlike.errors import NeuralDataError

__all__ = ["BrainData"]


@dataclass
class BrainData:
    """BOLD time series of one subject (one run or concatenated runs of the same story).

    Attributes
    ----------
    bold : np.ndarray
        ``(n_trs, n_voxels)`` float32, any units (each voxel is modelled separately).
    tr : float
        repetition time, seconds; volume ``i`` is at ``(i + tr_offset) · tr`` seconds on the
        stimulus clock.
    mask : np.ndarray | None
        volume data: ``(x, y, z)`` bool, the voxels that are columns of ``bold``; ``None`` otherwise.
    affine : np.ndarray | None
        volume data: ``(4, 4)`` voxel-to-world matrix.
    name : str
        label for tables.
    tr_offset : float
        see ``tr``.
    """

    bold: np.ndarray
    tr: float
    mask: np.ndarray | None = None
    affine: np.ndarray | None = None
    name: str = "subject"
    tr_offset: float = 0.0
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bold = np.asarray(self.bold, dtype=np.float32)
        if self.bold.ndim != 2:
            raise NeuralDataError(f"BOLD data must be (n_trs, n_voxels), got shape {self.bold.shape}")
        if not self.tr > 0:
            raise NeuralDataError(f"tr must be positive, got {self.tr}")
        if not np.isfinite(self.bold).all():
            raise NeuralDataError("the BOLD data contain NaN or infinite values")
        if self.mask is not None:
            self.mask = np.asarray(self.mask, dtype=bool)
            if int(self.mask.sum()) != self.bold.shape[1]:
                raise NeuralDataError(f"mask has {int(self.mask.sum())} voxels but the data "
                                      f"{self.bold.shape[1]} columns")
            self.affine = np.eye(4) if self.affine is None else np.asarray(self.affine, dtype=np.float64)

    @property
    def n_trs(self) -> int:
        """The number of TRs (volumes)."""
        return int(self.bold.shape[0])

    @property
    def n_voxels(self) -> int:
        """The number of voxels (or vertices / ROIs)."""
        return int(self.bold.shape[1])

    @property
    def is_volume(self) -> bool:
        """Whether the data are a volume (voxels with grid coordinates)."""
        return self.mask is not None

    def coords(self) -> np.ndarray | None:
        """``(n_voxels, 3)`` int64 grid indices of the columns (volume data), else ``None``."""
        return None if self.mask is None else np.argwhere(self.mask).astype(np.int64)

    def to_image(self, values: np.ndarray):
        """A 3-D ``nibabel.Nifti1Image`` with ``values`` ``(n_voxels,)`` at the mask voxels (0 elsewhere)."""
        import nibabel as nib

        if self.mask is None:
            raise NeuralDataError("this data set has no volume geometry (array / surface data)")
        vol = np.zeros(self.mask.shape, dtype=np.float32)
        vol[self.mask] = np.asarray(values, dtype=np.float32)
        return nib.Nifti1Image(vol, self.affine)

    def reference_image(self):
        """A 3-D image on the data grid (the mask), for resampling atlases."""
        import nibabel as nib

        return nib.Nifti1Image(self.mask.astype(np.int16), self.affine)

    @classmethod
    def from_array(cls, bold: np.ndarray, tr: float, name: str = "subject", tr_offset: float = 0.0) -> BrainData:
        """Surface/parcel data: ``bold`` is ``(n_trs, n_columns)`` (or a ``.npy`` path)."""
        if isinstance(bold, (str, Path)):
            path = Path(bold)
            if not path.exists():
                raise NeuralDataError(f"BOLD array file not found: {path}")
            bold = np.load(path, allow_pickle=False)
        return cls(np.asarray(bold), tr, name=name, tr_offset=tr_offset)

    @classmethod
    def from_nifti(cls, bold, mask=None, tr: float | None = None, name: str | None = None,
                   tr_offset: float = 0.0) -> BrainData:
        """Volume data from a 4-D NIfTI (path or image).

        Parameters
        ----------
        bold : str, Path or nibabel image
            4-D image ``(x, y, z, n_trs)``.
        mask : str, Path, nibabel image or ndarray of bool, optional
            a 3-D image/path/bool array; default: the voxels whose time course is not constant.
        tr : float | None
            seconds (default: the header's 4th zoom).
        """
        import nibabel as nib

        img = _load_img(bold, "BOLD")
        data = np.asanyarray(img.dataobj)
        if data.ndim != 4:
            raise NeuralDataError(f"the BOLD image must be 4-D, got shape {data.shape}")
        if tr is None:
            zooms = img.header.get_zooms()
            tr = float(zooms[3]) if len(zooms) > 3 else 0.0
            if not tr > 0:
                raise NeuralDataError("the BOLD header has no TR (4th zoom); give tr explicitly")
        if mask is None:
            m = data.std(axis=3) > 0
        elif isinstance(mask, np.ndarray):
            m = mask.astype(bool)
        else:
            mimg = _load_img(mask, "mask")
            if mimg.shape[:3] != data.shape[:3]:
                from nilearn.image import resample_to_img

                mimg = resample_to_img(mimg, nib.Nifti1Image(data[..., 0], img.affine), interpolation="nearest",
                                       force_resample=True, copy_header=True)
            m = np.asanyarray(mimg.dataobj) > 0
        if m.shape != data.shape[:3]:
            raise NeuralDataError(f"mask shape {m.shape} does not match the BOLD grid {data.shape[:3]}")
        if not m.any():
            raise NeuralDataError("the mask selects no voxel")
        label = name or (Path(bold).name.split(".")[0] if isinstance(bold, (str, Path)) else "subject")
        return cls(data[m].T.astype(np.float32), tr, m, img.affine, label, tr_offset)


def _load_img(obj, what: str):
    import nibabel as nib

    if isinstance(obj, (str, Path)):
        path = Path(obj)
        if not path.exists():
            raise NeuralDataError(f"{what} image not found: {path}")
        return nib.load(str(path))
    if hasattr(obj, "dataobj") and hasattr(obj, "affine"):
        return obj
    raise NeuralDataError(f"{what} must be a NIfTI path or a nibabel image, got {type(obj).__name__}")

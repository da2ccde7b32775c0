"""Bad neural data given to NeuralDataset: one clear NeuralDataError naming the field, never a raw traceback."""
from __future__ import annotations

import numpy as np
import pytest

from brainlike.errors import BrainlikeError, NeuralDataError
from brainlike.neural import NeuralDataset


def _ok(**kw):
    base = dict(data=np.zeros((4, 2)), times=np.arange(4) * 0.1, channels=["a", "b"])
    base.update(kw)
    return NeuralDataset(**base)


@pytest.mark.parametrize("times, fragment", [
    ([0.0, np.nan, 0.2, 0.3], "times: sample 1 is nan (1 of 4 sample times are NaN or infinite)"),
    ([0.0, 0.1, 0.2, np.inf], "times: sample 3 is inf"),
    ([np.nan] * 4, "4 of 4 sample times"),
])
def test_nan_times_are_named(times, fragment):
    with pytest.raises(NeuralDataError) as err:
        _ok(times=times)
    assert fragment in str(err.value)


@pytest.mark.parametrize("data, fragment", [
    (np.array([["1.0", "2.0"]] * 4), "element (0, 0) is '1.0' (str_); convert"),
    ([[0.0, 1.0], [2.0, "n/a"], [0.0, 0.0], [1.0, 1.0]], "element (1, 1) is 'n/a'"),
    (np.array([[0.0, 1.0], [2.0, None], [0.0, 0.0], [1.0, 1.0]], dtype=object), "element (1, 1) is None"),
    (np.ones((4, 2), dtype=complex), "data is complex"),
    ([[0.0, 1.0], [2.0]], "data must be a rectangular array of numbers"),
])
def test_non_numeric_data_is_named(data, fragment):
    with pytest.raises(NeuralDataError) as err:
        _ok(data=data)
    assert fragment in str(err.value) and "data" in str(err.value)


def test_string_times_coords_and_hierarchy():
    with pytest.raises(NeuralDataError, match=r"times must be numbers, but element \(2,\) is 'x'"):
        _ok(times=[0.0, 0.1, "x", 0.3])
    with pytest.raises(NeuralDataError, match="coords must be numbers"):
        _ok(coords=[["1", "2", "3"], ["4", "5", "6"]])
    with pytest.raises(NeuralDataError, match="hierarchy must be numbers"):
        _ok(hierarchy=["early", "late"])


def test_numbers_of_any_real_dtype_are_accepted():
    ds = _ok(data=np.arange(8, dtype=np.int16).reshape(4, 2), times=np.arange(4, dtype=np.int64))
    assert ds.data.dtype == np.float32 and ds.times.dtype == np.float64
    np.testing.assert_array_equal(ds.data[:, 1], [1, 3, 5, 7])
    obj = _ok(data=np.array([[1, 2.5]] * 4, dtype=object))   # object arrays of numbers convert
    assert obj.data[0, 1] == pytest.approx(2.5)
    assert issubclass(NeuralDataError, BrainlikeError)

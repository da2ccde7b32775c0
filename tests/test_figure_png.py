"""Each report figure is drawn once: the PNG file and the HTML report embed the same bytes."""
from __future__ import annotations


def test_a_figure_is_rendered_once_for_its_file_and_the_report(tmp_path, monkeypatch):
    import base64

    from brainlike.pipelines import AnalysisOutput
    from brainlike.plotting import fig_ax
    from brainlike.report.html import Section, figure_to_data_uri
    from brainlike.runner import _write_figures

    fig, ax = fig_ax()
    ax.plot([0, 1], [1, 0])
    calls = []
    real = type(fig).savefig
    monkeypatch.setattr(type(fig), "savefig", lambda self, *a, **k: (calls.append(1), real(self, *a, **k))[1])
    out = AnalysisOutput(tables={}, sections=[Section("s", "", [("a figure", fig)], [])])
    (path,) = _write_figures(out, tmp_path)
    uri = figure_to_data_uri(fig)
    assert len(calls) == 1
    assert base64.b64decode(uri.split(",", 1)[1]) == path.read_bytes() and path.read_bytes()[:4] == b"\x89PNG"

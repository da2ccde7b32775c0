"""A self-contained HTML report: inline PNG figures and HTML tables, no network resources."""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from brainlike.fileio import atomic_write_text


@dataclass
class Section:
    """One report section.

    Attributes
    ----------
    title : str
        heading.
    text : str
        a paragraph (plain text; escaped).
    figures : list
        ``(caption, matplotlib Figure)`` pairs.
    tables : list
        ``(caption, DataFrame)`` pairs (rounded to 4 significant digits for display).
    """

    title: str
    text: str = ""
    figures: list = field(default_factory=list)
    tables: list = field(default_factory=list)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #446;padding-bottom:.2em} h2{margin-top:2em;color:#335}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top} figure img{max-width:520px;border:1px solid #ddd}
figcaption{font-size:.85em;color:#555;max-width:520px}
table{border-collapse:collapse;font-size:.82em;margin:.5em 0 1.5em} \
th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#eef} caption{caption-side:top;text-align:left;font-weight:600;padding:.3em 0}
.meta{color:#666;font-size:.85em} nav a{margin-right:1em}
"""

# Runs in the browser: records script errors and checks that every figure decoded and every table has rows.
_SELF_CHECK = """
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push(String(e.message)); });
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.querySelectorAll('figure img'));
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length;
  var tables = document.querySelectorAll('table.data');
  var empty = Array.prototype.slice.call(tables).filter(function (t) { return t.rows.length < 2; }).length;
  document.body.setAttribute('data-check', JSON.stringify({figures: imgs.length, broken: broken,
    tables: tables.length, empty_tables: empty, errors: window.__errors}));
});
"""


def figure_to_data_uri(fig, dpi: int | None = None) -> str:
    """A matplotlib figure as a ``data:image/png;base64`` URI (the bytes of :func:`~brainlike.plotting.figure_png`).

    ``dpi`` defaults to :data:`brainlike.plotting.PNG_DPI`, the resolution of the run's PNG files (same bytes).
    """
    import matplotlib.pyplot as plt

    from brainlike.plotting import PNG_DPI, figure_png

    png = figure_png(fig, dpi or PNG_DPI)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _table_html(caption: str, df: pd.DataFrame, max_rows: int = 200) -> str:
    shown = df.head(max_rows)
    body = shown.to_html(index=False, classes="data", border=0, float_format=lambda v: f"{v:.4g}", na_rep="–")
    body = body.replace('<table border="0" class="dataframe data">', '<table class="data">', 1).replace(
        '<table class="dataframe data">', '<table class="data">', 1)
    more = f"<p class='meta'>showing {max_rows} of {len(df)} rows</p>" if len(df) > max_rows else ""
    return body.replace('<table class="data">',
                        f'<table class="data"><caption>{html.escape(caption)}</caption>', 1) + more


def write_report(sections: list[Section], path: str | Path, title: str = "brainlike report",
                 subtitle: str = "") -> Path:
    """Write one self-contained HTML file (crash-safe, :func:`brainlike.fileio.atomic_write_text`); returns its path."""
    path = Path(path)
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_CSS}</style><script>{_SELF_CHECK}</script></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    from brainlike import __version__

    parts.append(f"<p class='meta'>{html.escape(subtitle)} — brainlike {__version__}, {stamp}</p>")
    parts.append("<nav>" + "".join(f"<a href='#s{i}'>{html.escape(s.title)}</a>" for i, s in enumerate(sections))
                 + "</nav>")
    for i, s in enumerate(sections):
        parts.append(f"<section id='s{i}'><h2>{html.escape(s.title)}</h2>")
        if s.text:
            parts.append(f"<p>{html.escape(s.text)}</p>")
        for caption, fig in s.figures:
            parts.append(f"<figure><img alt='{html.escape(caption)}' src='{figure_to_data_uri(fig)}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        for caption, df in s.tables:
            parts.append(_table_html(caption, df))
        parts.append("</section>")
    parts.append("</body></html>")
    return atomic_write_text(path, "\n".join(parts))


def check_in_browser(path: str | Path, chromium: str | None = None, timeout: float = 60.0) -> dict:
    """Open the report in headless Chromium (no network) and return the page's self-check.

    Returns
    -------
    dict
        dict with ``figures``, ``broken``, ``tables``, ``empty_tables``, ``errors`` (script errors) and
        ``console_errors`` (lines Chromium logged as console errors).
    """
    import json
    import re
    import shutil
    import subprocess
    import tempfile

    exe = chromium or shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        raise FileNotFoundError("Chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
               "--dump-dom", Path(path).resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    m = re.search(r'data-check="([^"]*)"', proc.stdout)
    if not m:
        raise RuntimeError(f"the report's self-check did not run; chromium said: {proc.stderr[-2000:]}")
    check = json.loads(html.unescape(m.group(1)))
    check["console_errors"] = [ln for ln in proc.stderr.splitlines()
                               if "CONSOLE" in ln and ("ERROR" in ln.upper() or "Uncaught" in ln)]
    return check

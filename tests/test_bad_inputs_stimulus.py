"""Bad stimulus files: each gets one clear sentence (or the correct result), the same through every entry point.

The command line is driven through typer's CliRunner (`brainlike extract` reads the stimulus before it loads
any model, so these cases never touch a model).
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from brainlike.errors import NeuralDataError, StimulusError
from brainlike.neural.bids import read_word_timings as bids_read_word_timings
from brainlike.stimulus import Stimulus, read_stimulus, read_word_timings

PHONES_ONLY_TG = '''File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 1.0
tiers? <exists>
size = 1
item []:
    item [1]:
        class = "IntervalTier"
        name = "phones"
        xmin = 0
        xmax = 1.0
        intervals: size = 3
        intervals [1]:
            xmin = 0
            xmax = 0.3
            text = "DH"
        intervals [2]:
            xmin = 0.3
            xmax = 0.6
            text = "AH0"
        intervals [3]:
            xmin = 0.6
            xmax = 1.0
            text = "K"
'''




def _files(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*"))


# --------------------------------------------------------------------------------------------------- encoding
def test_latin1_text_is_a_clear_error_with_the_byte_offset(tmp_path, run_cli):
    txt = tmp_path / "story.txt"
    txt.write_bytes("Once upon a time, a caf\u00e9 opened.\nThe end.".encode("latin-1"))
    before = _files(tmp_path)
    code, out, exc = run_cli("extract", "stories260k", txt, "--out", tmp_path / "f.safetensors")
    assert code == 2 and not isinstance(exc, UnicodeDecodeError)
    assert f"{txt} is not utf-8 text: byte 0xe9 at offset 23 (line 1) is invalid" in out
    assert "iconv -f latin1 -t utf-8" in out and "Traceback" not in out
    assert _files(tmp_path) == before                      # nothing was written
    # the documented way out: an explicit encoding
    stim = read_stimulus(txt, encoding="latin-1")
    assert stim.words[:6] == ("Once", "upon", "a", "time,", "a", "caf\u00e9")


def test_latin1_table_is_the_same_clear_error(tmp_path):
    tsv = tmp_path / "words.tsv"
    tsv.write_bytes("word\tonset\toffset\ncaf\u00e9\t0.0\t0.3\n".encode("latin-1"))
    with pytest.raises(StimulusError, match=r"not utf-8 text: byte 0xe9 at offset 21 \(line 2\)"):
        read_stimulus(tsv)
    assert read_stimulus(tsv, encoding="latin-1").words == ("caf\u00e9",)


def test_utf8_bom_and_unknown_encoding(tmp_path):
    txt = tmp_path / "bom.txt"
    txt.write_bytes("\ufeffHello world".encode("utf-8"))
    assert read_stimulus(txt).words == ("Hello", "world")   # the BOM is not part of the first word
    with pytest.raises(StimulusError, match="unknown text encoding 'klingon'"):
        read_stimulus(txt, encoding="klingon")


# ----------------------------------------------------------------------------------------------- TextGrid tiers
def test_textgrid_with_only_a_phones_tier_is_refused(tmp_path, run_cli):
    tg = tmp_path / "story.TextGrid"
    tg.write_text(PHONES_ONLY_TG)
    with pytest.raises(StimulusError, match=r"no word tier .*tiers found: \['phones'\]"):
        read_stimulus(tg)
    with pytest.raises(StimulusError, match="no word tier"):
        Stimulus.from_textgrid(tg)
    with pytest.raises(NeuralDataError, match="no word tier"):   # the BIDS loaders say the same
        bids_read_word_timings(tg)
    code, out, _ = run_cli("extract", "stories260k", tg, "--out", tmp_path / "f.safetensors")
    assert code == 2 and "no word tier" in out and "['phones']" in out and "tier=" in out
    # naming the tier explicitly is the way to read it anyway
    assert read_stimulus(tg, tier="phones").words == ("DH", "AH0", "K")


def test_textgrid_word_tier_is_chosen_over_phones(tmp_path):
    tg = tmp_path / "two.TextGrid"
    words_tier = PHONES_ONLY_TG.replace('size = 1\n', 'size = 2\n').replace('"phones"', '"phones"') + '''    item [2]:
        class = "IntervalTier"
        name = "Speaker 1 - words"
        xmin = 0
        xmax = 1.0
        intervals: size = 2
        intervals [1]:
            xmin = 0
            xmax = 0.6
            text = "the"
        intervals [2]:
            xmin = 0.6
            xmax = 1.0
            text = "cat"
'''
    tg.write_text(words_tier)
    stim = read_stimulus(tg)
    assert stim.words == ("the", "cat") and np.allclose(stim.onsets, [0.0, 0.6])


# ------------------------------------------------------------------------------------------- the one reader
def _podcast_csv(path):
    pd.DataFrame({"word": ["Act", "one,", "monkey", "lost", "", "end"],
                  "start": [3.71, 3.99, 4.651, np.nan, 6.0, 6.5],
                  "end": [3.79, 4.19, 4.931, np.nan, 6.2, 6.9]}).to_csv(path, index=False)
    return path


def test_extract_reads_the_csv_forms_the_bids_loader_reads(tmp_path):
    podcast = _podcast_csv(tmp_path / "podcast_transcript.csv")
    gentle = tmp_path / "align.csv"
    gentle.write_text("I,i,0.5,0.7\nbegan,began,0.8,1.2\nthe,the,,\nstory,story,1.5,1.9\n")
    for path, words in ((podcast, ("Act", "one,", "monkey", "end")), (gentle, ("I", "began", "story"))):
        with pytest.warns(UserWarning, match="no timing"):
            a = read_stimulus(path)                         # what `brainlike extract` and specs use
        with pytest.warns(UserWarning, match="no timing"):
            b = bids_read_word_timings(path)                # what the BIDS loaders use
        assert a.words == b.words == words
        np.testing.assert_array_equal(a.onsets, b.onsets)
        np.testing.assert_array_equal(a.offsets, b.offsets)


def test_gentle_json_through_extract_path(tmp_path):
    gj = tmp_path / "align.json"
    gj.write_text(json.dumps({"words": [{"word": "Hi", "case": "success", "start": 0.1, "end": 0.4},
                                        {"word": "you", "case": "success", "start": 0.5, "end": 0.8}]}))
    assert read_stimulus(gj).words == ("Hi", "you")
    gj.write_text(json.dumps({"words": [{"word": "Hi", "case": "success", "start": "soon", "end": 0.4}]}))
    with pytest.raises(StimulusError, match=r"words\[0\] has a start/end that is not a number"):
        read_stimulus(gj)


def test_small_overlaps_are_clipped_the_same_everywhere(tmp_path):
    tsv = tmp_path / "aligned.tsv"
    tsv.write_text("word\tonset\toffset\nthe\t0.0\t0.32\ncat\t0.30\t0.6\nsat\t0.6\t0.9\n")  # 20 ms overlap
    with pytest.warns(UserWarning, match="1 word offsets overlapped the next word by at most 20 ms"):
        a = read_stimulus(tsv)
    with pytest.warns(UserWarning, match="overlapped"):
        b = bids_read_word_timings(tsv)
    np.testing.assert_allclose(a.offsets, [0.30, 0.6, 0.9])
    np.testing.assert_array_equal(a.offsets, b.offsets)
    with pytest.raises(StimulusError, match="overlapping"):  # the strict constructor of the canonical form
        Stimulus.from_tsv(tsv)


def test_large_overlap_is_an_error_everywhere(tmp_path, run_cli):
    tsv = tmp_path / "bad.tsv"
    tsv.write_text("word\tonset\toffset\nthe\t0.0\t0.2\ncat\t0.1\t0.3\n")  # 100 ms: not aligner jitter
    msg = r"row 2 \(word 'cat'\) starts at 0.1 s, 0.100 s before the previous word ends .*overlapping words"
    with pytest.raises(StimulusError, match=msg):
        read_stimulus(tsv)
    with pytest.raises(NeuralDataError, match=msg):
        bids_read_word_timings(tsv)
    code, out, _ = run_cli("extract", "stories260k", tsv, "--out", tmp_path / "f.safetensors")
    assert code == 2 and "row 2 (word 'cat')" in out and "overlapping words" in out
    with pytest.warns(UserWarning, match="clipped"):
        assert read_word_timings(tsv, max_overlap=0.2).offsets[0] == pytest.approx(0.1)


@pytest.mark.parametrize("body, fragment", [
    ("word\tonset\toffset\na\t1.0\t1.2\nb\t0.5\t0.7\n", "row 2 (word 'b') starts at 0.5 s, before the previous"),
    ("word\tonset\toffset\na\t0.0\t0.2\nb\t0.5\t0.4\n", "row 2 (word 'b') ends (0.4 s) before it starts"),
    ("word\tonset\toffset\na\t0.0\t0.2\nb\tsoon\t0.4\n", "row 2: 'onset' is 'soon', not a number of seconds"),
    ("word\tstart\tstop\na\t0.0\t0.2\n", "needs an offset/end or a duration column"),
    ("token\tbegin\nx\t0\n", "no header with onset/start columns"),
])
def test_bad_timing_names_the_row(tmp_path, body, fragment):
    p = tmp_path / "w.tsv"
    p.write_text(body)
    with pytest.raises(StimulusError) as err:
        read_stimulus(p)
    assert fragment in str(err.value) and str(p) in str(err.value)


def test_unknown_format_and_missing_file(tmp_path, run_cli):
    wav = tmp_path / "story.wav"
    wav.write_bytes(b"RIFF")
    with pytest.raises(StimulusError, match="unknown word-timing format"):
        read_stimulus(wav)
    code, out, _ = run_cli("extract", "stories260k", tmp_path / "nope.txt", "--out", tmp_path / "f.safetensors")
    assert code == 2 and f"text file not found: {tmp_path / 'nope.txt'}" in out


def test_an_entry_with_several_words_is_joined_and_reported(tmp_path):
    tsv = tmp_path / "w.tsv"
    tsv.write_text("word\tonset\toffset\nNew York\t0.0\t0.5\ncity\t0.6\t0.9\n")
    with pytest.warns(UserWarning, match=r"1 entries hold several words \(first: row 1 \(word 'New York'\)\)"):
        assert read_stimulus(tsv).words == ("New_York", "city")
    with pytest.raises(StimulusError, match="whitespace"):
        Stimulus.from_tsv(tsv)

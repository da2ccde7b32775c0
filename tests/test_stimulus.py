import numpy as np
import pytest

from brainlike import Stimulus, StimulusError


def _write(tmp_path, text, name="words.tsv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_tsv_roundtrip(tmp_path):
    stim = Stimulus.from_text("the cat sat on the mat", words_per_second=2.0)
    back = Stimulus.from_tsv(stim.to_tsv(tmp_path / "s.tsv"))
    assert back.words == stim.words
    np.testing.assert_allclose(back.onsets, stim.onsets)
    np.testing.assert_allclose(back.offsets, stim.offsets)
    assert back.hash() == stim.hash()


def test_bids_events_with_duration(tmp_path):
    p = _write(tmp_path, "onset\tduration\ttrial_type\n0.5\t0.2\thello\n0.8\t0.3\tworld\n")
    stim = Stimulus.from_tsv(p)
    assert stim.words == ("hello", "world")
    np.testing.assert_allclose(stim.offsets, [0.7, 1.1])


@pytest.mark.parametrize("body, fragment", [
    ("word\tonset\toffset\na\t0.0\t0.2\nb\t0.1\t0.3\n", "overlapping"),
    ("word\tonset\toffset\na\t1.0\t1.2\nb\t0.5\t0.7\n", "not monotonic"),
    ("word\tonset\toffset\na\t0.0\t0.2\n\t0.3\t0.4\n", "row 2"),
    ("word\tonset\toffset\na\t0.0\t0.2\nb\tn/a\t0.4\n", "row 2 (word 'b')"),
    ("word\tonset\toffset\na\t0.0\t0.2\nb\t0.5\t0.4\n", "ends"),
    ("word\tstart\toffset\na\t0.0\t0.2\n", "no 'onset' column"),
])
def test_bad_tsv_names_the_row(tmp_path, body, fragment):
    with pytest.raises(StimulusError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        Stimulus.from_tsv(_write(tmp_path, body))


def test_empty_word_error_names_row(tmp_path):
    p = _write(tmp_path, "word\tonset\toffset\na\t0.0\t0.2\nb\t0.3\t0.4\n \t0.5\t0.6\n")
    with pytest.raises(StimulusError, match="row 3"):
        Stimulus.from_tsv(p)


LONG_TG = '''File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 2.0
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "IntervalTier"
        name = "phones"
        xmin = 0
        xmax = 2.0
        intervals: size = 1
        intervals [1]:
            xmin = 0
            xmax = 2.0
            text = "x"
    item [2]:
        class = "IntervalTier"
        name = "words"
        xmin = 0
        xmax = 2.0
        intervals: size = 4
        intervals [1]:
            xmin = 0
            xmax = 0.4
            text = ""
        intervals [2]:
            xmin = 0.4
            xmax = 0.9
            text = "Once"
        intervals [3]:
            xmin = 0.9
            xmax = 1.3
            text = "sp"
        intervals [4]:
            xmin = 1.3
            xmax = 2.0
            text = "upon"
'''

SHORT_TG = '''File type = "ooTextFile"
Object class = "TextGrid"

0
2.0
<exists>
1
"IntervalTier"
"word"
0
2.0
3
0
0.5
"say ""hi"""
0.5
1.0
""
1.0
2.0
"12"
'''


def test_textgrid_long_format(tmp_path):
    stim = Stimulus.from_textgrid(_write(tmp_path, LONG_TG, "a.TextGrid"))
    assert stim.words == ("Once", "upon")
    np.testing.assert_allclose(stim.onsets, [0.4, 1.3])
    np.testing.assert_allclose(stim.offsets, [0.9, 2.0])


def test_textgrid_short_format_and_tier_choice(tmp_path):
    p = _write(tmp_path, SHORT_TG, "b.TextGrid")
    with pytest.raises(StimulusError, match="whitespace"):  # 'say "hi"' is two words in one interval
        Stimulus.from_textgrid(p)
    with pytest.raises(StimulusError, match="no tier named"):
        Stimulus.from_textgrid(p, tier="phones")


def test_from_text_timing():
    stim = Stimulus.from_text("a b c d", words_per_second=4.0, start=1.0)
    np.testing.assert_allclose(stim.onsets, [1.0, 1.25, 1.5, 1.75])
    assert np.all(stim.offsets <= np.append(stim.onsets[1:], np.inf))
    with pytest.raises(StimulusError):
        Stimulus.from_text("   ")

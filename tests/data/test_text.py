"""The one text normaliser (qlife.data.text): NFKC, casefold, whitespace and punctuation spacing; the dedup key."""

from qlife.data.text import dedup_key, normalize_text
from qlife.methods.semdedup import exact_duplicate_of


def test_nfkc_folds_compatibility_forms_to_their_ascii_twins():
    assert normalize_text("ﬁne\u00a0day") == "fine day"  # ligature, no-break space
    assert normalize_text("ＡＢＣ１２３") == normalize_text("abc123")  # full-width letters and digits
    assert normalize_text("x\u3000y") == "x y"  # ideographic space


def test_whitespace_runs_collapse_and_strip():
    assert normalize_text("  a \t\n b   c \r\n") == "a b c"
    assert normalize_text("a b") != normalize_text("ab")  # collapsed, not removed


def test_case_and_punctuation_spacing_fold():
    assert normalize_text("  Hello ,  WORLD!\n\tIt’s  ok . ") == normalize_text("hello, world! it’s ok.")
    assert normalize_text("Straße") == normalize_text("STRASSE")  # casefold, not lower


def test_dedup_key_equal_for_texts_differing_only_by_normalisation():
    a, b = "The ﬁnal score , 3-1 .", "the  FINAL\u00a0score, ３-１."
    assert dedup_key(a) == dedup_key(b)
    assert dedup_key(a) != dedup_key("the final score, 3-2.")
    assert exact_duplicate_of([a, "other", b]).tolist() == [-1, -1, 0]

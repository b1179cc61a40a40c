"""The one text normaliser: when two texts count as the same document.

`normalize_text(text)`: Unicode NFKC (full-width forms, ligatures and no-break spaces become their plain
twins), casefold, whitespace runs collapsed to one space and stripped, spacing around punctuation dropped.
Every user is a dedup key, which is why casing and punctuation spacing are folded too: curate's exact hash
(`dedup_key`), the MinHash peer's shingles, and the generator, which keeps distinct documents distinct and near
copies from being exact copies under this same rule. `dedup_key(text)`: sha1 hex of the normalised text.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_WS = re.compile(r"\s+")
_PUNCT = re.compile(r"\s*([^\w\s])\s*")


def normalize_text(text: str) -> str:
    """NFKC, casefold, collapse whitespace, drop spacing around punctuation."""
    text = _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
    return _PUNCT.sub(r"\1", text)


def dedup_key(text: str) -> str:
    """Exact-dedup key: sha1 hex of `normalize_text(text)`."""
    return hashlib.sha1(normalize_text(text).encode("utf-8")).hexdigest()

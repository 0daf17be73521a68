"""The built-in token inventory: every token genoforge adds to a DNA tokenizer.

This module is the single source of these strings. The target grammar
(``genoforge.genes.target``), the tokenizer API and ``genoforge tokens init`` all read them from
here; it sits in the domain layer because the target text is written in these words, and the
domain layer imports no stage. Order is part of the contract: ``tokens init`` writes them in this order, and ``tokens append``
/ ``model init`` add them in this order, so ids are deterministic.

Token classes (see docs/target-format.md for how the target grammar uses them):

- ``<bos>`` ``<eos>``: start and end of a target sequence.
- Line types: ``transcript``, ``exon``, ``cds`` (the lower-case SO spelling used in target lines).
- Biotypes of transcripts, feature types of stand-alone features, and the other SO/biotype words
  users may want in a vocabulary (both casings of RNA types, as annotation files spell them both).
- ``[ATT]`` ``[HIT]``: input-side separators (``[HIT]`` precedes intron hints).
- Strand ``+`` ``-`` and ``.`` (no strand / complete, see PARTIAL_MARKS).
- Field separator TAB, line end NEWLINE, coordinate separator ``:`` (a coordinate is written
  ``hi : lo`` with hi, lo in 0..999, value = hi*1000 + lo; the separator keeps the text form
  invertible, since "110" could be 1|10 or 11|0).
- Integers ``0``..``999``.
- Partial marks ``<`` ``>`` ``<>`` (transcript cut at the window's left, right or both edges).
- N-run tokens ``N``..``NNNNNN`` (runs of unknown bases on the input side).
- Hint types ``intron_hc`` ``intron_lc``.
"""

from __future__ import annotations

BOS = "<bos>"
EOS = "<eos>"
ATT = "[ATT]"
HIT = "[HIT]"
TAB = "\t"
NEWLINE = "\n"
DOT = "."
COORD_SEP = ":"
PLUS = "+"
MINUS = "-"
STRANDS = (PLUS, MINUS)

LINE_TRANSCRIPT = "transcript"
LINE_EXON = "exon"
LINE_CDS = "cds"

# Transcript biotypes the target grammar writes. Keys are canonical (as written in targets).
PROTEIN_CODING = "protein_coding"
PSEUDOGENE = "pseudogene"
TRANSPOSABLE_ELEMENT = "transposable_element"
RNA_TYPES = (
    "ncRNA",
    "tRNA",
    "rRNA",
    "tmRNA",
    "sRNA",
    "misc_RNA",
    "antisense_RNA",
    "RNase_P_RNA",
    "SRP_RNA",
    "snoRNA",
    "snRNA",
)
TRANSCRIPT_BIOTYPES = (PROTEIN_CODING, PSEUDOGENE, TRANSPOSABLE_ELEMENT, "lncRNA", *RNA_TYPES)

# Stand-alone (non-transcript) feature types the target grammar writes.
ORIGIN_OF_REPLICATION = "origin_of_replication"
MOBILE_GENETIC_ELEMENT = "mobile_genetic_element"
FEATURE_TYPES = (ORIGIN_OF_REPLICATION, MOBILE_GENETIC_ELEMENT)

# Other SO types and biotypes in their lower-case spelling, for users' vocabularies and hints.
LOWER_SO_TYPES = (
    "gene",
    "mrna",
    "five_prime_utr",
    "three_prime_utr",
    "lncrna",
    "intron",
)

PARTIAL_NONE = DOT
PARTIAL_LEFT = "<"
PARTIAL_RIGHT = ">"
PARTIAL_BOTH = "<>"
PARTIAL_MARKS = (PARTIAL_NONE, PARTIAL_LEFT, PARTIAL_RIGHT, PARTIAL_BOTH)

MAX_NUMBER = 999  # numbers are base-1000 digits: "0".."999"
NUMBERS = tuple(str(i) for i in range(MAX_NUMBER + 1))
MAX_N_RUN = 6
N_RUNS = tuple("N" * k for k in range(1, MAX_N_RUN + 1))
HINT_TYPES = ("intron_hc", "intron_lc")


def _dedupe(tokens: list[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    out = []
    for token in tokens:
        if token not in seen:
            seen.add(token)
            out.append(token)
    return tuple(out)


def builtin_tokens() -> tuple[str, ...]:
    """The complete inventory in its canonical order (deterministic, no duplicates)."""
    words: list[str] = [BOS, EOS]
    words += [LINE_TRANSCRIPT, LINE_EXON, LINE_CDS]
    words += list(TRANSCRIPT_BIOTYPES)
    words += list(FEATURE_TYPES)
    words += [t.lower() for t in RNA_TYPES]  # both casings, as annotation files spell both
    words += list(LOWER_SO_TYPES)
    words += [ATT, HIT]
    words += [PLUS, MINUS, DOT]
    words += [TAB, NEWLINE, COORD_SEP]
    words += [PARTIAL_LEFT, PARTIAL_RIGHT, PARTIAL_BOTH]
    words += list(NUMBERS)
    words += list(N_RUNS)
    words += list(HINT_TYPES)
    return _dedupe(words)


# Escapes for the one-token-per-line file format: whitespace tokens cannot be written raw.
_ESCAPES = {TAB: "[\\t]", NEWLINE: "[\\n]"}
_UNESCAPES = {v: k for k, v in _ESCAPES.items()}


def escape_token(token: str) -> str:
    """How a token is written in a tokens file (TAB as ``[\\t]``, NEWLINE as ``[\\n]``)."""
    return _ESCAPES.get(token, token)


def unescape_token(line: str) -> str:
    """Inverse of :func:`escape_token` for one line of a tokens file."""
    return _UNESCAPES.get(line, line)

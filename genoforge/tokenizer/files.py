"""The tokenizer's files: ``tokenizer.json`` (parsing, identity, added-token entries), the
``transformers`` companion files (``tokenizer_config.json``, ``special_tokens_map.json``), the
special tokens they name, and the bundled DNABERT-2 file.

:class:`genoforge.tokenizer.core.GenoTokenizer` reads and writes through these;
``genoforge.tokenizer.edit`` (``genoforge tokens append``) edits the same files.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genoforge.errors import TokenizerError
from genoforge.genes import inventory
from genoforge.io import atomic_write

if TYPE_CHECKING:
    from tokenizers import Tokenizer

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"

# DNABERT-2's special tokens (SPEC.md d.2), at ids 0-4 in its file and in ours.
UNK = "[UNK]"
CLS = "[CLS]"
SEP = "[SEP]"
PAD = "[PAD]"
MASK = "[MASK]"
DNABERT2_SPECIALS = (UNK, CLS, SEP, PAD, MASK)

# transformers' names for the special tokens, in the order its config files list them.
SPECIAL_TOKEN_ROLES = {
    "bos_token": inventory.BOS,
    "eos_token": inventory.EOS,
    "unk_token": UNK,
    "sep_token": SEP,
    "pad_token": PAD,
    "cls_token": CLS,
    "mask_token": MASK,
}

# Added tokens flagged ``special`` (dropped by ``skip_special_tokens`` decoding): DNABERT-2's
# five, the sequence delimiters and the input-side separators. Target words are not special.
SPECIAL_ADDED_TOKENS = frozenset({*DNABERT2_SPECIALS, inventory.BOS, inventory.EOS, inventory.ATT, inventory.HIT})

# A decoder that concatenates tokens as they are (tokenizers >= 0.13).
JOINING_DECODER = {"type": "Fuse"}
# Probe for "does this decoder join without spaces": tokens of every kind we emit.
_DECODER_PROBE = ("A", "CGT", "<bos>", "\t", "12", ":", "\n", "NN")


def dnabert2_tokenizer_path() -> Path:
    """The bundled DNABERT-2 ``tokenizer.json`` (zhihan1996/DNABERT-2-117M at d064dec, Apache-2.0).

    It is the offline fallback when the Hugging Face hub cannot be reached; see
    ``genoforge/data/dnabert2/PROVENANCE.md``.
    """
    path = Path(str(resources.files("genoforge.data").joinpath("dnabert2", TOKENIZER_FILE)))
    if not path.is_file():
        raise TokenizerError(
            "the bundled DNABERT-2 tokenizer is missing from the installed package; reinstall genoforge",
            path,
        )
    return path


def resolve_tokenizer_file(path: str | Path) -> Path:
    """``path`` itself if it is a file, ``path/tokenizer.json`` if it is a directory.

    Raises:
        TokenizerError: nothing usable at ``path``.
    """
    path = Path(path)
    if path.is_dir():
        candidate = path / TOKENIZER_FILE
        if not candidate.is_file():
            raise TokenizerError(
                f"directory has no {TOKENIZER_FILE}; pass a tokenizer.json or a directory holding one",
                path,
            )
        return candidate
    if not path.is_file():
        raise TokenizerError("tokenizer not found; pass a tokenizer.json or a directory holding one", path)
    return path


def parse_tokenizer_text(text: str, path: str | Path | None = None) -> Tokenizer:
    """Build a ``tokenizers.Tokenizer`` from JSON text, with errors that name the file."""
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_str(text)
    except Exception as exc:  # tokenizers raises a bare Exception for every parse problem
        raise TokenizerError(
            f"not a valid tokenizer.json ({exc}); regenerate it with `genoforge tokens train` "
            "or use a Hugging Face tokenizer.json",
            path,
        ) from exc


def joins_without_spaces(tokenizer: Tokenizer) -> bool:
    """Whether ``tokenizer``'s own decoder concatenates tokens as they are."""
    decoder = tokenizer.decoder
    if decoder is None:
        return False  # tokenizers then joins with single spaces
    try:
        return decoder.decode(list(_DECODER_PROBE)) == "".join(_DECODER_PROBE)
    except Exception:  # a decoder that cannot handle our tokens is just as unusable
        return False


def canonical_content(data: dict[str, Any]) -> dict[str, Any]:
    """The part of a tokenizer.json that decides ids: model type, vocab, merges, added tokens.

    Merges are normalised to pairs (files store ``"A B"`` strings or ``["A", "B"]`` lists).
    """
    model = data.get("model") or {}
    vocab = model.get("vocab") or {}
    merges = []
    for merge in model.get("merges") or []:
        merges.append(merge.split(" ", 1) if isinstance(merge, str) else list(merge))
    added = sorted(
        [int(token["id"]), token["content"], bool(token.get("special", False))]
        for token in data.get("added_tokens") or []
    )
    return {
        "model_type": model.get("type"),
        "vocab": sorted(([token, int(i)] for token, i in vocab.items()), key=lambda pair: pair[1]),
        "merges": merges,
        "added_tokens": added,
    }


def content_hash_of(data: dict[str, Any]) -> str:
    """sha256 (hex) of :func:`canonical_content` serialised as compact, key-sorted JSON."""
    canonical = json.dumps(canonical_content(data), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def added_token_entry(token_id: int, content: str) -> dict[str, Any]:
    """One ``added_tokens`` entry of a tokenizer.json, as genoforge appends them.

    ``normalized`` is false so the token matches raw text; ``special`` per SPECIAL_ADDED_TOKENS.
    """
    return {
        "id": token_id,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": content in SPECIAL_ADDED_TOKENS,
    }


def tokenizer_config(data: dict[str, Any], existing: dict[str, Any] | None = None) -> dict[str, Any]:
    """``tokenizer_config.json`` for a tokenizer.json ``data``, keeping keys of ``existing``.

    Sets the class (PreTrainedTokenizerFast), the special tokens the vocabulary has (an existing
    choice is kept), ``clean_up_tokenization_spaces: false`` (so transformers' decode never
    edits the joined text) and ``added_tokens_decoder`` rebuilt from the file's added tokens.
    """
    config = dict(existing or {})
    config.setdefault("tokenizer_class", "PreTrainedTokenizerFast")
    present = _all_token_strings(data)
    for role, token in SPECIAL_TOKEN_ROLES.items():
        if token in present:
            config.setdefault(role, token)
    config["clean_up_tokenization_spaces"] = False
    config["added_tokens_decoder"] = {
        str(entry["id"]): {
            "content": entry["content"],
            "lstrip": bool(entry.get("lstrip", False)),
            "normalized": bool(entry.get("normalized", False)),
            "rstrip": bool(entry.get("rstrip", False)),
            "single_word": bool(entry.get("single_word", False)),
            "special": bool(entry.get("special", False)),
        }
        for entry in sorted(data.get("added_tokens") or [], key=lambda e: int(e["id"]))
    }
    return config


def special_tokens_map(data: dict[str, Any], existing: dict[str, Any] | None = None) -> dict[str, Any]:
    """``special_tokens_map.json``: the role -> token map for the tokens the vocabulary has."""
    mapping = dict(existing or {})
    present = _all_token_strings(data)
    for role, token in SPECIAL_TOKEN_ROLES.items():
        if token in present:
            mapping.setdefault(role, token)
    return mapping


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Pretty JSON (UTF-8, trailing newline), written atomically."""
    with atomic_write(path) as handle:
        handle.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def _all_token_strings(data: dict[str, Any]) -> set[str]:
    vocab = (data.get("model") or {}).get("vocab") or {}
    return set(vocab) | {entry["content"] for entry in data.get("added_tokens") or []}

"""Editing tokenizer files: append missing tokens, and the one-token-per-line tokens file.

Tokens file format (what ``genoforge tokens init`` writes and ``tokens append`` reads):

- UTF-8 (plain or gzip), one token per line, in the order ids should be given.
- Whitespace tokens are escaped: TAB is written ``[\\t]``, NEWLINE ``[\\n]``
  (``inventory.escape_token``); no other escapes exist.
- Blank lines are ignored. A line with leading or trailing whitespace is an error (a stray space
  would silently become part of the token). LF or CRLF line ends.
- A token listed twice is kept once (first position) and reported as a duplicate.

Appending edits the tokenizer.json as JSON, so everything but ``added_tokens`` (and a decoder
that would join with spaces) stays as it was, then re-reads the result with ``tokenizers`` to
check that every new token got the id it was given before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genoforge.errors import InputError, TokenizerError
from genoforge.genes import inventory
from genoforge.io import atomic_write, open_text
from genoforge.tokenizer.files import (
    JOINING_DECODER,
    SPECIAL_TOKENS_MAP_FILE,
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_FILE,
    added_token_entry,
    joins_without_spaces,
    parse_tokenizer_text,
    resolve_tokenizer_file,
    special_tokens_map,
    tokenizer_config,
    write_json,
)


@dataclass(frozen=True)
class TokensFile:
    """A parsed tokens file: unique tokens in file order, and the repeats that were dropped."""

    tokens: list[str]
    duplicates: list[tuple[str, int]] = field(default_factory=list)  # (token, 1-based line)


@dataclass(frozen=True)
class AppendReport:
    """What :func:`append_tokens` did (or, with ``dry_run``, would do).

    Attributes:
        added: (token, id) of each appended token, in id order.
        already_present: distinct requested tokens that the tokenizer already had.
        decoder_fixed: the decoder was (or would be) replaced by one that joins without spaces.
        source: the tokenizer.json that was read.
        output: the tokenizer.json that was (or would be) written.
        written: every file actually written (empty on a dry run or when nothing changed).
        dry_run: nothing was written.
    """

    added: list[tuple[str, int]]
    already_present: int
    decoder_fixed: bool
    source: Path
    output: Path
    written: list[Path]
    dry_run: bool

    @property
    def changed(self) -> bool:
        return bool(self.added) or self.decoder_fixed


def read_tokens_file(path: str | Path) -> TokensFile:
    """Read a tokens file (format in the module docstring).

    Raises:
        InputError: the file is missing, or a line has leading/trailing whitespace (names the line).
    """
    tokens: list[str] = []
    first_line: dict[str, int] = {}
    duplicates: list[tuple[str, int]] = []
    with open_text(path) as handle:
        for line_no, raw in enumerate(handle, start=1):
            line = raw.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            if line != line.strip():
                raise InputError(
                    f"token {line!r} has leading or trailing whitespace; remove it "
                    "(write TAB as [\\t] and NEWLINE as [\\n])",
                    path,
                    line_no,
                )
            token = inventory.unescape_token(line)
            if token in first_line:
                duplicates.append((token, line_no))
                continue
            first_line[token] = line_no
            tokens.append(token)
    return TokensFile(tokens=tokens, duplicates=duplicates)


def write_tokens_file(path: str | Path, tokens: Iterable[str]) -> int:
    """Write ``tokens`` one per line (escaped), atomically; returns how many were written.

    Raises:
        TokenizerError: a token that the format cannot represent (empty, or whitespace other than
            the TAB and NEWLINE tokens themselves, at either end or inside after escaping).
    """
    lines = []
    for token in tokens:
        line = inventory.escape_token(token)
        if not line or line != line.strip() or "\n" in line or "\r" in line:
            raise TokenizerError(
                f"token {token!r} cannot be written to a tokens file (empty or whitespace at an end)",
                path,
            )
        lines.append(line)
    with atomic_write(path) as handle:
        handle.write("".join(line + "\n" for line in lines))
    return len(lines)


def append_tokens(
    tokenizer_path: str | Path,
    tokens: Sequence[str],
    output: str | Path | None = None,
    dry_run: bool = False,
    create_configs: bool = False,
) -> AppendReport:
    """Append the tokens a tokenizer lacks, with ids after its highest id.

    Tokens already in the model vocabulary or the added tokens are skipped; the rest are
    de-duplicated and appended in the given order. The decoder is set to ``Fuse`` if it would
    not join tokens without spaces. ``tokenizer_config.json`` and ``special_tokens_map.json``
    beside the tokenizer are updated to match (special-token roles, ``added_tokens_decoder``).
    Running it twice adds nothing the second time, and writes nothing.

    Args:
        tokenizer_path: a tokenizer.json, or a directory holding one.
        tokens: the tokens to ensure, raw (not escaped).
        output: where to write instead of in place: a ``.json`` file, or a directory (its
            ``tokenizer.json`` and config files). Written even when nothing changed.
        dry_run: compute the report and write nothing.
        create_configs: also write the two config files when they do not exist yet.

    Raises:
        TokenizerError: the tokenizer is missing or malformed, or a token is empty.
    """
    source = resolve_tokenizer_file(tokenizer_path)
    source_text = source.read_text(encoding="utf-8")
    tokenizer = parse_tokenizer_text(source_text, source)
    try:
        data: dict[str, Any] = json.loads(source_text)
    except json.JSONDecodeError as exc:  # tokenizers parsed it, so this cannot really happen
        raise TokenizerError(f"not JSON ({exc.msg})", source, exc.lineno) from exc

    existing = tokenizer.get_vocab(with_added_tokens=True)
    _check_added_ids(data, existing, source)
    next_id = max(existing.values(), default=-1) + 1
    added: list[tuple[str, int]] = []
    present: set[str] = set()
    queued: set[str] = set()
    for token in tokens:
        if not token:
            raise TokenizerError("cannot append an empty token; remove the blank entry", source)
        if token in existing:
            present.add(token)
        elif token not in queued:
            queued.add(token)
            added.append((token, next_id))
            next_id += 1

    decoder_fixed = not joins_without_spaces(tokenizer)
    if added:
        data["added_tokens"] = list(data.get("added_tokens") or []) + [
            added_token_entry(token_id, token) for token, token_id in added
        ]
    if decoder_fixed:
        data["decoder"] = dict(JOINING_DECODER)

    out_file = _output_file(source, output)
    report_kwargs = dict(
        added=added, already_present=len(present), decoder_fixed=decoder_fixed, source=source, output=out_file
    )
    in_place = out_file.resolve() == source.resolve()
    if dry_run or (in_place and not added and not decoder_fixed and not create_configs):
        return AppendReport(**report_kwargs, written=[], dry_run=dry_run)

    written: list[Path] = []
    if added or decoder_fixed or not in_place:
        text = _check_and_render(data, added, source) if (added or decoder_fixed) else source_text
        with atomic_write(out_file) as handle:
            handle.write(text)
        written.append(out_file)
    written += _write_companions(source.parent, out_file.parent, data, create=create_configs, force=bool(written))
    return AppendReport(**report_kwargs, written=written, dry_run=False)


def ensure_builtin_tokens(tokenizer_dir: str | Path, extra_tokens: Sequence[str] = ()) -> AppendReport:
    """Give the tokenizer in ``tokenizer_dir`` the built-in inventory (+ ``extra_tokens``), in place.

    This is what ``genoforge model init`` calls: afterwards the directory holds tokenizer.json,
    tokenizer_config.json and special_tokens_map.json that ``PreTrainedTokenizerFast`` loads,
    with ``<bos>``/``<eos>`` roles set and a decoder that joins without spaces.
    """
    return append_tokens(
        Path(tokenizer_dir), [*inventory.builtin_tokens(), *extra_tokens], create_configs=True
    )


def _check_added_ids(data: dict[str, Any], loaded: dict[str, int], source: Path) -> None:
    """Refuse files whose declared added-token ids differ from the ids tokenizers gives them.

    tokenizers renumbers added tokens that leave a gap after the model vocabulary, so such a
    file means something else to every loader than what it says; appending would compound that.
    """
    for entry in data.get("added_tokens") or []:
        actual = loaded.get(entry.get("content"))
        if actual is not None and actual != entry.get("id"):
            raise TokenizerError(
                f"added token {entry.get('content')!r} is declared with id {entry.get('id')} but loads "
                f"as id {actual} (ids must continue without gaps); regenerate the tokenizer",
                source,
            )


def _output_file(source: Path, output: str | Path | None) -> Path:
    if output is None:
        return source
    output = Path(output)
    if output.is_dir() or (not output.exists() and output.suffix.lower() != ".json"):
        return output / TOKENIZER_FILE
    return output


def _check_and_render(data: dict[str, Any], added: list[tuple[str, int]], source: Path) -> str:
    """Serialise ``data`` and prove tokenizers reads it back with the intended ids."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    reread = parse_tokenizer_text(text, source)
    for token, token_id in added:
        if reread.token_to_id(token) != token_id:  # a clash we did not foresee: refuse to write
            raise TokenizerError(
                f"appending {token!r} would not get id {token_id} (tokenizers assigned "
                f"{reread.token_to_id(token)}); the file's ids are inconsistent, regenerate it",
                source,
            )
    if not joins_without_spaces(reread):
        raise TokenizerError("could not set a decoder that joins tokens without spaces", source)
    return text


def _write_companions(
    source_dir: Path, out_dir: Path, data: dict[str, Any], create: bool, force: bool
) -> list[Path]:
    """Update (or create) tokenizer_config.json and special_tokens_map.json in ``out_dir``.

    A companion is written when it exists beside the source (it must follow the new ids), or
    when ``create`` is set; it is left untouched when its content would not change.
    """
    written = []
    for name, build in ((TOKENIZER_CONFIG_FILE, tokenizer_config), (SPECIAL_TOKENS_MAP_FILE, special_tokens_map)):
        existing_path = source_dir / name
        existing = _read_json(existing_path) if existing_path.is_file() else None
        if existing is None and not create:
            continue
        target = out_dir / name
        payload = build(data, existing)
        if not force and target.is_file() and _read_json(target) == payload:
            continue
        write_json(target, payload)
        written.append(target)
    return written


def _read_json(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TokenizerError(f"not valid JSON ({exc.msg}); fix or delete it", path, exc.lineno) from exc
    if not isinstance(payload, dict):
        raise TokenizerError("expected a JSON object; fix or delete it", path)
    return payload

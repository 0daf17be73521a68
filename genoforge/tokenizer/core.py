"""GenoTokenizer: the one tokenizer API every stage uses (see docs/architecture.md).

A GenoTokenizer wraps a fast ``tokenizers.Tokenizer`` whose model is a DNA byte-pair encoding
(DNABERT-2's, or one from ``genoforge tokens train``) plus the built-in token inventory as added
tokens (``genoforge.genes.inventory``). It encodes two kinds of text differently:

DNA (the encoder input), ``encode_dna``:
  - soft-masked lower-case bases are upper-cased;
  - the IUPAC ambiguity codes R Y S W K M B D H V are read as N (the encoder has no use for
    partial ambiguity, and DNABERT-2 has no tokens for them), and U (RNA spelling, which
    genoforge's FASTA reader accepts) as T;
  - a run of N becomes N-run tokens, longest first (13 N -> ``NNNNNN NNNNNN N``), never BPE;
  - each stretch of ACGT between N runs is BPE-encoded by the model itself (not through the
    added-token matcher, so an added token can never split DNA);
  - any other character is a TokenizerError naming it and its position;
  - no [CLS]/[SEP] is added.

Target tokens (the decoder output), ``encode_target``: each token is looked up as a whole, never
BPE-encoded; a missing one is a TokenizerError that says to run ``genoforge tokens append``.

``decode`` joins token strings with no separator, whatever decoder the file declares (DNABERT-2's
own file has none, which would join with spaces). ``save`` writes a directory that
``transformers.PreTrainedTokenizerFast.from_pretrained`` loads and that decodes without spaces
there too (the saved decoder is ``Fuse``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from genoforge.errors import TokenizerError
from genoforge.io import atomic_write
from genoforge.genes import inventory

from genoforge.tokenizer.files import (
    JOINING_DECODER,
    PAD,
    SPECIAL_TOKEN_ROLES,
    SPECIAL_TOKENS_MAP_FILE,
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_FILE,
    content_hash_of,
    joins_without_spaces,
    parse_tokenizer_text,
    resolve_tokenizer_file,
    special_tokens_map,
    tokenizer_config,
    write_json,
)

# Re-exported: the rest of the file layer that lived here before genoforge.tokenizer.files (tests,
# benchmarks and genoforge.model.dnabert import dnabert2_tokenizer_path from here).
from genoforge.tokenizer.files import (  # noqa: F401
    CLS,
    DNABERT2_SPECIALS,
    MASK,
    SEP,
    SPECIAL_ADDED_TOKENS,
    UNK,
    added_token_entry,
    canonical_content,
    dnabert2_tokenizer_path,
)

if TYPE_CHECKING:  # transformers is heavy; it is imported only when a caller asks for it
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

DNA_BASES = "ACGT"
IUPAC_AMBIGUOUS = "RYSWKMBDHV"  # read as N; see the module docstring
# Upper-case, U -> T, and every IUPAC ambiguity code (either case) -> N, in one translate pass.
_DNA_TRANSLATION = str.maketrans(
    "acgtnUu" + IUPAC_AMBIGUOUS + IUPAC_AMBIGUOUS.lower(),
    "ACGTNTT" + "N" * (2 * len(IUPAC_AMBIGUOUS)),
)
_NOT_DNA = re.compile(r"[^ACGTN]")
_DNA_PIECES = re.compile(r"N+|[ACGT]+")


class GenoTokenizer:
    """DNA and target-token encoding over a fast tokenizer (contract: docs/architecture.md).

    Build one with :meth:`load`, or wrap an in-memory ``tokenizers.Tokenizer``.
    """

    def __init__(self, tokenizer: Tokenizer, source: str | Path | None = None):
        self._tokenizer = tokenizer
        self.source = Path(source) if source is not None else None
        self._content_hash: str | None = None
        self._vocab: dict[str, int] = tokenizer.get_vocab(with_added_tokens=True)
        self._id_to_token: dict[int, str] = {i: token for token, i in self._vocab.items()}
        self._special_ids = frozenset(
            i for i, token in tokenizer.get_added_tokens_decoder().items() if token.special
        )
        # N-run tokens present in this vocabulary, longest first, for greedy run splitting.
        self._n_runs: list[tuple[int, int]] = sorted(
            ((len(run), self._vocab[run]) for run in inventory.N_RUNS if run in self._vocab), reverse=True
        )

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> GenoTokenizer:
        """Load a tokenizer.json file, or the one in a directory.

        Raises:
            TokenizerError: the file is missing or not a tokenizer.json.
        """
        file = resolve_tokenizer_file(path)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenizerError(f"cannot read tokenizer ({exc})", file) from exc
        return cls(parse_tokenizer_text(text, file), source=file)

    @property
    def backend(self) -> Tokenizer:
        """The wrapped ``tokenizers.Tokenizer`` (do not mutate it; ids are cached here)."""
        return self._tokenizer

    # -- vocabulary -----------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Rows an embedding needs: highest id + 1, added tokens included.

        Equals the number of tokens when ids are contiguous, which genoforge keeps them.
        """
        return max(self._id_to_token) + 1 if self._id_to_token else 0

    def vocab(self) -> dict[str, int]:
        """token -> id for every token, added tokens included (a copy)."""
        return dict(self._vocab)

    def __contains__(self, token: object) -> bool:
        return token in self._vocab

    def token_to_id(self, token: str) -> int:
        """The id of ``token``.

        Raises:
            TokenizerError: the token is not in the vocabulary (names it and the fix).
        """
        token_id = self._vocab.get(token)
        if token_id is None:
            raise self._missing(token)
        return token_id

    def id_to_token(self, token_id: int) -> str:
        """The token string of ``token_id``.

        Raises:
            TokenizerError: no token has this id.
        """
        token = self._id_to_token.get(int(token_id))
        if token is None:
            raise TokenizerError(
                f"token id {token_id} is outside this tokenizer (vocab_size {self.vocab_size}); "
                "the ids were made with another tokenizer",
                self.source,
            )
        return token

    @property
    def bos_id(self) -> int:
        """Id of ``<bos>``; TokenizerError if the tokenizer lacks it."""
        return self._required_id(inventory.BOS)

    @property
    def eos_id(self) -> int:
        """Id of ``<eos>``; TokenizerError if the tokenizer lacks it."""
        return self._required_id(inventory.EOS)

    @property
    def pad_id(self) -> int:
        """Id of ``[PAD]``; TokenizerError if the tokenizer lacks it."""
        return self._required_id(PAD)

    @property
    def special_ids(self) -> frozenset[int]:
        """Ids of added tokens flagged special (skipped by ``decode(skip_special=True)``)."""
        return self._special_ids

    def bp_lengths(self) -> np.ndarray:
        """Bases each id covers, int32 of length ``vocab_size``.

        A token made only of A/C/G/T covers its length; an N-run token covers its k; every other
        token (specials, target words, numbers) covers 0.
        """
        lengths = np.zeros(self.vocab_size, dtype=np.int32)
        n_runs = set(inventory.N_RUNS)
        for token, token_id in self._vocab.items():
            if token in n_runs or (token and all(base in DNA_BASES for base in token)):
                lengths[token_id] = len(token)
        return lengths

    # -- encoding -------------------------------------------------------------------------------

    def encode_dna(self, seq: str) -> list[int]:
        """Token ids of a DNA sequence (rules in the module docstring); no [CLS]/[SEP].

        Raises:
            TokenizerError: a character that is no DNA/IUPAC base, or an N run and no N tokens.
        """
        canonical = seq.translate(_DNA_TRANSLATION)
        bad = _NOT_DNA.search(canonical)
        if bad is not None:
            char = seq[bad.start()]
            raise TokenizerError(
                f"character {char!r} at position {bad.start()} of a DNA sequence is not a base "
                f"(accepted: ACGTUN and IUPAC codes {IUPAC_AMBIGUOUS}, either case); fix the sequence",
                self.source,
            )
        ids: list[int] = []
        model = self._tokenizer.model
        for piece in _DNA_PIECES.finditer(canonical):
            text = piece.group()
            if text[0] == "N":
                ids.extend(self._n_run_ids(len(text)))
            else:
                # The model's own BPE: no pre-tokenizer, no added-token matching, no specials.
                ids.extend(token.id for token in model.tokenize(text))
        return ids

    def encode_target(self, tokens: Iterable[str]) -> list[int]:
        """Ids of target tokens, each looked up whole (never BPE).

        Raises:
            TokenizerError: a token is missing (names it; fix with ``genoforge tokens append``).
        """
        vocab = self._vocab
        ids = []
        for token in tokens:
            token_id = vocab.get(token)
            if token_id is None:
                raise self._missing(token)
            ids.append(token_id)
        return ids

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        """Token strings of ``ids`` joined with no separator.

        Args:
            ids: token ids (any ints, numpy included).
            skip_special: drop added tokens flagged special ([PAD], <bos>, <eos>, ...).

        Raises:
            TokenizerError: an id outside the vocabulary.
        """
        table = self._id_to_token
        pieces = []
        for raw in ids:
            token_id = int(raw)
            if skip_special and token_id in self._special_ids:
                continue
            token = table.get(token_id)
            if token is None:
                self.id_to_token(token_id)  # raises the descriptive error
            pieces.append(token)
        return "".join(pieces)  # type: ignore[arg-type]  # None was raised on above

    # -- identity and persistence ---------------------------------------------------------------

    def to_json_dict(self) -> dict[str, Any]:
        """The tokenizer.json content as a dict (serialised by ``tokenizers`` itself)."""
        return json.loads(self._tokenizer.to_str())

    def content_hash(self) -> str:
        """sha256 of vocab + merges + added tokens (with ids) in canonical JSON.

        File formatting, key order, merge spelling and the decoder do not change it; any change
        of an id does.
        """
        if self._content_hash is None:  # the wrapped tokenizer is never mutated, so cache it
            self._content_hash = content_hash_of(self.to_json_dict())
        return self._content_hash

    def save(self, directory: str | Path) -> Path:
        """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json into ``directory``.

        Each file is written atomically; the directory is created if needed. The saved decoder
        joins tokens without spaces, so ``PreTrainedTokenizerFast`` decodes as :meth:`decode` does.

        Returns:
            The tokenizer.json path.
        """
        directory = Path(directory)
        data = self.to_json_dict()
        if not joins_without_spaces(self._tokenizer):
            data["decoder"] = dict(JOINING_DECODER)
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        parse_tokenizer_text(text)  # never write a file tokenizers cannot read back
        with atomic_write(directory / TOKENIZER_FILE) as handle:
            handle.write(text)
        write_json(directory / TOKENIZER_CONFIG_FILE, tokenizer_config(data))
        write_json(directory / SPECIAL_TOKENS_MAP_FILE, special_tokens_map(data))
        return directory / TOKENIZER_FILE

    def to_transformers(self) -> PreTrainedTokenizerFast:
        """A ``transformers.PreTrainedTokenizerFast`` over a copy of this tokenizer.

        Its decoder joins without spaces and its special tokens are those the vocabulary has.
        """
        from transformers import PreTrainedTokenizerFast

        copy = parse_tokenizer_text(self._tokenizer.to_str())
        if not joins_without_spaces(copy):
            from tokenizers import decoders

            copy.decoder = decoders.Fuse()
        specials = {role: token for role, token in SPECIAL_TOKEN_ROLES.items() if token in self._vocab}
        return PreTrainedTokenizerFast(tokenizer_object=copy, clean_up_tokenization_spaces=False, **specials)

    def __repr__(self) -> str:
        where = f", source={str(self.source)!r}" if self.source else ""
        return f"GenoTokenizer(vocab_size={self.vocab_size}{where})"

    # -- internals ------------------------------------------------------------------------------

    def _n_run_ids(self, run: int) -> list[int]:
        ids = []
        for k, token_id in self._n_runs:
            count, run = divmod(run, k)
            ids.extend([token_id] * count)
        if run:
            raise TokenizerError(
                "the DNA holds a run of N but the tokenizer has no N-run tokens (N..NNNNNN); "
                "run `genoforge tokens init TOKENS.txt` and `genoforge tokens append TOKENS.txt TOKENIZER`",
                self.source,
            )
        return ids

    def _required_id(self, token: str) -> int:
        token_id = self._vocab.get(token)
        if token_id is None:
            raise TokenizerError(
                f"the tokenizer has no {token!r} token; add the built-in tokens with "
                "`genoforge tokens init TOKENS.txt` and `genoforge tokens append TOKENS.txt TOKENIZER`",
                self.source,
            )
        return token_id

    def _missing(self, token: str) -> TokenizerError:
        return TokenizerError(
            f"token {inventory.escape_token(token)!r} is not in the tokenizer; add it with "
            "`genoforge tokens append TOKENS.txt TOKENIZER` (or `genoforge tokens init` for the built-ins)",
            self.source,
        )


"""train_dna_bpe(): a DNABERT-2-style byte-pair tokenizer trained offline on FASTA files.

The result has DNABERT-2's structure (../shared/reference/dnabert2/SPEC.md section d): a BPE
model over A/C/G/T with ``[UNK] [CLS] [SEP] [PAD] [MASK]`` at ids 0-4 and ``A C G T`` at 5-8, no
normalizer, a ``Whitespace`` pre-tokenizer and the ``[CLS] $A [SEP]`` template post-processor.
Unlike DNABERT-2's file its decoder is ``Fuse`` (tokens join without spaces). The built-in token
inventory is not added here; ``genoforge model init`` and ``genoforge tokens append`` do that.

Training input: each FASTA record is upper-cased and cut at every character other than A/C/G/T
(N, IUPAC codes), and the remaining stretches into chunks of at most ``chunk_length`` bases. Each
chunk is one BPE "word", so merges never cross an N or a chunk boundary. Shorter chunks train
faster (the trainer rescans a whole word for each merge it touches); 1,000 bp keeps the 1 Mb
yeast chrI+II at about 1-2 s on one CPU core.

Memory: the trainer holds every chunk it trains on (about 75 bytes per base, measured with
tokenizers 0.23 on fly chr2R). When the input exceeds ``max_bases``, a uniform random subset of
chunks (reservoir sampling with ``seed``) is used instead, kept in genome order. Below the budget
the seed has no effect. Either way the same inputs and seed give a byte-identical tokenizer.json.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from genoforge import console
from genoforge.errors import ConfigError, InputError
from genoforge.genes.fasta import read_fasta
from genoforge.tokenizer.files import CLS, DNABERT2_SPECIALS, SEP, UNK

if TYPE_CHECKING:
    from tokenizers import Tokenizer

DEFAULT_VOCAB_SIZE = 4096  # DNABERT-2's (SPEC.md d.2)
DEFAULT_SEED = 42
DEFAULT_CHUNK_LENGTH = 1000
DEFAULT_MAX_BASES = 20_000_000  # ~1.5 GB of trainer memory at ~75 B/base
DEFAULT_MIN_FREQUENCY = 2  # a pair seen once in the whole input is noise, not a word
_ACGT_RUNS = re.compile(r"[ACGT]+")


@dataclass(frozen=True)
class TrainStats:
    """What the training saw: all bases read, and the bases/chunks actually trained on."""

    records: int
    bases_read: int
    bases_trained: int
    chunks_trained: int
    sampled: bool


def dna_chunks(records: Iterable[str], chunk_length: int = DEFAULT_CHUNK_LENGTH) -> Iterator[str]:
    """Upper-case ACGT stretches of each sequence, cut at non-ACGT and every ``chunk_length`` bases."""
    for sequence in records:
        for match in _ACGT_RUNS.finditer(sequence.upper()):
            run = match.group()
            for start in range(0, len(run), chunk_length):
                yield run[start : start + chunk_length]


def train_dna_bpe(
    fasta_paths: Sequence[str | Path],
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    seed: int = DEFAULT_SEED,
    chunk_length: int = DEFAULT_CHUNK_LENGTH,
    max_bases: int | None = DEFAULT_MAX_BASES,
    min_frequency: int = DEFAULT_MIN_FREQUENCY,
) -> Tokenizer:
    """Train a DNABERT-2-style BPE tokenizer on the sequences of ``fasta_paths``.

    Args:
        fasta_paths: FASTA files (plain, gzip or bgzip), read in the order given.
        vocab_size: target size including the 5 specials and A/C/G/T. A small genome may stop
            short of it when no pair occurs ``min_frequency`` times any more (a warning says so).
        seed: seeds chunk sampling; only used when the input exceeds ``max_bases``.
        chunk_length: longest training word in bases.
        max_bases: training budget in bases (None: no limit, memory grows with the input).
        min_frequency: a pair must occur this often to be merged.

    Returns:
        The trained ``tokenizers.Tokenizer`` (decoder ``Fuse``). :func:`train_dna_bpe_with_stats`
        also returns what the training saw.

    Raises:
        ConfigError: a parameter out of range.
        FastaFormatError / InputError: an unreadable input, or no A/C/G/T in any of them.
    """
    tokenizer, _ = train_dna_bpe_with_stats(
        fasta_paths, vocab_size, seed, chunk_length, max_bases, min_frequency
    )
    return tokenizer


def train_dna_bpe_with_stats(
    fasta_paths: Sequence[str | Path],
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    seed: int = DEFAULT_SEED,
    chunk_length: int = DEFAULT_CHUNK_LENGTH,
    max_bases: int | None = DEFAULT_MAX_BASES,
    min_frequency: int = DEFAULT_MIN_FREQUENCY,
) -> tuple[Tokenizer, TrainStats]:
    """:func:`train_dna_bpe`, also returning what the training saw (:class:`TrainStats`)."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )

    minimum = len(DNABERT2_SPECIALS) + 4
    if vocab_size < minimum:
        raise ConfigError(f"--vocab_size {vocab_size} is too small: the specials and A C G T need {minimum}")
    if chunk_length < 2:
        raise ConfigError(f"chunk_length {chunk_length} must be at least 2 bases")
    if max_bases is not None and max_bases < chunk_length:
        raise ConfigError(f"max_bases {max_bases} must be at least chunk_length ({chunk_length})")
    if not fasta_paths:
        raise ConfigError("no FASTA files given; pass at least one genome")

    chunks, stats = _collect_chunks(fasta_paths, chunk_length, max_bases, seed)
    if not chunks:
        names = ", ".join(str(p) for p in fasta_paths)
        raise InputError(f"no A/C/G/T bases to train on in {names}; pass a DNA FASTA")

    tokenizer = Tokenizer(models.BPE(unk_token=UNK, fuse_unk=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}",
        pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
        special_tokens=[(CLS, 1), (SEP, 2)],
    )
    tokenizer.decoder = decoders.Fuse()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(DNABERT2_SPECIALS),
        initial_alphabet=list("ACGT"),
        limit_alphabet=4,
        # tokenizers draws its own bars on stderr: only on a terminal (no animation in logs).
        show_progress=console.is_interactive(),
    )
    console.info(
        f"Training BPE (vocab {vocab_size:,}) on {stats.bases_trained:,} bases "
        f"in {stats.chunks_trained:,} chunks of <= {chunk_length:,} bp"
    )
    tokenizer.train_from_iterator(chunks, trainer=trainer, length=len(chunks))
    _check_layout(tokenizer)
    if tokenizer.get_vocab_size() < vocab_size:
        console.warn(
            f"the vocabulary stopped at {tokenizer.get_vocab_size():,} of {vocab_size:,} tokens: no pair "
            f"occurs {min_frequency} times any more; train on more sequence or ask for fewer tokens"
        )
    return tokenizer, stats


def _collect_chunks(
    fasta_paths: Sequence[str | Path], chunk_length: int, max_bases: int | None, seed: int
) -> tuple[list[str], TrainStats]:
    """Stream every file once; keep all chunks, or a seeded reservoir sample beyond the budget.

    The reservoir holds at most ``max_bases // chunk_length`` chunks (Algorithm R), so memory
    is bounded by the budget, not the genome; the kept chunks are returned in genome order.
    """
    capacity = None if max_bases is None else max(1, max_bases // chunk_length)
    rng = random.Random(seed)
    kept: list[tuple[int, str]] = []
    seen = 0
    records = 0
    bases_read = 0
    with console.progress("Reading FASTA", total=None, unit="bases") as bar:
        for path in fasta_paths:
            for record in read_fasta(path):
                records += 1
                bases_read += len(record.sequence)
                bar.advance(len(record.sequence))
                for chunk in dna_chunks([record.sequence], chunk_length):
                    if capacity is None or len(kept) < capacity:
                        kept.append((seen, chunk))
                    else:
                        slot = rng.randrange(seen + 1)
                        if slot < capacity:
                            kept[slot] = (seen, chunk)
                    seen += 1
    sampled = capacity is not None and seen > capacity
    if sampled:
        kept.sort()
    chunks = [chunk for _, chunk in kept]
    stats = TrainStats(
        records=records,
        bases_read=bases_read,
        bases_trained=sum(len(c) for c in chunks),
        chunks_trained=len(chunks),
        sampled=sampled,
    )
    if sampled:
        console.info(
            f"Input holds {bases_read:,} bases, over the {max_bases:,}-base budget: "
            f"training on a seeded sample of {len(chunks):,} of {seen:,} chunks"
        )
    return chunks, stats


def _check_layout(tokenizer: Tokenizer) -> None:
    """The DNABERT-2 layout the rest of genoforge relies on: specials 0-4, then A C G T."""
    expected = [*DNABERT2_SPECIALS, "A", "C", "G", "T"]
    actual = [tokenizer.id_to_token(i) for i in range(len(expected))]
    assert actual == expected, f"trained tokenizer layout {actual} != {expected}"  # internal invariant

"""Look inside a baked folder: the manifest summary and one sample decoded back to text.

The target is shown as its text form (tokens joined with no spaces, as the tokenizer decodes) with
the whitespace tokens made visible: TAB is written ``␉`` and NEWLINE ``␤`` (followed by a real line
break), so every line of the target is one line on screen and nothing is hidden. With ``gff`` the
target is parsed back (:func:`genoforge.genes.target.parse_target_tokens`) and written as GFF3 rows
in genome coordinates (window-relative coordinates + the sample's ``window_start``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genoforge.errors import TokenizerError
from genoforge.genes import inventory
from genoforge.genes.manifest import read_manifest
from genoforge.genes.packed_reader import PackedShard

VISIBLE_TAB = "\u2409"  # ␉ SYMBOL FOR HORIZONTAL TABULATION
VISIBLE_NEWLINE = "\u2424"  # ␤ SYMBOL FOR NEWLINE


def readable_tokens(tokens: list[str]) -> str:
    """Target tokens as text with TAB/NEWLINE visible, one target line per screen line."""
    out = []
    for token in tokens:
        if token == inventory.TAB:
            out.append(VISIBLE_TAB)
        elif token == inventory.NEWLINE:
            out.append(VISIBLE_NEWLINE + "\n")
        elif token in (inventory.BOS, inventory.EOS):
            out.append(token + "\n")
        else:
            out.append(token)
    return "".join(out)


def _load_tokenizer(manifest: dict[str, Any], baked_dir: Path, override: str | Path | None) -> Any:
    from genoforge.tokenizer.core import GenoTokenizer

    path = override if override is not None else manifest["config"].get("tokenizer")
    try:
        tok = GenoTokenizer.load(path)
    except TokenizerError as exc:
        raise TokenizerError(
            f"cannot load the tokenizer the bake used ({exc}); pass it with --tokenizer", baked_dir
        ) from exc
    expected = manifest["tokenizer"]["hash"]
    if tok.content_hash() != expected:
        raise TokenizerError(
            f"tokenizer {tok.content_hash()[:12]} is not the one the bake used ({expected[:12]}); "
            "pass the bake's tokenizer with --tokenizer",
            tok.source,
        )
    return tok


def manifest_summary(manifest: dict[str, Any]) -> list[str]:
    """Plain-text lines summarising a manifest."""
    config = manifest["config"]
    lines = [
        f"tokenizer  {manifest['tokenizer']['hash'][:16]}  vocab {manifest['tokenizer']['vocab_size']:,}  "
        f"ids {manifest['tokenizer']['token_dtype']}",
        f"config     raw_dir {config['raw_dir']}  window_size {config['window_size']}  overlap_fraction "
        f"{config['overlap_fraction']}  val_fraction {config['val_fraction']}  seed {config['seed']}  "
        f"hint_ratio {config['hint_ratio']}  max_n_ratio {config['max_n_ratio']}  intergenic_rate "
        f"{config['intergenic_rate']}",
    ]
    header = (
        "species", "taxon", "window", "genes", "transcripts", "train win", "val win", "train tokens", "val tokens"
    )
    rows = [header]
    for name, report in manifest["species"].items():
        rows.append(
            (
                name,
                report["taxon"],
                f"{report['window_size']:,}",
                f"{report['genes']:,}",
                f"{report['transcripts']:,}",
                f"{report['training']['windows']:,}",
                f"{report['validation']['windows']:,}",
                f"{report['training']['input_tokens'] + report['training']['target_tokens']:,}",
                f"{report['validation']['input_tokens'] + report['validation']['target_tokens']:,}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        cells = [cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    for name, report in manifest["species"].items():
        skipped = report["skipped_features"]
        if skipped:
            by_count = sorted(skipped.items(), key=lambda kv: -kv[1])
            shown = ", ".join(f"{reason} {count:,}" for reason, count in by_count)
            lines.append(f"skipped    {name}: {shown}")
        for split in ("training", "validation"):
            counts = report[split]
            dropped = {k.removeprefix("dropped_"): v for k, v in counts.items() if k.startswith("dropped_") and v}
            if dropped:
                lines.append(
                    f"dropped    {name} {split}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(dropped.items()))
                )
    for name, message in manifest["failed_species"].items():
        lines.append(f"FAILED     {name}: {message}")
    for file_name, output in manifest["outputs"].items():
        lines.append(
            f"output     {file_name}  {output['samples']:,} samples  {output['bytes']:,} bytes  "
            f"sha256 {output['sha256']}"
        )
    return lines


def inspect_baked(
    baked_dir: str | Path,
    *,
    split: str = "training",
    index: int = 0,
    gff: bool = False,
    tokenizer: str | Path | None = None,
) -> str:
    """The manifest summary and sample ``index`` of ``split``, as text ending in a newline.

    Raises:
        ShardFormatError: not a baked folder, or a corrupt shard.
        TokenizerError: the tokenizer cannot be found or is not the one the bake used.
        InputError: ``index`` is outside the shard.
    """
    from genoforge.errors import InputError

    baked_dir = Path(baked_dir)
    manifest = read_manifest(baked_dir)
    shard = PackedShard(baked_dir / f"{split}.packed")
    lines = [f"Baked folder {baked_dir}", *manifest_summary(manifest), ""]
    n = len(shard)
    if n == 0:
        lines.append(f"{split}.packed holds no sample.")
        return "\n".join(lines) + "\n"
    if not -n <= index < n:
        raise InputError(
            f"--index {index} is outside {split}.packed (it holds {n:,} samples: 0..{n - 1})", baked_dir
        )
    tok = _load_tokenizer(manifest, baked_dir, tokenizer)
    sample = shard.sample(index)
    input_tokens = [tok.id_to_token(i) for i in sample.input_ids]
    target_tokens = [tok.id_to_token(i) for i in sample.target_ids]
    length = sample.window_end - sample.window_start
    lines.append(
        f"Sample {split}[{index % n}] of {n:,}: {sample.species} {sample.seqid}:{sample.window_start:,}-"
        f"{sample.window_end:,} ({length:,} bp, 0-based half-open)"
    )
    if inventory.HIT in input_tokens:
        cut = input_tokens.index(inventory.HIT)
        dna, hints = input_tokens[:cut], input_tokens[cut + 1 :]
    else:
        dna, hints = input_tokens, None
    dna_text = "".join(dna)
    preview = dna_text if len(dna_text) <= 60 else f"{dna_text[:30]}...{dna_text[-30:]}"
    lines.append(
        f"input      {len(input_tokens):,} tokens: DNA {len(dna):,} tokens ({len(dna_text):,} bp) {preview}"
    )
    if hints is not None:
        from genoforge.baking.hints import HINT_RECORD_LENGTH

        records = [hints[i : i + HINT_RECORD_LENGTH] for i in range(0, len(hints), HINT_RECORD_LENGTH)]
        lines.append(f"hints      [HIT] + {len(records)} intron hint(s)")
        lines += [f"           {' '.join(record)}" for record in records]
    lines.append(
        f"target     {len(target_tokens):,} tokens (TAB shown as {VISIBLE_TAB}, NEWLINE as {VISIBLE_NEWLINE}):"
    )
    lines.append(readable_tokens(target_tokens).rstrip("\n"))
    if gff:
        from genoforge.genes.target import parse_target_tokens
        from genoforge.genes.target_gff3 import to_gff3_rows

        annotation = parse_target_tokens(target_tokens, window_size=length)
        rows = to_gff3_rows(annotation, sample.seqid, sample.window_start)
        lines.append("")
        lines.append("##gff-version 3")
        lines.append(f"##sequence-region {sample.seqid} {sample.window_start + 1} {sample.window_end}")
        lines += rows if rows else ["# no feature in this window"]
    return "\n".join(lines) + "\n"

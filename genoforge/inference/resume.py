"""A predict run's resumable output: the run record, the writer, the contigs left, the counts.

Both decoders write through here. A run that stops early keeps ``<output>.partial`` with the
contigs completed and its record ``<output>.partial.json``; ``--resume`` continues it when the
record (:func:`run_record`) is this run's, skipping the contigs done
(:func:`remaining_regions`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genoforge import __version__
from genoforge.inference.device import resolved_dtype
from genoforge.inference.predict_config import PredictConfig

if TYPE_CHECKING:
    from genoforge.inference.predict import PredictResult
    from genoforge.inference.predictor import Predictor


def _file_stamp(path: Path) -> str | None:
    """``path`` with its size and modification time (what tells a changed file), or None."""
    try:
        stat = path.stat()
    except OSError:
        return None
    seconds, nanoseconds = divmod(stat.st_mtime_ns, 10**9)
    when = datetime.fromtimestamp(seconds).replace(microsecond=nanoseconds // 1000)
    return f"{path} ({stat.st_size:,} bytes, modified {when.isoformat(timespec='microseconds')})"


def run_record(model_dir: str | Path, genome: str | Path, config: PredictConfig, *, decoder: str,
               device, batch_size: int, predictor: Predictor | None = None) -> dict[str, Any]:
    """What a partial output's record must match for ``--resume`` to continue it.

    Keys are the names a user knows (a flag, ``genome FASTA``), so a mismatch names itself. The
    genome is told by path, size and modification time (a hash would read a whole genome again);
    the model by its directory and the size and time of the files that shape the output.
    ``config`` is settled (window resolved); ``device`` a torch device. The generative decoder's
    token cap and CUDA-graph use come from its ``predictor``: without one they are left out (the
    check before the model is loaded, :func:`~genoforge.inference.gff_writer.check_resumable`).
    """
    model_dir = Path(model_dir).resolve()
    files = ["config.json", "model.safetensors", "tokenizer.json"]
    if decoder == "hmm":
        from genoforge.genes.structure_set import GENE_STRUCTURE_FILE

        files.append(GENE_STRUCTURE_FILE)
        settings = {"--species": config.species, "--taxon": config.taxon,
                    "--emission_weight": config.emission_weight, "--signal_weight": config.signal_weight,
                    "--head_signal_weight": config.head_signal_weight,
                    "--content_weight": config.content_weight}
    else:
        settings = {"max_records": config.max_records, "max_exons": config.max_exons}
        if predictor is not None:
            settings |= {"--max_new_tokens": predictor.max_new_tokens, "--cuda_graphs": predictor.step is not None}
    return {
        "genoforge version": __version__,
        "genome FASTA": _file_stamp(Path(genome).resolve()),
        "model directory": str(model_dir),
        **{f"model file {name}": _file_stamp(model_dir / name) for name in files},
        "--decoder": decoder,
        "--window_size": config.resolved_window_size,
        "--overlap": config.resolved_overlap,
        "--seqids": None if config.seqids is None else ",".join(sorted(set(config.seqids))),  # a set
        "--batch_size": batch_size,
        "--device": str(device),
        "dtype": resolved_dtype(config, device),
        **settings,
    }


def open_output(output: str | Path, model_dir: str | Path, regions: Sequence[tuple[str, int]],
                comments: Sequence[str], run: dict[str, Any], resume: bool):
    """A predict run's resumable GFF3 writer, header for ``regions`` included: a context manager
    (:func:`~genoforge.inference.gff_writer.open_partial_gff`)."""
    from genoforge.inference.gff_writer import header_lines, open_partial_gff

    header = header_lines(Path(model_dir).resolve().name, model_dir, regions, comments)
    total = sum(1 for _, length in regions if length > 0)
    return open_partial_gff(output, header, run, total, resume=resume)


def remaining_regions(regions: Sequence[tuple[str, int]], done: Iterable[str]) -> list[tuple[str, int]]:
    """The contigs (with bases) of ``regions`` not in ``done``, in order."""
    done = set(done)
    return [(seqid, length) for seqid, length in regions if length > 0 and seqid not in done]


def collect_counts(result: PredictResult, writer) -> None:
    """The whole output's counts, from a :class:`~genoforge.inference.gff_writer.PartialGffWriter`."""
    result.contigs, result.bases = len(writer.done), writer.bases
    result.resumed_contigs, result.resumed_bases = writer.resumed_contigs, writer.resumed_bases
    result.genes, result.transcripts, result.features = writer.genes, writer.transcripts, writer.features


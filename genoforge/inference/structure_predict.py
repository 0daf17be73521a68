"""``genoforge predict --decoder hmm``: per-base head + Viterbi gene-structure decoding.

Per contig: the windows' per-base log-probabilities (:mod:`genoforge.inference.base_track`),
stitched into one track, then :func:`genoforge.inference.hmm.decode_genes` with the gene-structure
parameters of the model directory's ``gene_structure.json`` (written by bake, copied by tune):
those of one species (``--species``), of a taxon (``--taxon``, summed over its baked species) or,
by default, of every baked species pooled, with the class prior the head learnt divided out
(:meth:`GeneStructureSet.decoder_params`) and each strand's intron phases pooled
(:func:`~genoforge.genes.classes.pool_intron_phases`: the decoder knows the phase from the
frame). Contigs are appended to the output's partial as they finish, in FASTA order, and a
stopped run resumes as the generative decoder's does (:func:`genoforge.inference.predict.predict_genome`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from genoforge import console
from genoforge.errors import CheckpointError
from genoforge.genes.structure import GeneStructureParams
from genoforge.genes.structure_set import GENE_STRUCTURE_FILE, GeneStructureSet


def structure_params(model_dir: str | Path, species: str | None, taxon: str | None) -> tuple[GeneStructureParams, str]:
    """The decoder's parameters from ``model_dir`` and a phrase saying whose they are.

    Raises:
        CheckpointError: the model directory has no ``gene_structure.json``.
        ConfigError: an unknown species or taxon.
    """
    path = Path(model_dir) / GENE_STRUCTURE_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{path}: not found; --decoder hmm needs the gene-structure statistics that bake writes and "
            "tune copies into its model directories: re-run genoforge bake and genoforge tune "
            "(or use --decoder generative)"
        )
    structures = GeneStructureSet.load(path)
    params = structures.decoder_params(species, taxon)
    if species is not None:
        whose = f"species {species}"
    elif taxon is not None:
        whose = f"taxon {taxon}"
    else:
        whose = f"{len(structures.counts)} baked species pooled"
    limits = [f"introns >= {params.min_intron} bp"]
    if params.min_internal_exon > 1:
        limits.append(f"internal exons >= {params.min_internal_exon} bp")
    if params.min_single_cds:
        limits.append(f"single-exon CDS >= {params.min_single_cds} bp")
    return params, f"gene structure of {whose} ({params.n_genes:,} training genes; {', '.join(limits)})"


def decode_contig(sequence, track, params: GeneStructureParams, *, seqid: str, emission_weight: float,
                  signal_weight: float, head_signal_weight: float, content_weight: float = 0.0,
                  isoforms: int = 1, isoform_max_loss: float | None = None):
    """One contig's genes from its per-base log-probabilities: the intron phases pooled
    (:func:`~genoforge.genes.classes.pool_intron_phases`), with ``content_weight`` > 0 the
    coding-content chain's log-odds (:mod:`genoforge.genes.coding_content`, from ``params``)
    added to every CDS state's emission, ``content_weight`` nats per unit whatever the
    ``emission_weight`` (:func:`with_coding_content`), then the Viterbi decoder; with
    ``isoforms`` > 1, up to that many transcripts per gene (:mod:`genoforge.inference.hmm_isoforms`;
    ``isoform_max_loss``: its ``max_loss``, default ``ISOFORM_MAX_LOSS``)."""
    from genoforge.genes.classes import encode_bases, pool_intron_phases
    from genoforge.inference.hmm import decode_genes
    from genoforge.inference.hmm_isoforms import ISOFORM_MAX_LOSS, add_isoforms

    pooled, prior = pool_intron_phases(track, params.class_log_prior)
    params = dataclasses.replace(params, class_log_prior=prior)
    codes = encode_bases(sequence) if isinstance(sequence, str) else sequence
    table = params.content_table() if content_weight else None
    if table is not None:
        # the emissions made here, the content term added after the head's scaling (a scaled
        # log-likelihood is floored before it is scaled; the content term must not be)
        pooled = with_coding_content(pooled, codes, params.class_log_prior, table, emission_weight, content_weight)
        params = dataclasses.replace(params, class_log_prior=[0.0] * len(prior))
        emission_weight = 1.0
    weights = {"emission_weight": emission_weight, "signal_weight": signal_weight,
               "head_signal_weight": head_signal_weight}
    annotation = decode_genes(codes, pooled, params, seqid=seqid, **weights)
    return add_isoforms(annotation, codes, pooled, params, isoforms=isoforms,
                        max_loss=ISOFORM_MAX_LOSS if isoform_max_loss is None else isoform_max_loss, **weights)


def with_coding_content(track_LK, codes, class_log_prior, table, emission_weight: float,
                        content_weight: float):
    """``track_LK`` with its class columns replaced by the decoder's emissions plus the coding
    content: ``emission_weight * (max(log p, floor) - prior) + content_weight * content`` (the
    content from ``table``, :meth:`GeneStructureParams.content_table`, only in the CDS columns), so
    that it decodes with emission weight 1 and a zero prior. The head's signal columns, if any,
    are kept."""
    import numpy as np

    from genoforge.genes.classes import CDS_MINUS, CDS_PLUS, N_CLASSES
    from genoforge.genes.coding_content import strand_log_odds
    from genoforge.inference.hmm import LOG_PROB_FLOOR

    out = np.array(track_LK, dtype=np.float32, copy=True)
    classes = np.fmax(out[:, :N_CLASSES].astype(np.float64), LOG_PROB_FLOOR)
    classes = emission_weight * (classes - np.asarray(class_log_prior, dtype=np.float64))
    plus, minus = strand_log_odds(codes, table)
    classes[:, list(CDS_PLUS)] += content_weight * plus
    classes[:, list(CDS_MINUS)] += content_weight * minus
    out[:, :N_CLASSES] = classes
    return out


def predict_genome_hmm(model_dir, genome, output, config, result, regions, lengths, window_note: str, *,
                       resume: bool = False):
    """Run the structure decoder over ``regions`` and write ``output`` (see the module docstring).

    ``config`` is a settled :class:`~genoforge.inference.predict_config.PredictConfig`;
    ``result`` the :class:`~genoforge.inference.predict.PredictResult` to fill; ``resume`` as for
    :func:`~genoforge.inference.predict.predict_genome`.
    """
    from genoforge.inference.base_track import BaseTrackPredictor
    from genoforge.inference.device import (
        default_batch_size,
        load_for_inference,
        resolve_device,
    )
    from genoforge.inference.resume import (
        collect_counts,
        open_output,
        remaining_regions,
        run_record,
    )
    from genoforge.inference.windows import stream_windows

    params, whose = structure_params(model_dir, config.species, config.taxon)
    device = resolve_device(config.device)
    model, tokenizer = load_for_inference(model_dir, config, device)
    batch = default_batch_size(config, device)
    predictor = BaseTrackPredictor(model, tokenizer, batch)
    result.device, result.batch_size = str(device), batch
    window_size, overlap = config.resolved_window_size, config.resolved_overlap
    console.info(f"predict: {window_note}; structure decoder (HMM), {whose}")
    comments = [
        f"windows: {window_size} bp, overlap {overlap} bp; per-base head + Viterbi gene-structure decoding "
        f"({whose}); batch size {batch} on {device}",
    ]
    run = run_record(model_dir, genome, config, decoder="hmm", device=device, batch_size=batch)

    def counted(stream):
        for window in stream:
            result.windows += 1
            result.decoded_windows += 1
            yield window

    started = time.perf_counter()
    with open_output(output, model_dir, regions, comments, run, resume) as writer:
        todo = remaining_regions(regions, writer.done)
        with console.progress("Predicting", total=sum(n for _, n in todo), unit="bp") as bar:
            windows = stream_windows(genome, lengths, window_size, overlap, frozenset(s for s, _ in todo))
            for seqid, sequence, track in predictor.contig_tracks(counted(windows)):
                annotation = decode_contig(sequence, track, params, seqid=seqid,
                                           emission_weight=config.emission_weight,
                                           signal_weight=config.signal_weight,
                                           head_signal_weight=config.head_signal_weight,
                                           content_weight=config.content_weight)
                writer.write_contig(annotation, len(sequence))
                bar.advance(len(sequence))
        collect_counts(result, writer)
    result.seconds = time.perf_counter() - started
    return result

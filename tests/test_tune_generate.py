"""Generative validation during `genoforge tune` (genoforge.training.generate)."""

from __future__ import annotations

import dataclasses

import numpy as np
from test_tune_fixtures import read_metrics, run_tune, tune_workspace  # noqa: F401 - fixture

from genoforge.baking.target import WindowAnnotation, WindowTranscript, encode_target
from genoforge.tokenizer import inventory as inv
from genoforge.training.generate import score_windows, window_transcripts

GEN_KEYS = ("gen_cds_nucleotide_f1", "gen_cds_exon_f1", "gen_transcript_f1", "gen_gene_f1")

REFERENCE = WindowAnnotation(records=(
    WindowTranscript(strand="+", biotype=inv.PROTEIN_CODING, gene=0, partial=".", exons=((10, 40), (60, 90)),
                     cds=(20, 80), cds_phase=0),
    WindowTranscript(strand="-", biotype=inv.PROTEIN_CODING, gene=1, partial="<", exons=((0, 30),), cds=(0, 27),
                     cds_phase=0),
))


def test_reference_against_itself_and_nothing():
    assert score_windows([REFERENCE], [REFERENCE]) == {key: 1.0 for key in GEN_KEYS}
    assert score_windows([REFERENCE], [WindowAnnotation()]) == {key: 0.0 for key in GEN_KEYS}
    # Nothing on either side: undefined, not perfect.
    assert score_windows([WindowAnnotation()], [WindowAnnotation()]) == {key: None for key in GEN_KEYS}


def test_windows_do_not_match_each_other():
    # The same transcript in window 0 of the reference and window 1 of the prediction is no match.
    scores = score_windows([REFERENCE, WindowAnnotation()], [WindowAnnotation(), REFERENCE])
    assert scores == {key: 0.0 for key in GEN_KEYS}
    models = window_transcripts(REFERENCE, "w")
    assert [t.gene_id for t in models] == ["w:gene0", "w:gene1"]
    assert models[0].cds_pieces() == [(20, 40), (60, 80)]


def _parseable_validation(path, tokenizer, n: int):
    """Random windows whose targets parse (the shared fixture's toy targets do not)."""
    from genoforge.baking.packed import PackedWriter, token_dtype_for

    rng = np.random.default_rng(3)
    with PackedWriter(path, tokenizer_hash=tokenizer.content_hash(),
                      token_dtype=token_dtype_for(tokenizer.vocab_size)) as writer:
        for _ in range(n):
            length = int(rng.integers(100, 300))
            start = int(rng.integers(0, length // 2))
            end = int(rng.integers(start + 10, length))
            wa = WindowAnnotation(records=(WindowTranscript(
                strand="+", biotype=inv.PROTEIN_CODING, gene=0, partial=".", exons=((start, end),), cds=(start, end)),))
            writer.add(tokenizer.encode_dna("".join(rng.choice(list("ACGT"), length))),
                       tokenizer.encode_target(encode_target(wa)), species="toy", seqid="chr0",
                       window_start=0, window_end=length)
    return path


def test_tune_writes_generative_scores(tune_workspace, tmp_path):
    from genoforge.tokenizer.core import GenoTokenizer

    tokenizer = GenoTokenizer.load(tune_workspace.model_dir)
    ws = dataclasses.replace(tune_workspace,
                             validation=_parseable_validation(tmp_path / "validation.packed", tokenizer, 6))
    out = tmp_path / "run"
    result = run_tune(ws, out, "--max_steps", "4", "--eval_steps", "2", "--save_steps", "0",
                      "--generate_samples", "2", "--generate-max-new-tokens", "64")
    assert result.returncode == 0, result.stderr
    evals = read_metrics(out, "eval")
    assert [r["step"] for r in evals] == [2, 4]
    for record in evals:
        assert record["gen_windows"] == 2
        assert 0 <= record["gen_truncated"] <= 2
        for key in GEN_KEYS:
            assert 0.0 <= record[key] <= 1.0, (key, record[key])
    assert "decoded 2 windows" in result.stderr
    assert all(r["kind"] != "eval" or "gen_windows" in r for r in read_metrics(out))

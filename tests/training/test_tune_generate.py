"""Generative validation during `genoforge tune` (genoforge.training.generate)."""

from __future__ import annotations

import dataclasses

import pytest

from genoforge.genes import inventory as inv
from genoforge.genes.target import WindowAnnotation, WindowTranscript
from genoforge.training.generate import ValidationWindows, score_decoded, score_windows, window_transcripts

from tests.training.tune_runs import (
    REPO_ROOT,
    read_metrics,
    run_tune,
    train_losses,
    tune_args,
    tune_env,
    write_parseable_samples,
)

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


def test_tune_writes_generative_scores(tune_workspace, tmp_path):
    from genoforge.tokenizer.core import GenoTokenizer

    tokenizer = GenoTokenizer.load(tune_workspace.model_dir)
    ws = dataclasses.replace(tune_workspace,
                             validation=write_parseable_samples(tmp_path / "validation.packed", tokenizer, 6))
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


def test_ddp_ranks_share_the_decoding_and_pool_the_same_scores(tune_workspace, tmp_path):
    """Under DDP each rank decodes every world_size-th window; the gathered scores equal one process's."""
    import os
    import subprocess
    import sys

    from genoforge.tokenizer.core import GenoTokenizer

    tokenizer = GenoTokenizer.load(tune_workspace.model_dir)
    ws = dataclasses.replace(tune_workspace,
                             validation=write_parseable_samples(tmp_path / "validation.packed", tokenizer, 5))
    flags = ("--max_steps", "1", "--save_steps", "0", "--generate_samples", "3",
             "--generate_max_new_tokens", "48")
    one = run_tune(ws, tmp_path / "one", "--grad_accum", "2", *flags)
    assert one.returncode == 0, one.stderr
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(29700 + os.getpid() % 1000), "-m", "genoforge",
               *tune_args(ws, tmp_path / "two", "--grad_accum", "1", *flags)]
    two = subprocess.run(command, capture_output=True, text=True, env=tune_env(), cwd=REPO_ROOT, timeout=180)
    assert two.returncode == 0, two.stderr[-4000:]
    assert train_losses(tmp_path / "two")[1] == pytest.approx(train_losses(tmp_path / "one")[1], rel=1e-4)
    gen = [{k: v for k, v in read_metrics(tmp_path / run, "eval")[-1].items() if k.startswith("gen_")}
           for run in ("one", "two")]
    assert gen[0]["gen_windows"] == 3 and set(gen[0]) == {*GEN_KEYS, "gen_windows", "gen_truncated"}
    assert gen[1] == gen[0]


def test_scores_pool_decoded_windows_from_any_rank_in_any_order():
    windows = ValidationWindows(input_ids=[[5]] * 3, window_lengths=[100] * 3,
                                references=[REFERENCE, WindowAnnotation(), REFERENCE])
    rank0 = [(0, REFERENCE, False), (2, WindowAnnotation(), True)]  # rank 0 of 2: windows 0 and 2
    rank1 = [(1, WindowAnnotation(), False)]
    pooled = score_decoded(windows, rank1 + rank0)
    expected = score_windows(windows.references, [REFERENCE, WindowAnnotation(), WindowAnnotation()])
    assert pooled == {**expected, "gen_windows": 3, "gen_truncated": 1}
    with pytest.raises(ValueError):  # a window decoded twice (two ranks took the same share)
        score_decoded(windows, rank0 + rank0 + rank1)
    with pytest.raises(ValueError):  # a window nobody decoded
        score_decoded(windows, rank0)

"""Generative-validation scores in tune's live panel (``--log_memory`` on a terminal).

The panel is rendered into a rich Console writing to a StringIO (``genoforge.console.stderr``
patched): rich's Live prints its final table when it stops, so the text read back is what the
panel showed last.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
import torch
from rich.console import Console

from genoforge import console
from genoforge.training.telemetry import GENERATION_ROWS, TrainingLog, generation_fields

from tests.training.tune_runs import TUNE_TOML, write_parseable_samples

TRAIN_RECORD = {"kind": "train", "step": 3, "epoch": 0, "loss": 2.5, "ce": 2.25, "lr": 1e-4, "grad_norm": 0.7}
EVAL_RECORD = {"kind": "eval", "step": 3, "val_loss": 1.0, "gen_cds_nucleotide_f1": 0.9, "gen_cds_exon_f1": 0.4567,
               "gen_transcript_f1": 0.25, "gen_gene_f1": None, "gen_windows": 1234, "gen_truncated": 3}


@pytest.fixture
def panel_text(monkeypatch):
    """Point the library's stderr console at a buffer; returns a reader of what was drawn."""
    buffer = StringIO()
    monkeypatch.setattr(console, "stderr", Console(file=buffer, width=100, force_terminal=False))
    return buffer.getvalue


def panel_rows(text: str) -> dict[str, str]:
    """Row name -> value of the last table drawn (``│ name │ value │`` lines)."""
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) == 4:
            rows[cells[1]] = cells[2]
    return rows


def run_log(tmp_path, *, generative: bool, evals: list[dict]) -> TrainingLog:
    log = TrainingLog(tmp_path / "metrics.jsonl", live=True, log_memory=True, device=torch.device("cpu"),
                      total_steps=10, generative=generative)
    log.interval([TRAIN_RECORD], flops=1e9, tokens=1000, world_size=1, peak=None, expert_load=None)
    for record in evals:
        log.write(record)
    log.close()
    return log


def test_generation_fields_format():
    assert generation_fields(None) == {row: "-" for row in GENERATION_ROWS}
    assert generation_fields(EVAL_RECORD) == {"gen exon F1": "0.457", "gen gene F1": "n/a",
                                              "gen windows decoded": "1,234", "gen truncated": "3"}


def test_panel_shows_dashes_before_the_first_evaluation(tmp_path, panel_text):
    run_log(tmp_path, generative=True, evals=[])
    rows = panel_rows(panel_text())
    assert rows["step"] == "3/10"
    assert [rows[name] for name in GENERATION_ROWS] == ["-"] * 4


def test_panel_shows_the_newest_evaluation_at_once(tmp_path, panel_text):
    # The eval comes after the last interval: the panel must not wait for the next one.
    newer = {**EVAL_RECORD, "step": 4, "gen_cds_exon_f1": 0.5, "gen_gene_f1": 0.125, "gen_truncated": 0}
    run_log(tmp_path, generative=True, evals=[EVAL_RECORD, newer])
    rows = panel_rows(panel_text())
    assert (rows["gen exon F1"], rows["gen gene F1"]) == ("0.500", "0.125")
    assert (rows["gen windows decoded"], rows["gen truncated"]) == ("1,234", "0")
    written = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in written] == ["train", "perf", "eval", "eval"]  # the records are unchanged


def test_panel_has_no_generation_rows_when_it_is_off(tmp_path, panel_text):
    run_log(tmp_path, generative=False, evals=[{"kind": "eval", "step": 3, "val_loss": 1.0}])
    rows = panel_rows(panel_text())
    assert rows["step"] == "3/10" and not set(GENERATION_ROWS) & set(rows)


def test_plain_lines_leave_generation_to_the_eval_line(tmp_path, capsys):
    log = TrainingLog(tmp_path / "metrics.jsonl", live=False, log_memory=True, device=torch.device("cpu"),
                      total_steps=10, generative=True)
    log.write(EVAL_RECORD)
    log.interval([TRAIN_RECORD], flops=1e9, tokens=1000, world_size=1, peak=None, expert_load=None)
    log.close()
    err = capsys.readouterr().err
    assert "step 3/10" in err and "gen exon" not in err


def test_tune_live_panel_carries_the_generative_scores(tune_workspace, tmp_path, panel_text, monkeypatch):
    """A real (tiny, CPU, in-process) tune run with --log_memory on a 'terminal'."""
    import tomllib

    from genoforge.tokenizer.core import GenoTokenizer
    from genoforge.training.config import TuneConfig
    from genoforge.training.loop import tune

    monkeypatch.setattr(console, "is_interactive", lambda: True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tokenizer = GenoTokenizer.load(tune_workspace.model_dir)
    validation = write_parseable_samples(tmp_path / "validation.packed", tokenizer, 4)
    config = TuneConfig(**tomllib.loads(TUNE_TOML)["tune"], token_budget=192, max_batch_size=1, lr=3e-3,
                        warmup_ratio=0.1, max_steps=4, eval_steps=2, save_steps=0, generate_samples=2,
                        generate_max_new_tokens=64, log_memory=True, device="cpu")
    try:
        result = tune(tune_workspace.train, validation, tmp_path / "run", tune_workspace.model_dir, config)
    finally:
        torch.set_num_threads(threads)
    assert result.stopped == "max_steps"
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    last_eval = [r for r in metrics if r["kind"] == "eval"][-1]
    rows = panel_rows(panel_text())
    assert rows["step"] == "4/4"
    assert rows == {**rows, **generation_fields(last_eval)}
    assert rows["gen windows decoded"] == "2" and rows["gen exon F1"] != "-"


def test_generation_rows_name_real_scorer_levels():
    from genoforge.evaluation.compare import LEVELS

    keys = {key for key in GENERATION_ROWS.values() if key.endswith("_f1")}
    assert keys == {"gen_cds_exon_f1", "gen_gene_f1"} <= {f"gen_{level}_f1" for level in LEVELS}

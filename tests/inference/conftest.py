"""Fixtures of the inference tests (tests/inference/)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def model_and_genome(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A model directory for `predict --decoder hmm` (a debug model with a sharpened random head,
    plus the gene_structure.json of a bake of the tiny species) and that species' genome.
    Built once per session; treat both as read-only."""
    import shutil

    from typer.testing import CliRunner

    from genoforge.cli.app import app

    from tests.helpers import write_tiny_species
    from tests.tiny import build_debug_model_dir

    root = tmp_path_factory.mktemp("hmm")
    model = build_debug_model_dir(root / "model", seed=3)
    _sharpen_head(model)
    write_tiny_species(root / "raw" / "tiny")
    result = CliRunner().invoke(app, ["bake", "--raw_dir", str(root / "raw"), "--output_dir", str(root / "baked"),
                                      "--tokenizer", str(model), "--window_size", "5000"])
    assert result.exit_code == 0, result.output
    shutil.copyfile(root / "baked" / "gene_structure.json", model / "gene_structure.json")
    return model, root / "raw" / "tiny" / "genome.fa"


def _sharpen_head(model_dir: Path) -> None:
    """Give the random head confident, varied outputs (a fresh head is nearly uniform: no genes)."""
    import torch

    from genoforge.genes.classes import CDS_MINUS, CDS_PLUS
    from genoforge.model.io import load_model, save_model
    from genoforge.tokenizer.core import GenoTokenizer

    model = load_model(model_dir)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        classify = model.base_head.classify
        classify.weight.copy_(torch.randn(classify.weight.shape, generator=generator))
        bias = 3.0 * torch.randn(classify.bias.shape, generator=generator)
        # Lean it towards coding: this seed's bias favours minus-strand introns, a class the tiny
        # bake lacks, which the decoder rightly treats as unknown (no gene would be written).
        bias[list(CDS_PLUS + CDS_MINUS)] += 3.0
        classify.bias.copy_(bias)
    save_model(model, model_dir, GenoTokenizer.load(model_dir))

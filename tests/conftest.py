"""Shared pytest fixtures. Real data lives in ../shared/data beside the repository (never the network).

Fixtures that need it skip, with a reason, when it is absent (e.g. on a bare CI checkout).
Add your own fixtures below; keep each one small and documented. Plain helper functions live in
tests/helpers.py (files), tests/tiny.py (the tiny model, tokenizer and batches) and
tests/training/tune_runs.py (tune runs); test modules import those, never each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# typer reads TERMINAL_WIDTH once, when typer.rich_utils is first imported: were that first import
# inside a CliRunner.invoke(env={"TERMINAL_WIDTH": "200"}), every later help text would be 200
# columns wide. Import it here, without the variable, so each test's COLUMNS decides its width.
import os as _os

_saved_width = _os.environ.pop("TERMINAL_WIDTH", None)
import typer.rich_utils  # noqa: E402,F401

if _saved_width is not None:
    _os.environ["TERMINAL_WIDTH"] = _saved_width

from tests.helpers import REPO_ROOT, write_tiny_species  # noqa: E402

if TYPE_CHECKING:
    from tests.training.tune_runs import TuneWorkspace

SHARED_DIR = REPO_ROOT.parent / "shared"
SHARED_DATA_DIR = SHARED_DIR / "data"
DNABERT2_TOKENIZER_JSON = SHARED_DIR / "reference" / "dnabert2" / "tokenizer.json"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (one folder per species: genome.fa.gz + annotation.gff3.gz)."""
    if not SHARED_DATA_DIR.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA_DIR} (real-genome tests need it)")
    return SHARED_DATA_DIR


@pytest.fixture(scope="session")
def dnabert2_tokenizer_json() -> Path:
    """DNABERT-2's original tokenizer.json in ../shared/reference (read-only: copy before editing)."""
    if not DNABERT2_TOKENIZER_JSON.is_file():
        pytest.skip(f"DNABERT-2 tokenizer not found at {DNABERT2_TOKENIZER_JSON}")
    return DNABERT2_TOKENIZER_JSON


@pytest.fixture
def one_torch_thread():
    """One intra-op torch thread for the test, restored after: deterministic, and on a shared
    2-core machine torch's thread pool can run 50x slower. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def baking_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tokenizer folder bake can use: the bundled DNABERT-2 BPE plus the built-in inventory
    (what `genoforge model init` gives). Built once per session; treat it as read-only."""
    from tests.tiny import write_tokenizer_dir

    return write_tokenizer_dir(tmp_path_factory.mktemp("baking_tokenizer"))


@pytest.fixture
def tiny_raw_dir(tmp_path: Path) -> Path:
    """raw_dir/ with two small written species (tiny_a, tiny_b; see write_tiny_species)."""
    raw = tmp_path / "raw"
    write_tiny_species(raw / "tiny_a", seed=1)
    write_tiny_species(raw / "tiny_b", seed=2)
    return raw


@pytest.fixture(scope="session")
def tune_workspace(tmp_path_factory: pytest.TempPathFactory) -> TuneWorkspace:
    """A debug model and two small shards for `genoforge tune` runs (tests/training/tune_runs.py).
    Built once per session; runs write only to their own output folder."""
    from tests.training.tune_runs import build_workspace

    return build_workspace(tmp_path_factory.mktemp("tune"))

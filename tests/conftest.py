"""Shared pytest fixtures. Real data lives in ../shared/data beside the repository (never the network).

Fixtures that need it skip, with a reason, when it is absent (e.g. on a bare CI checkout).
Add your own fixtures below; keep each one small and documented.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
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

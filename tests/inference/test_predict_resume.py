"""`genoforge predict` streams contigs into OUTPUT.partial, stops cleanly on SIGTERM/SIGINT, resumes.

Genomes written here (random bases, so a random debug model predicts noise, but rows in every
contig): ``small`` (c1 900 bp, c2 1,500 bp, c3 1,200 bp) for the in-process runs, and ``long``
(c1 900 bp, c2 1,200 bp, then c3 of 45 kb: ~100 windows, seconds of decoding) so that a real
SIGTERM sent to a `python -m genoforge predict` subprocess once c1 is in the partial lands
before the run ends. Interruptions in-process raise from inside the writer right after a contig
(the hook a signal handler would be), as KeyboardInterrupt (SIGINT) or the CLI's Terminated
(SIGTERM). Every resumed output is compared byte for byte with an uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genoforge.cli.app import app
from genoforge.cli.predict import Terminated
from genoforge.inference.gff_writer import PartialGffWriter, open_partial_gff, partial_paths

from tests.helpers import REPO_ROOT, random_dna, write_fasta
from tests.tiny import build_debug_model_dir

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RUN = ["--decoder", "generative", "--window_size", "600", "--overlap", "150", "--max_new_tokens", "60",
       "--batch_size", "3", "--device", "cpu"]
HMM_RUN = ["--decoder", "hmm", "--species", "tiny", "--emission_weight", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_debug_model_dir(tmp_path_factory.mktemp("resume_model") / "debug-model", seed=5)


@pytest.fixture(scope="module")
def small_genome(tmp_path_factory) -> Path:
    rng = random.Random(11)
    records = {"c1": random_dna(rng, 900), "c2": random_dna(rng, 1_500), "c3": random_dna(rng, 1_200)}
    return write_fasta(tmp_path_factory.mktemp("small") / "small.fa", records)


@pytest.fixture(scope="module")
def reference(model_dir, small_genome, tmp_path_factory) -> bytes:
    """The uninterrupted run's GFF3 of the small genome."""
    out = tmp_path_factory.mktemp("reference") / "ref.gff3"
    result = predict(model_dir, small_genome, out)
    assert result.exit_code == 0, result.output
    text = out.read_bytes()
    assert [seqid for seqid, _ in contig_ends(text)] == ["c1", "c2", "c3"]  # rows in every contig
    return text


def predict(model, genome, out, *extra: str, run=RUN):
    return CliRunner().invoke(app, ["predict", str(model), str(genome), "-o", str(out), *run, *extra])


def contig_ends(gff: bytes) -> list[tuple[str, int]]:
    """``(seqid, byte offset just after its last row)`` per contig with rows, in file order."""
    ends: list[tuple[str, int]] = []
    offset = 0
    for line in gff.splitlines(keepends=True):
        offset += len(line)
        if line.startswith(b"#"):
            continue
        seqid = line.split(b"\t", 1)[0].decode()
        if ends and ends[-1][0] == seqid:
            ends[-1] = (seqid, offset)
        else:
            ends.append((seqid, offset))
    return ends


def prefix_through(gff: bytes, done: list[str]) -> bytes:
    """The header and the rows of the contigs ``done`` (the first of the file, in order)."""
    offset = 0
    for line in gff.splitlines(keepends=True):
        if not line.startswith(b"#") and line.split(b"\t", 1)[0].decode() not in done:
            break
        offset += len(line)
    return gff[:offset]


def stop_after(monkeypatch, contigs: int, exception: BaseException) -> None:
    """Raise ``exception`` from the writer once it holds ``contigs`` contigs (a signal's timing)."""
    original = PartialGffWriter.write_contig

    def write_then_stop(self, contig, length):
        original(self, contig, length)
        if len(self.done) == contigs:
            raise exception

    monkeypatch.setattr(PartialGffWriter, "write_contig", write_then_stop)


def record_of(out: Path) -> dict:
    return json.loads(partial_paths(out)[1].read_text())


def stderr_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


# --- a real SIGTERM to a real `python -m genoforge predict` -------------------------------------


def run_cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("GENOFORGE_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "genoforge", "predict", *args], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_sigterm_keeps_the_completed_contigs_and_resume_finishes_byte_identical(model_dir, tmp_path) -> None:
    rng = random.Random(12)
    genome = write_fasta(tmp_path / "long.fa", {"c1": random_dna(rng, 900), "c2": random_dna(rng, 1_200),
                                                "c3": random_dna(rng, 45_000)})
    args = [str(model_dir), str(genome), *RUN]
    ref_out = tmp_path / "ref" / "ref.gff3"
    ref = run_cli(*args, "-o", str(ref_out))
    assert ref.wait(timeout=300) == 0, ref.communicate()[1]
    reference = ref_out.read_bytes()
    assert [seqid for seqid, _ in contig_ends(reference)] == ["c1", "c2", "c3"]

    out = tmp_path / "run" / "pred.gff3"
    partial, record = partial_paths(out)
    c1_done = prefix_through(reference, ["c1"])
    proc = run_cli(*args, "-o", str(out))
    deadline = time.monotonic() + 240
    while not (partial.is_file() and partial.read_bytes().startswith(c1_done)):
        assert proc.poll() is None, f"the run ended before c1 was seen in the partial: {proc.communicate()}"
        assert time.monotonic() < deadline, "c1 never reached the partial"
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)

    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr and stdout == ""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("Stopped by SIGTERM") and "--resume" in lines[-1], stderr
    assert sum("--resume" in line for line in lines) == 1, stderr
    assert not out.exists()
    done = json.loads(record.read_text())["contigs_done"]
    assert done in (["c1"], ["c1", "c2"]), done  # what was complete when the signal came, not c3
    assert partial.read_bytes() == prefix_through(reference, done)  # exactly those contigs, whole
    assert f"holds {len(done)} of 3 contigs" in lines[-1]

    resumed = run_cli(*args, "-o", str(out), "--resume")
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert f"{len(done)} of 3 contigs already in" in " ".join(stderr.split())
    assert "resumed from the partial" in stdout
    assert out.read_bytes() == reference
    assert sorted(p.name for p in out.parent.iterdir()) == ["pred.gff3"]  # no partial, record or temp


# --- in-process interruptions -------------------------------------------------------------------


@pytest.mark.parametrize(("exception", "code", "name"), [(Terminated(15), 143, "SIGTERM"),
                                                         (KeyboardInterrupt(), 130, "SIGINT")])
def test_stop_after_the_first_contig_then_resume(model_dir, small_genome, reference, tmp_path, monkeypatch,
                                                 exception, code, name) -> None:
    out = tmp_path / "pred.gff3"
    partial, record = partial_paths(out)
    stop_after(monkeypatch, 1, exception)
    result = predict(model_dir, small_genome, out)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert stderr_lines(result)[-1] == (f"Stopped by {name}: {partial} holds 1 of 3 contigs; run the same "
                                        "command with --resume to finish it.")
    assert not out.exists()
    assert record_of(out)["contigs_done"] == ["c1"]
    assert partial.read_bytes() == prefix_through(reference, ["c1"])

    monkeypatch.undo()
    result = predict(model_dir, small_genome, out, "--resume")
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == reference
    assert "3 contigs" in result.stdout and "1 contig (900 bp) resumed" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.gff3"]


def test_debug_shows_the_traceback(model_dir, small_genome, tmp_path, monkeypatch) -> None:
    stop_after(monkeypatch, 1, Terminated(15))
    result = CliRunner().invoke(app, ["predict", str(model_dir), str(small_genome), "-o",
                                      str(tmp_path / "p.gff3"), *RUN], env={"GENOFORGE_DEBUG": "1"})
    assert result.exit_code == 143
    assert "Traceback" in result.output and "Terminated" in result.output


def test_hmm_decoder_streams_and_resumes_byte_identical(model_and_genome, tmp_path, monkeypatch) -> None:
    model, genome = model_and_genome
    ref = tmp_path / "ref.gff3"
    result = predict(model, genome, ref, run=HMM_RUN)
    assert result.exit_code == 0, result.output
    reference = ref.read_bytes()  # (genes or not: the generative tests above check rows too)

    out = tmp_path / "run" / "pred.gff3"
    stop_after(monkeypatch, 1, Terminated(15))
    result = predict(model, genome, out, run=HMM_RUN)
    assert result.exit_code == 143, result.output
    assert record_of(out)["contigs_done"] == ["chr1"]
    assert record_of(out)["run"]["--decoder"] == "hmm"
    assert partial_paths(out)[0].read_bytes() == prefix_through(reference, ["chr1"])
    monkeypatch.undo()
    result = predict(model, genome, out, "--resume", run=HMM_RUN)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == reference
    assert sorted(p.name for p in out.parent.iterdir()) == ["pred.gff3"]


def test_resume_drops_bytes_past_the_record(model_dir, small_genome, reference, tmp_path, monkeypatch) -> None:
    """A run killed outright (SIGKILL) after writing rows the record does not list yet."""
    out = tmp_path / "pred.gff3"
    stop_after(monkeypatch, 1, KeyboardInterrupt())
    assert predict(model_dir, small_genome, out).exit_code == 130
    monkeypatch.undo()
    with open(partial_paths(out)[0], "ab") as handle:
        handle.write(b"c2\tgenoforge\tgene\t1\t10\t.\t+\t.\tID=c2.g0;biotype=protein_coding\n")
    result = predict(model_dir, small_genome, out, "--resume")
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == reference


# --- what --resume refuses, and runs without it --------------------------------------------------


def interrupted(model_dir, genome, out, monkeypatch) -> tuple[bytes, bytes]:
    stop_after(monkeypatch, 1, Terminated(15))
    assert predict(model_dir, genome, out).exit_code == 143
    monkeypatch.undo()
    partial, record = partial_paths(out)
    return partial.read_bytes(), record.read_bytes()


def test_resume_with_a_changed_fasta_is_a_one_line_error(model_dir, small_genome, tmp_path, monkeypatch) -> None:
    genome = tmp_path / "genome.fa"
    genome.write_bytes(small_genome.read_bytes())
    out = tmp_path / "pred.gff3"
    kept = interrupted(model_dir, genome, out, monkeypatch)
    with open(genome, "a") as handle:
        handle.write(">c4 added later\nACGTACGTAC\n")
    result = predict(model_dir, genome, out, "--resume")
    assert result.exit_code == 1, result.output
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert "genome FASTA" in lines[0] and str(genome) in lines[0] and "without --resume" in lines[0]
    assert "Traceback" not in result.output
    partial, record = partial_paths(out)
    assert (partial.read_bytes(), record.read_bytes()) == kept  # left as it was
    assert not out.exists()


def test_resume_with_another_setting_names_it(model_dir, small_genome, tmp_path, monkeypatch) -> None:
    out = tmp_path / "pred.gff3"
    kept = interrupted(model_dir, small_genome, out, monkeypatch)
    result = predict(model_dir, small_genome, out, "--resume", run=[*RUN[:-4], "--batch_size", "4",
                                                                       "--device", "cpu"])
    assert result.exit_code == 1, result.output
    lines = stderr_lines(result)
    assert len(lines) == 1 and "--batch_size 3, this run has 4" in lines[0], result.output
    assert tuple(p.read_bytes() for p in partial_paths(out)) == kept


def test_without_resume_a_partial_is_replaced(model_dir, small_genome, reference, tmp_path, monkeypatch) -> None:
    out = tmp_path / "pred.gff3"
    interrupted(model_dir, small_genome, out, monkeypatch)
    result = predict(model_dir, small_genome, out)
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())  # console lines wrap at the terminal's width
    assert said.count("replacing") == 1 and f"replacing {partial_paths(out)[0]}" in said
    assert "pass --resume to continue it instead" in said
    assert "resumed" not in result.stdout
    assert out.read_bytes() == reference
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.gff3"]


def test_resume_without_a_partial_starts_from_the_first_contig(model_dir, small_genome, reference,
                                                               tmp_path) -> None:
    out = tmp_path / "pred.gff3"
    result = predict(model_dir, small_genome, out, "--resume")
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert f"no {partial_paths(out)[0]} to resume; starting from the first contig" in said
    assert out.read_bytes() == reference
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.gff3"]


def test_a_second_writer_of_the_same_output_is_refused(model_dir, small_genome, tmp_path) -> None:
    out = tmp_path / "pred.gff3"
    with pytest.raises(RuntimeError):
        with open_partial_gff(out, ["##gff-version 3"], {"--decoder": "x"}, total=1):
            result = predict(model_dir, small_genome, out)
            assert result.exit_code == 1, result.output
            assert "another genoforge predict is writing" in result.output
            raise RuntimeError("the first writer stops")
    assert not out.exists()


def test_output_mode_follows_the_umask(model_dir, small_genome, tmp_path, monkeypatch) -> None:
    """The partial (created by os.open) and the output renamed from it get 0o666 less the umask."""
    out = tmp_path / "pred.gff3"
    previous = os.umask(0o027)
    try:
        stop_after(monkeypatch, 1, KeyboardInterrupt())
        assert predict(model_dir, small_genome, out).exit_code == 130
        assert partial_paths(out)[0].stat().st_mode & 0o777 == 0o640
        monkeypatch.undo()
        os.umask(0o022)
        assert predict(model_dir, small_genome, out, "--resume").exit_code == 0
    finally:
        os.umask(previous)
    assert out.stat().st_mode & 0o777 == 0o644

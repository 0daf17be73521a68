"""Benchmark `genoforge tune`: tokens/s, MFU, peak GPU memory and packing efficiency.

    python benchmarks/tune.py prepare WORKDIR [--preset seed] [--copies 80]
    python benchmarks/tune.py run WORKDIR OUT [tune flags...]      (one process or under torchrun)
    python benchmarks/tune.py summary OUT...

``prepare`` builds, without the network:

* ``WORKDIR/model``: the bundled DNABERT-2 tokenizer + the built-in inventory and a config.json of
  the chosen preset sized to it (no weights: ``run`` initialises them on the device, per the
  ``init_*_std`` fields, which is what `model init` does offline; writing and reading 12 GB of
  seed-size weights would only time the disk);
* ``WORKDIR/baked``: the embedded yeast chromosome I baked by the real bake library with the
  recipe's ``--window_size 10000``, its training shard concatenated ``--copies`` times (bulk
  ``add_shard``) so that a run has enough micro-batches; sample lengths are real.

``run`` is `genoforge tune` itself (the library entry point, same flags) with two changes for a
benchmark: weights are initialised instead of loaded, and no checkpoint / best / final model is
written (``--save_steps 0`` and the exports are skipped: they would time the disk). Numbers come
from the run's metrics.jsonl: the first ``perf`` interval (warm-up, FlexAttention compilation) is
excluded.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def prepare(workdir: Path, preset_name: str, copies: int) -> None:
    from genoforge.baking.bake import BakeConfig, bake
    from genoforge.baking.packed_writer import PackedWriter
    from genoforge.genes.packed_reader import PackedShard
    from genoforge.model.config import preset
    from genoforge.model.io import write_model_config
    from genoforge.quickstart import stage_raw_dir
    from genoforge.tokenizer.core import GenoTokenizer, dnabert2_tokenizer_path
    from genoforge.tokenizer.edit import ensure_builtin_tokens

    shutil.rmtree(workdir, ignore_errors=True)
    model_dir = workdir / "model"
    model_dir.mkdir(parents=True)
    shutil.copyfile(dnabert2_tokenizer_path(), model_dir / "tokenizer.json")
    ensure_builtin_tokens(model_dir)
    tokenizer = GenoTokenizer.load(model_dir)
    config = dataclasses.replace(preset(preset_name), vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_id)
    write_model_config(model_dir, config)
    raw = stage_raw_dir(workdir)
    once = workdir / "baked_once"
    bake(BakeConfig(raw_dir=str(raw), output_dir=str(once), tokenizer=str(model_dir), window_size=10000).validate())
    baked = workdir / "baked"
    baked.mkdir()
    shard = PackedShard(once / "training.packed")
    with PackedWriter(baked / "training.packed", tokenizer_hash=shard.tokenizer_hash,
                      token_dtype=shard.token_dtype) as writer:
        for _ in range(copies):
            writer.add_shard(shard)
    shutil.copyfile(once / "validation.packed", baked / "validation.packed")
    print(f"prepared {workdir}: {len(shard)} windows x {copies} copies, preset {preset_name}")


def run(workdir: Path, out: Path, flags: list[str]) -> None:
    import torch

    import genoforge.model.io as model_io
    from genoforge.model.io import build_empty_model, read_model_config
    from genoforge.model.model import GenoforgeModel
    from genoforge.tokenizer.core import GenoTokenizer
    from genoforge.training import loop
    from genoforge.training.config import resolve_tune_config

    def init_model(model_dir, device="cpu", dtype=None) -> GenoforgeModel:
        config = read_model_config(model_dir)
        tok = GenoTokenizer.load(model_dir)
        target = "cuda" if torch.cuda.is_available() else "cpu"
        model = build_empty_model(config, device=target)
        model.bp_digit_token_ids.copy_(torch.tensor([tok.token_to_id(str(i)) for i in range(1000)]))
        torch.manual_seed(0)
        model.init_weights()
        return model

    model_io.load_model = init_model
    loop.Trainer.export_model = lambda self, name: None
    loop.Trainer.save_checkpoint = lambda self: None
    parser = argparse.ArgumentParser()
    for field in dataclasses.fields(loop.TuneConfig):
        kind = {"bool": None, "int": int, "float": float, "str": str}[str(field.type).split(" ")[0]]
        names = [f"--{field.name}", f"--{field.name.replace('_', '-')}"]
        if kind is None:
            parser.add_argument(*names, dest=field.name, action="store_const", const=True, default=None)
        else:
            parser.add_argument(*names, dest=field.name, type=kind, default=None)
    given = {k: v for k, v in vars(parser.parse_args(flags)).items() if v is not None}
    config, sources = resolve_tune_config(None, {**given, "save_steps": 0})
    result = loop.tune(workdir / "baked" / "training.packed", workdir / "baked" / "validation.packed", out,
                       workdir / "model", config, sources)
    print(f"run done: {result.global_step} steps, stopped {result.stopped}")


def summarize(out: Path) -> dict:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    start = next(r for r in records if r["kind"] == "start")
    perf = [r for r in records if r["kind"] == "perf"]
    train = [r for r in records if r["kind"] == "train"]
    steady = perf[1:] or perf
    tokens_per_s = sum(r["tokens_per_s"] * r["step_time_s"] for r in steady) / sum(r["step_time_s"] for r in steady)
    mfus = [r["mfu"] for r in steady if r.get("mfu") is not None]
    return {
        "run": out.name,
        "world_size": start["world_size"],
        "row_shape": start["row_shape"],
        "packing_efficiency": start["packing_efficiency"],
        "steps": len(train),
        "step_time_s": sum(r["step_time_s"] for r in steady) / len(steady),
        "tokens_per_s": tokens_per_s,
        "mfu": sum(mfus) / len(mfus) if mfus else None,
        "gpu_peak_gb": max((r.get("gpu_peak_mb", 0) for r in perf), default=0) / 1024,
        "gpu_reserved_gb": max((r.get("gpu_reserved_mb", 0) for r in perf), default=0) / 1024,
        "host_rss_gb": max(r["host_rss_mb"] for r in perf) / 1024,
        "first_loss": train[0]["loss"] if train else None,
        "last_loss": train[-1]["loss"] if train else None,
    }


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("prepare", "run", "summary"):
        print(__doc__)
        raise SystemExit(2)
    command, args = sys.argv[1], sys.argv[2:]
    if command == "prepare":
        parser = argparse.ArgumentParser()
        parser.add_argument("workdir", type=Path)
        parser.add_argument("--preset", default="seed")
        parser.add_argument("--copies", type=int, default=80)
        ns = parser.parse_args(args)
        prepare(ns.workdir, ns.preset, ns.copies)
    elif command == "run":
        run(Path(args[0]), Path(args[1]), args[2:])
    else:
        rows = [summarize(Path(p)) for p in args]
        for row in rows:
            print(json.dumps(row))
        if len(rows) == 2 and rows[0]["world_size"] == 1 and rows[1]["world_size"] > 1:
            scaling = rows[1]["tokens_per_s"] / (rows[1]["world_size"] * rows[0]["tokens_per_s"])
            print(json.dumps({"ddp_scaling_efficiency": scaling}))


if __name__ == "__main__":
    main()

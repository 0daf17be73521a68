"""Plot a `genoforge tune` run's learning curves from its metrics.jsonl into one PNG.

Run: python benchmarks/plot_curves.py RUN/metrics.jsonl [-o curves.png] [--title TEXT] [--smooth N]

Reads the record kinds of ``genoforge.training.telemetry``:

* ``train`` (one per optimizer step): ``loss`` (the optimised objective: label-smoothed CE + MoE aux
  terms) and ``ce`` (plain CE of the training tokens), plotted against ``step``;
* ``eval`` (one per evaluation): ``val_loss`` (plain CE, what picks ``best/``), plotted as points
  joined by a line; the evaluation that set the lowest one is circled;
* the ``gen_<level>_f1`` keys of ``eval`` records (``--generate_samples``), when present, on a
  second y axis in percent.

A resumed run's file may hold a step twice (``truncate_metrics`` drops only records past the
checkpoint); the last record of a step wins. Needs matplotlib (``pip install -e '.[plot]'``); it
is only for benchmark plots, never imported by genoforge.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

F1_COLOURS = {"cds_nucleotide": "tab:green", "cds_exon": "tab:olive", "transcript": "tab:purple",
              "gene": "tab:brown"}


def read_metrics(path: Path) -> tuple[dict[int, dict], dict[int, dict]]:
    """The ``train`` and ``eval`` records of ``path``, each keyed by step (the last record wins).

    Raises:
        SystemExit: a line that is not JSON (named with its line number), or no ``train`` record.
    """
    train: dict[int, dict] = {}
    evals: dict[int, dict] = {}
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{line_no}: not a JSON record ({exc.msg}); is this a metrics.jsonl?")
            kind = record.get("kind")
            if kind == "train":
                train[record["step"]] = record
            elif kind == "eval":
                evals[record["step"]] = record
    if not train:
        raise SystemExit(f"{path}: no 'train' records; pass the metrics.jsonl of a `genoforge tune` run")
    return dict(sorted(train.items())), dict(sorted(evals.items()))


def moving_average(values: list[float], window: int) -> list[float]:
    """Trailing mean over up to ``window`` values (the first points average what exists)."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot(train: dict[int, dict], evals: dict[int, dict], output: Path, title: str, smooth: int) -> list[str]:
    """Write the PNG; returns the names of the F1 series drawn (empty when there were none)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on benchmark machines
    import matplotlib.pyplot as plt

    from genoforge.io import atomic_write

    steps = list(train)
    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=120)
    loss = [train[s]["loss"] for s in steps]
    ce = [train[s]["ce"] for s in steps]
    ax.plot(steps, loss, color="tab:blue", alpha=0.25, linewidth=0.8)
    ax.plot(steps, moving_average(loss, smooth), color="tab:blue", linewidth=1.5,
            label=f"train loss (label-smoothed + aux; mean of {smooth} steps)")
    ax.plot(steps, moving_average(ce, smooth), color="tab:cyan", linewidth=1.2, linestyle="--",
            label=f"train CE (mean of {smooth} steps)")
    if evals:
        eval_steps = list(evals)
        val = [evals[s]["val_loss"] for s in eval_steps]
        ax.plot(eval_steps, val, color="tab:red", marker="o", markersize=3.5, linewidth=1.5,
                label="validation CE (each evaluation)")
        best = min(eval_steps, key=lambda s: evals[s]["val_loss"])
        ax.plot([best], [evals[best]["val_loss"]], marker="o", markersize=11, markerfacecolor="none",
                markeredgecolor="black", linestyle="none", label=f"best val CE {evals[best]['val_loss']:.4f} "
                f"(step {best})")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats per target token)")
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()

    levels = [name for name in F1_COLOURS if any(f"gen_{name}_f1" in r for r in evals.values())]
    if levels:
        ax2 = ax.twinx()
        for name in levels:
            points = [(s, r[f"gen_{name}_f1"]) for s, r in evals.items() if r.get(f"gen_{name}_f1") is not None]
            ax2.plot([p[0] for p in points], [100 * p[1] for p in points], color=F1_COLOURS[name], marker="s",
                     markersize=3, linewidth=1.0, label=f"generated {name} F1")
        windows = max((r.get("gen_windows", 0) for r in evals.values()), default=0)
        ax2.set_ylabel(f"F1 of {windows} decoded validation windows (%)")
        ax2.set_ylim(0, 100)
        more_handles, more_labels = ax2.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, loc="upper right", fontsize=8, framealpha=0.9)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_write(output, mode="wb") as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)
    return levels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("metrics", type=Path, help="a tune run's metrics.jsonl")
    parser.add_argument("-o", "--output", type=Path, default=None, help="PNG to write (default: beside metrics)")
    parser.add_argument("--title", default=None, help="plot title (default: the metrics path)")
    parser.add_argument("--smooth", type=int, default=20, help="steps in the training-loss moving average")
    args = parser.parse_args(argv)
    if args.smooth < 1:
        parser.error("--smooth must be at least 1")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit("matplotlib is missing; install it: pip install -e '.[plot]'") from None
    train, evals = read_metrics(args.metrics)
    output = args.output or args.metrics.with_name("curves.png")
    levels = plot(train, evals, output, args.title or str(args.metrics), args.smooth)
    last = train[max(train)]
    print(f"{output}: {len(train)} train steps (last loss {last['loss']:.4f}), {len(evals)} evaluations"
          + (f", F1 of {', '.join(levels)}" if levels else ""), file=sys.stderr)


if __name__ == "__main__":
    REPO = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(REPO))
    main()

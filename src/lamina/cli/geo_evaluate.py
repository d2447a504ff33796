"""``lamina geo evaluate``, ``lamina geo probe-fit`` and ``lamina geo probe-predict``: single-layer probes
(``probe-predict`` also applies a fine-tuned folder of ``lamina geo finetune``).

Plain functions, registered on the ``lamina geo`` sub-app by :mod:`lamina.cli.geo`. Thin: parses options, calls
:mod:`lamina.geo.eval.evaluate` and :mod:`lamina.geo.eval.probing`, prints a summary. Bad input raises
:class:`lamina.errors.InputError`, which the top-level group prints as one ``error: ...`` line with exit code 2.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from lamina.cli._common import echo_written
from lamina.cli._geo_options import CHECKPOINT, WRAP, checkpoint_provenance
from lamina.errors import InputError


def _split_list(value: str | None, option: str) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise InputError(f"{option}: expected a comma-separated list, got {value!r}")
    return items


def evaluate_cmd(
    output: Path = typer.Option(..., "-o", "--output", help="Report folder: results.json, results.md, <task>.png."),
    tasks: str = typer.Option(None, "--tasks", help="Comma-separated tasks (default: all four)."),
    encoders: str = typer.Option(None, "--encoders", help="Comma-separated methods (default: all available)."),
    checkpoint: Path = CHECKPOINT,
    quick: bool = typer.Option(False, "--quick", help="CI-sized run: fewer points, 2 seeds (under 2 minutes)."),
    seeds: int = typer.Option(None, "--seeds", help="Number of seeds (default: 5, or 2 with --quick)."),
    splits: str = typer.Option(None, "--splits", help="Comma-separated: random, block (default: both)."),
    jobs: int = typer.Option(2, "--jobs", help="Worker processes for the fits."),
) -> None:
    """Probe the encoder and the baselines on real ecological tasks; write a report with a table and figures."""
    from lamina.geo.eval.evaluate import DEFAULT_METHODS, SPLITS, EvalSettings, evaluate
    from lamina.geo.eval.tasks import task_names

    settings = EvalSettings.quick() if quick else EvalSettings.full()
    if seeds is not None:
        if seeds < 1:
            raise InputError(f"--seeds: expected an integer >= 1, got {seeds}")
        settings.seeds = tuple(range(seeds))
    if jobs < 1:
        raise InputError(f"--jobs: expected an integer >= 1, got {jobs}")
    settings.n_jobs = jobs
    split_list = _split_list(splits, "--splits") or list(SPLITS)
    for s in split_list:
        if s not in SPLITS:
            raise InputError(f"--splits: expected some of {', '.join(SPLITS)}, got {s!r}")
    settings.splits = tuple(split_list)
    task_list = _split_list(tasks, "--tasks") or task_names()
    for t in task_list:
        if t not in task_names():
            raise InputError(f"--tasks: unknown task {t!r}; expected some of {', '.join(task_names())}")
    method_list = _split_list(encoders, "--encoders") or list(DEFAULT_METHODS)
    for m in method_list:
        if m not in DEFAULT_METHODS:
            raise InputError(f"--encoders: unknown method {m!r}; expected some of {', '.join(DEFAULT_METHODS)}")
    if checkpoint is not None and not _resolve(checkpoint).exists():
        raise InputError(f"--checkpoint: {checkpoint} does not exist")
    t0 = time.perf_counter()
    report = evaluate(task_list, method_list, settings=settings, checkpoint=checkpoint, out_dir=output)
    typer.echo((output / "results.md").read_text(), err=True)  # stdout: the JSON below
    for name, reason in report["skipped"].items():
        typer.echo(f"skipped {name}: {reason}", err=True)
    figures = [output / f"{t}.png" for t in task_list if (output / f"{t}.png").is_file()]
    typer.echo(f"wrote {output}/results.json, results.md and {len(figures)} figures in "
               f"{time.perf_counter() - t0:.0f} s", err=True)  # fmt: skip
    echo_written("geo evaluate", [output / "results.json", output / "results.md", *figures],
                 {"what": "evaluate", "tasks": task_list,
                  "methods": [m for m in method_list if m not in report["skipped"]], "skipped": report["skipped"],
                  "seeds": len(settings.seeds), "splits": list(settings.splits),
                  **checkpoint_provenance(checkpoint)})


def probe_fit_cmd(
    task: str = typer.Argument(..., help="Task to fit on (koppen, koppen-main, city-temperature, sdm-ariolimax)."),
    output: Path = typer.Option(..., "-o", "--output", help="Directory of the saved probe."),
    encoder: str = typer.Option("climplicit", "--encoder", help="Features the probe reads (a method name)."),
    checkpoint: Path = CHECKPOINT,
    n: int = typer.Option(None, "--n", help="Task sample size (default: the task's)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample and the inner cross-validation."),
) -> None:
    """Fit a single-layer probe on all points of a task and save it."""
    from lamina.geo.eval.probing import fit_task_probe, save_task_probe
    from lamina.geo.eval.tasks import task_names

    if task not in task_names():
        raise InputError(f"task: unknown task {task!r}; expected one of {', '.join(task_names())}")
    if checkpoint is not None and not _resolve(checkpoint).exists():
        raise InputError(f"--checkpoint: {checkpoint} does not exist")
    tp = fit_task_probe(task, encoder=encoder, checkpoint=checkpoint, n=n, seed=seed)
    save_task_probe(tp, output)
    typer.echo(f"wrote {output}: {tp.kind} probe for {task} on {tp.probe.n_features_in_} {encoder} features", err=True)
    from lamina._io import read_checkpoint_config

    echo_written("geo probe-fit", [output], {"what": "probe-fit", "task": task, "kind": tp.kind, "encoder": encoder,
                                             "features": int(tp.probe.n_features_in_), "labels": len(tp.labels),
                                             "probe_sha256": read_checkpoint_config(output)["sha256"],
                                             "checkpoint": tp.checkpoint, "checkpoint_sha256": tp.encoder_sha256})


def probe_predict_cmd(
    probe: Path = typer.Argument(..., help="Directory written by lamina geo probe-fit, or a fine-tuned folder "
                                 "written by lamina geo finetune."),
    points: Path = typer.Argument(..., help="CSV or Parquet file with lon / lat columns (degrees)."),
    output: Path = typer.Option(..., "-o", "--output", help="Predictions, .csv or .parquet."),
    checkpoint: Path = typer.Option(None, "--checkpoint", "-c", help="Encoder checkpoint (default: the probe's; "
                                    "a fine-tuned folder carries its own)."),
    lon_col: str = typer.Option("lon", "--lon-col", help="Longitude column."),
    lat_col: str = typer.Option("lat", "--lat-col", help="Latitude column."),
    wrap_lon: bool = WRAP,
) -> None:
    """Apply a saved probe (or a fine-tuned encoder with its head) at the points of a table; write the predictions
    atomically."""
    from lamina._io import atomic_path
    from lamina.geo.eval.probing import load_task_probe, predict_points, read_points
    from lamina.geo.finetune_model import FineTunedEncoder, is_finetuned_folder

    if output.suffix.lower() not in (".csv", ".parquet"):
        raise InputError(f"--output: expected a .csv or .parquet file, got {output.name!r}")
    if is_finetuned_folder(probe):
        if checkpoint is not None:
            raise InputError(f"--checkpoint: {probe} is a fine-tuned folder, which carries its own encoder; leave "
                             "--checkpoint out")
        model = FineTunedEncoder.load(probe)  # a corrupt or mixed-up folder fails before any work
        encoder_sha256 = None  # the folder is the encoder: probe_sha256 names it
        lon, lat = read_points(points, lon_col=lon_col, lat_col=lat_col)
        table = model.predict_frame(lon=lon, lat=lat, wrap_lon=wrap_lon)
    else:
        encoder_sha256 = load_task_probe(probe).encoder_sha256  # a foreign or corrupt probe fails before any work
        lon, lat = read_points(points, lon_col=lon_col, lat_col=lat_col)
        table = predict_points(probe, lon=lon, lat=lat, checkpoint=checkpoint, wrap_lon=wrap_lon)
    with atomic_path(output) as tmp:
        if output.suffix.lower() == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
    typer.echo(f"wrote {output}: {len(table)} rows", err=True)
    from lamina._io import read_checkpoint_config

    echo_written("geo probe-predict", [output], {"what": "probe-predict", "rows": len(table), "probe": str(probe),
                                                 "probe_sha256": read_checkpoint_config(probe)["sha256"],
                                                 "checkpoint_sha256": encoder_sha256})


def _resolve(checkpoint: Path) -> Path:
    from lamina.geo.encoder import resolve_checkpoint

    return resolve_checkpoint(checkpoint)

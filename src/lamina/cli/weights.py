"""``lamina weights``: learning on model weights (ProbeX)."""

from __future__ import annotations

from pathlib import Path

import typer

from lamina.cli._common import echo_json, new_app

app = new_app("Learning on model weights (ProbeX): what a model was trained on, from one layer.")
zoo_app = new_app("Model zoos: trees of fine-tuned image classifiers, built offline from real images.")
app.add_typer(zoo_app, name="zoo")


@zoo_app.command("build")
def zoo_build(
    out: Path = typer.Option(..., "-o", "--out", help="Zoo folder (created; an interrupted build resumes here)."),
    config: str = typer.Option("benchmark", "--config", help="TOML file, or a bundled config: benchmark, small."),
    workers: int = typer.Option(2, "--workers", help="Parallel worker processes (1 torch thread each)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Build (or resume) a zoo: pretrain the roots, then fine-tune every tree's models in parallel."""
    from lamina.weights.zoo import ZooConfig, build_zoo

    summary = build_zoo(ZooConfig.load(config), out, workers=workers, quiet=quiet)
    echo_json(summary)

"""``lamina weights``: learning on model weights (ProbeX)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

from lamina.cli._common import echo_json, new_app

app = new_app("Learning on model weights (ProbeX): what a model was trained on, from one layer.")
zoo_app = new_app("Model zoos: trees of fine-tuned image classifiers, built offline from real images.")
app.add_typer(zoo_app, name="zoo")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


@app.callback()
def _weights() -> None:
    """Learning on model weights (ProbeX): what a model was trained on, from one layer."""
    log = logging.getLogger("lamina.weights")
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):  # the library's warnings as `warning: ...`
        handler = _StderrHandler()
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        log.addHandler(handler)


@zoo_app.command("build")
def zoo_build(
    out: Path = typer.Option(..., "-o", "--out", help="Zoo folder (created; an interrupted build resumes here)."),
    config: str = typer.Option("benchmark", "--config", help="TOML file, or a bundled config: benchmark, small, dev."),
    workers: int = typer.Option(2, "--workers", help="Parallel worker processes (1 torch thread each)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Build (or resume) a zoo: pretrain the roots, then fine-tune every tree's models in parallel."""
    from lamina._validation import check_positive_int
    from lamina.weights.zoo import ZooConfig, build_zoo

    check_positive_int("--workers", workers)  # before the config is read
    summary = build_zoo(ZooConfig.load(config), out, workers=workers, quiet=quiet)
    echo_json(summary)


def _probex_config(r_u: int | None, r_v: int | None, r_t: int | None, epochs: int, seed: int):
    from lamina.weights.probex import ProbeXConfig

    dims = {k: v for k, v in (("r_u", r_u), ("r_v", r_v), ("r_t", r_t)) if v is not None}
    return ProbeXConfig(**dims, epochs=epochs, seed=seed)


@app.command("train")
def train(
    zoo: Path = typer.Argument(..., help="Zoo folder (built by `lamina weights zoo build`)."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for the trained probe (mixture of experts)."),
    layer: list[str] = typer.Option(None, "--layer", help="Candidate layer(s); default: sweep every layer."),
    heldout: str = typer.Option("", "--heldout", help="Comma-separated category indices never shown to a probe."),
    r_u: int = typer.Option(None, "--r-u", help="Number of probes U [default: ProbeXConfig's, 64]."),
    r_v: int = typer.Option(None, "--r-v", help="Width of the shared projection V [default: 64]."),
    r_t: int = typer.Option(None, "--r-t", help="Size of the model representation [default: 64]."),
    epochs: int = typer.Option(20, "--epochs", help="Training epochs per expert."),
    seed: int = typer.Option(0, "--seed", help="Seed of splits and initialisation."),
    threads: int = typer.Option(1, "--threads", help="torch threads (at most the cores you may use)."),
) -> None:
    """Discover the zoo's trees, train one ProbeX expert per tree (layer sweep) and the text alignment.

    Model files whose bytes no longer match their catalogue sha256 are dropped (a warning names them; "dropped"
    in the output counts them)."""
    import torch

    from lamina._validation import check_positive_int, check_seed
    from lamina.errors import InputError
    from lamina.weights.experts import ProbeXMixture, TrainConfig
    from lamina.weights.search import register_probe

    check_positive_int("--threads", threads)  # before torch.set_num_threads, which refuses 0 with a traceback
    check_seed("--seed", seed)
    check_positive_int("--epochs", epochs)
    torch.set_num_threads(threads)
    try:
        held = [int(x) for x in heldout.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--heldout: expected comma-separated integers, got {heldout!r}") from None
    cfg = TrainConfig(probex=_probex_config(r_u, r_v, r_t, epochs, seed), layers=layer or None, heldout=held,
                      seed=seed)
    mix = ProbeXMixture(cfg).fit_zoo(zoo, log=lambda m: typer.echo(m, err=True))
    mix.save(out, zoo=zoo)
    register_probe(zoo, out)
    echo_json({"probe": str(out), "trees": {t: {"layer": e["layer"], "val_map": round(e["val_map"], 4),
                                                "n_train": e["n_train"]} for t, e in mix.experts_.items()},
               "skipped": mix.skipped_, "dropped": {"count": len(mix.dropped_), "files": mix.dropped_}})


@app.command("predict")
def predict(
    probe: Path = typer.Argument(..., help="Probe folder (from `lamina weights train`)."),
    model: list[Path] = typer.Argument(..., help="Model file(s) (.safetensors)."),
    top: int = typer.Option(10, "--top", help="Categories to list per model (>= 1)."),
) -> None:
    """Which categories was each model trained on? Routes each file to its tree's expert."""
    from lamina.weights.experts import ProbeXMixture, check_top

    check_top(top)  # before loading anything
    mix = ProbeXMixture.load(probe)
    out = [mix.top_categories(path, top=top) for path in model]
    echo_json(out if len(out) > 1 else out[0])


@app.command("search")
def search(
    query: str = typer.Argument(None, help="Text, e.g. 'a photo of a sneaker with a white frame'."),
    zoo: Path = typer.Option(..., "--zoo", help="Zoo folder."),
    like: str = typer.Option(None, "--like", help="A model id of the zoo or a model file: find similar models."),
    probe: Path = typer.Option(None, "--probe", help="Probe folder (default: the one trained for the zoo)."),
    top: int = typer.Option(10, "--top", help="Number of models to return (>= 1)."),
) -> None:
    """Rank the zoo's models by a text query, or by likeness to a model (--like)."""
    from lamina.errors import InputError
    from lamina.weights.experts import ProbeXMixture, check_top
    from lamina.weights.search import probe_of, search_like, search_text

    if (query is None) == (like is None):
        raise InputError("search: give either a text query or --like MODEL (not both)")
    check_top(top)
    mix = ProbeXMixture.load(probe or probe_of(zoo))
    res = search_text(mix, query, top=top) if query is not None else search_like(mix, like, top=top)
    echo_json({"query": query, "like": like, "results": res})


@app.command("evaluate")
def evaluate(
    zoo: Path = typer.Argument(..., help="Zoo folder."),
    out: Path = typer.Option(..., "-o", "--out", help="Report folder (JSON, Markdown, PNG)."),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Comma-separated seeds (splits and initialisation)."),
    epochs: int = typer.Option(20, "--epochs", help="Training epochs of ProbeX and the dense probe."),
    workers: int = typer.Option(2, "--workers", help="Parallel worker processes (1 torch thread each)."),
    max_models: int = typer.Option(None, "--max-models", help="Use at most this many models per tree."),
    dense_seeds: int = typer.Option(1, "--dense-seeds", help="Seeds for the (slow) dense logistic probe."),
) -> None:
    """Evaluate ProbeX, the baselines, tree discovery and zero-shot search on a zoo; write the report."""
    from lamina._validation import check_positive_int, check_seed
    from lamina.errors import InputError
    from lamina.weights.evaluate import EvalConfig, evaluate_zoo
    from lamina.weights.probex import ProbeXConfig
    from lamina.weights.report import write_report

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--seeds: expected comma-separated integers, got {seeds!r}") from None
    if not seed_list:
        raise InputError(f"--seeds: expected at least one seed, got {seeds!r}")
    for s in seed_list:  # the flags' names in the messages; EvalConfig checks the same again
        check_seed("--seeds", s)
    check_positive_int("--epochs", epochs)
    check_positive_int("--workers", workers)
    check_positive_int("--dense-seeds", dense_seeds)
    if max_models is not None:
        check_positive_int("--max-models", max_models)
    cfg = EvalConfig(seeds=seed_list, probex=ProbeXConfig(epochs=epochs), workers=workers,
                     max_models_per_tree=max_models, dense_seeds=dense_seeds)
    rep = evaluate_zoo(zoo, cfg, log=lambda m: typer.echo(m, err=True))
    files = write_report(rep, out)
    typer.echo((out / "report.md").read_text())
    echo_json({k: str(v) for k, v in files.items()})

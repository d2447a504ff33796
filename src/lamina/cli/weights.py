"""``lamina weights``: learning on model weights (ProbeX)."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

import typer

from lamina.cli._common import echo_json, echo_written, name_values, new_app, positive_ints, quiet_option
from lamina.errors import LaminaError

app = new_app("Learning on model weights (ProbeX): what a model was trained on, from one layer.")
zoo_app = new_app("Model zoos: trees of fine-tuned image classifiers, built offline from real images.")
app.add_typer(zoo_app, name="zoo")
index_app = new_app("Search indexes on disk: build once, append new models without re-reading the others.")
app.add_typer(index_app, name="index")
catalogue_app = new_app("Catalogues of your own models (any format lamina reads), so that `train` works on them.")
app.add_typer(catalogue_app, name="catalogue")


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
    config: str = typer.Option("benchmark", "--config",
                               help="TOML file, or a bundled config: benchmark, small, dev, transformer, "
                                    "transformer-wide, minilm-wordnet (all-MiniLM-L6-v2 x WordNet: PEFT LoRA "
                                    "and full fine-tunes), minilm-wordnet-tiny."),
    workers: int = typer.Option(2, "--workers", help="Parallel worker processes (1 torch thread each): the local "
                                                     "pool's, or the local Dask cluster's with --dask."),
    dask: bool = typer.Option(False, "--dask", help="Fine-tune on Dask: a local cluster of --workers processes, "
                                                    "or the cluster of --scheduler."),
    scheduler: str = typer.Option(None, "--scheduler", help="Fine-tune on the Dask cluster of this scheduler "
                                                            "(tcp://host:8786; implies --dask). Every worker must "
                                                            "see the zoo folder at the same path."),
    quiet: bool = quiet_option(),
) -> None:
    """Build (or resume) a zoo: pretrain the roots, then fine-tune every tree's models in parallel (local processes,
    or a Dask cluster with --dask / --scheduler; this process alone writes the catalogue either way)."""
    from lamina._validation import check_positive_int
    from lamina.weights.zoo.build import ZooConfig, build_zoo

    check_positive_int("--workers", workers)  # before the config is read
    summary = build_zoo(ZooConfig.load(config), out, workers=workers, quiet=quiet,
                        scheduler=_scheduler(dask, scheduler))
    echo_written("weights zoo build", [out], {"zoo": str(out), "config": config, **summary})


def _scheduler(dask: bool, address: str | None) -> str | None:
    """``build_zoo`` / ``write_predictions``'s ``scheduler`` from --dask and --scheduler."""
    from lamina.errors import InputError

    if address is not None and not address.strip():
        raise InputError("--scheduler: expected an address such as tcp://host:8786, got ''")
    return address if address is not None else ("local" if dask else None)


def _probex_config(r_u: int | None, r_v: int | None, r_t: int | None, epochs: int, seed: int, **more):
    from lamina.weights.probes.probex import ProbeXConfig

    dims = {k: v for k, v in (("r_u", r_u), ("r_v", r_v), ("r_t", r_t)) if v is not None}
    return ProbeXConfig(**dims, epochs=epochs, seed=seed, **{k: v for k, v in more.items() if v is not None})


def _text_ranks(text: str) -> list[int]:
    """--text-ranks: '' (the readout's fixed rank) or comma-separated ranks >= 1."""
    return positive_ints(text, "--text-ranks") if text.strip() else []


def _probex_grid(text: str) -> list[dict]:
    """``"activation=linear,weight_decay=1e-3; r_u=32"`` -> one dict of ProbeX settings per ``;``-separated entry."""
    from lamina.errors import InputError

    grid = []
    for entry in (e.strip() for e in text.split(";")):
        if not entry:
            continue
        opts = {}
        for key, value in name_values(entry, "--probex-grid").items():
            key = key.replace("-", "_")
            if key in opts:
                raise InputError(f"--probex-grid: {key!r} is set twice in {entry!r}")
            opts[key] = {"true": True, "false": False}.get(value.lower(), value) if isinstance(value, str) else value
        if not opts:
            raise InputError(f"--probex-grid: expected NAME=VALUE items, got {entry!r}")
        grid.append(opts)
    return grid


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
    activation: str = typer.Option(None, "--activation",
                                   help="After the shared projection: relu (the paper's) or linear [default: relu]."),
    weight_decay: float = typer.Option(None, "--weight-decay", help="Adam weight decay [default: 1e-5]."),
    lr: float = typer.Option(None, "--lr", help="Adam step size [default: 3e-3]."),
    dropout: float = typer.Option(None, "--dropout", help="Dropout before the encoder [default: 0.5]."),
    init: str = typer.Option(
        None, "--init",
        help="Start of each expert: pca (probes at the layer's principal directions), random, or ridge (the "
             "closed-form ridge solution in ProbeX's factors; needs --activation linear; --epochs 0 keeps it "
             "untrained) [default: pca]."),
    probex_grid: str = typer.Option(
        "", "--probex-grid",
        help="Other ProbeX settings the layer sweep may choose per tree, ';' between candidates, e.g. "
             "'activation=linear,weight_decay=1e-3,epochs=60' (LoRA trees read better so)."),
    reader: str = typer.Option(
        "probex", "--reader",
        help="What gives a tree's seen-category probabilities: probex, low-rank (per category, a few probes of the "
             "expert's layer; reads LoRA trees better) or auto (the better of the two on validation)."),
    low_rank: int = typer.Option(2, "--low-rank", help="Probes per category of the low-rank reader."),
    text_ranks: str = typer.Option(
        "", "--text-ranks",
        help="Ranks the text readout chooses from per tree, e.g. '1,2,4', by zero-shot mAP on folds of the seen "
             "categories (validation models); default: its fixed rank 4."),
    seed: int = typer.Option(0, "--seed", help="Seed of splits and initialisation."),
    threads: int = typer.Option(1, "--threads", help="torch threads (at most the cores you may use)."),
) -> None:
    """Discover the zoo's trees, train one ProbeX expert per tree (layer sweep) and the text alignment.

    Model files whose bytes no longer match their catalogue sha256 are dropped (a warning names them; "dropped"
    in the output counts them)."""
    import torch

    from lamina._validation import check_choice, check_positive_int, check_seed
    from lamina.errors import InputError
    from lamina.weights.experts import READERS, ProbeXMixture, TrainConfig
    from lamina.weights.serve.search import register_probe

    check_positive_int("--threads", threads)  # before torch.set_num_threads, which refuses 0 with a traceback
    check_seed("--seed", seed)
    check_positive_int("--epochs", epochs, minimum=0 if init == "ridge" else 1)
    check_positive_int("--low-rank", low_rank)
    check_choice("--reader", reader, READERS)
    torch.set_num_threads(threads)
    try:
        held = [int(x) for x in heldout.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--heldout: expected comma-separated integers, got {heldout!r}") from None
    probex = _probex_config(r_u, r_v, r_t, epochs, seed, activation=activation, weight_decay=weight_decay, init=init,
                            lr=lr, dropout=dropout)
    cfg = TrainConfig(probex=probex, probex_grid=_probex_grid(probex_grid), layers=layer or None, heldout=held,
                      seed=seed, reader=reader, low_rank=low_rank, text_ranks=_text_ranks(text_ranks))
    mix = ProbeXMixture(cfg).fit_zoo(zoo, log=lambda m: typer.echo(m, err=True))
    mix.save(out, zoo=zoo)
    register_probe(zoo, out)
    trees = {t: {"layer": e["layer"], "reader": e["reader"], "val_map": round(e["val_map"], 4), "n_train": e["n_train"],
                 "text_rank": e["aligner"].rank,
                 **{k: round(e[k], 4) for k in ("probex_val_map", "low_rank_val_map") if k in e}}
             for t, e in mix.experts_.items()}
    from lamina._io import read_checkpoint_config

    echo_written("weights train", [out], {
        "probe": str(out), "zoo": str(zoo), "trees": trees, "skipped": mix.skipped_,
        "dropped": {"count": len(mix.dropped_), "files": mix.dropped_},
        "probe_sha256": read_checkpoint_config(out)["sha256"], "seed": seed})


@contextlib.contextmanager
def _bar(what: str, total: int, quiet: bool):
    """A rich progress bar on stderr; yields the callback that advances it by n models."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True, quiet=quiet), transient=False) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)


def _sources(model: list[Path] | None, folder: Path | None, zoo: Path | None) -> list:
    from lamina.errors import InputError
    from lamina.weights.serve.predict import Source, catalogue_sources, folder_sources

    out = [Source(p) for p in model or []]
    if folder is not None:
        out += folder_sources(folder)
    if zoo is not None:
        out += catalogue_sources(zoo)
    if not out:
        raise InputError("model: give model file(s), --dir FOLDER or --zoo ZOO")
    return out


@app.command("predict")
def predict(
    probe: Path = typer.Argument(..., help="Probe folder (from `lamina weights train`)."),
    model: list[Path] = typer.Argument(None, help="Model files (.safetensors, .pt, .bin) or model folders "
                                                  "(Hugging Face, PEFT adapter)."),
    top: int = typer.Option(10, "--top", help="Categories to list per model (>= 1)."),
    folder: Path = typer.Option(None, "--dir", help="Also every model file and model folder under this folder."),
    zoo: Path = typer.Option(None, "--zoo", help="Also every model of this zoo's catalogue (rows get its ids)."),
    out: Path = typer.Option(None, "-o", "--out", help="Write JSON Lines here (streamed, atomic; unreadable files "
                                                       "get an error row) instead of JSON on stdout."),
    batch_size: int = typer.Option(64, "--batch-size", help="Models read, routed and probed together (>= 1)."),
    dask: bool = typer.Option(False, "--dask", help="Predict the batches on Dask: a local cluster of --workers "
                                                    "processes, or the cluster of --scheduler."),
    scheduler: str = typer.Option(None, "--scheduler", help="Predict on the Dask cluster of this scheduler "
                                                            "(tcp://host:8786; implies --dask). Every worker must "
                                                            "see the probe and the model files at the same paths."),
    workers: int = typer.Option(2, "--workers", help="Processes of the local Dask cluster (with --dask)."),
    quiet: bool = quiet_option(),
) -> None:
    """Which categories was each model trained on? Routes each file to its tree's expert, in batches (here, or
    on a Dask cluster with --dask / --scheduler)."""
    from lamina._validation import check_positive_int
    from lamina.weights.experts import ProbeXMixture, check_top
    from lamina.weights.serve.predict import iter_predictions, top_row, write_predictions

    check_top(top)  # before loading anything
    check_positive_int("--batch-size", batch_size)
    check_positive_int("--workers", workers)
    on = _scheduler(dask, scheduler)
    sources = _sources(model, folder, zoo)
    mix = ProbeXMixture.load(probe)
    with _bar("predicting", len(sources), quiet or len(sources) == 1) as advance:
        if out is not None:
            summary = write_predictions(mix, sources, out, top=top, batch_size=batch_size, progress=advance,
                                        scheduler=on, workers=workers)
            echo_written("weights predict", [out], {**summary, "probe": str(probe), "probe_sha256": mix.sha256_})
            if summary["models"] == 0:
                raise LaminaError(f"predict: no model could be read ({summary['errors']} errors, see {out})")
            return
        rows = [top_row(mix, r, top) for r in iter_predictions(mix, sources, batch_size=batch_size,
                                                                 progress=advance, scheduler=on, workers=workers)]
    echo_json(rows if len(rows) > 1 else rows[0])


@app.command("search")
def search(
    query: str = typer.Argument(None, help="Text, e.g. 'a photo of a sneaker with a white frame'."),
    zoo: Path = typer.Option(None, "--zoo", help="Zoo folder (searches the index its probe was trained with)."),
    like: str = typer.Option(None, "--like", help="A model id of the zoo or a model file: find similar models."),
    probe: Path = typer.Option(None, "--probe", help="Probe folder (default: the zoo's, or the index's)."),
    index: Path = typer.Option(None, "--index", help="Search this index file (`lamina weights index build`)."),
    top: int = typer.Option(10, "--top", help="Number of models to return (>= 1)."),
) -> None:
    """Rank the zoo's (or an index's) models by a text query, or by likeness to a model (--like)."""
    from lamina.errors import InputError
    from lamina.weights.experts import ProbeXMixture, check_top
    from lamina.weights.serve.index import ModelIndex
    from lamina.weights.serve.search import probe_of, search_like, search_text

    if (query is None) == (like is None):
        raise InputError("search: give either a text query or --like MODEL (not both)")
    if (zoo is None) == (index is None):
        raise InputError("search: give either --zoo ZOO or --index FILE (not both)")
    check_top(top)
    ix = ModelIndex.load(index) if index is not None else None
    if probe is None:
        probe = probe_of(zoo) if ix is None else Path(ix.probe["path"])
    mix = ProbeXMixture.load(probe)
    res = (search_text(mix, query, top=top, index=ix) if query is not None
           else search_like(mix, like, top=top, index=ix))
    echo_json({"query": query, "like": like, "results": res})


@index_app.command("build")
def index_build(
    out: Path = typer.Option(..., "-o", "--out", help="Index file to write (atomically; replaced if it exists)."),
    zoo: Path = typer.Option(None, "--zoo", help="Index every model of this zoo's catalogue (ids from it)."),
    folder: Path = typer.Option(None, "--dir", help="Index every model file and model folder under this folder."),
    probe: Path = typer.Option(None, "--probe", help="Probe folder (default: the one trained for --zoo)."),
    dims: int = typer.Option(256, "--dims", help="Text-feature basis size per tree (2 bytes per model each)."),
    batch_size: int = typer.Option(64, "--batch-size", help="Models read, routed and probed together (>= 1)."),
    quiet: bool = quiet_option(),
) -> None:
    """Build a search index file: predicted categories and compressed text features of every model, float16."""
    from lamina._validation import check_positive_int
    from lamina.errors import InputError
    from lamina.weights.experts import ProbeXMixture
    from lamina.weights.serve.index import build_index
    from lamina.weights.serve.search import probe_of

    check_positive_int("--batch-size", batch_size)
    check_positive_int("--dims", dims)
    if probe is None and zoo is None:
        raise InputError("--probe: needed when indexing a folder (or give --zoo with a trained probe)")
    sources = _sources(None, folder, zoo)
    mix = ProbeXMixture.load(probe or probe_of(zoo))
    with _bar("indexing", len(sources), quiet) as advance:
        ix, skipped = build_index(mix, sources, dims=dims, batch_size=batch_size, progress=advance)
    if not len(ix):
        raise InputError(f"index: no model could be read ({len(skipped)} skipped); nothing written")
    ix.save(out)
    echo_written("weights index build", [out], {"index": str(out), "models": len(ix), "bytes": out.stat().st_size,
                                                "skipped": skipped, "probe": ix.probe.get("path"),
                                                "probe_sha256": ix.probe.get("sha256")})


@index_app.command("add")
def index_add(
    index: Path = typer.Argument(..., help="Index file (from `lamina weights index build`)."),
    model: list[Path] = typer.Argument(None, help="Model file(s) to add."),
    ids: list[str] = typer.Option(None, "--id", help="Id of each model file, in order (default: its file name)."),
    zoo: Path = typer.Option(None, "--zoo", help="Also the catalogue's models not yet in the index."),
    probe: Path = typer.Option(None, "--probe", help="Probe folder (default: the one that built the index)."),
    batch_size: int = typer.Option(64, "--batch-size", help="Models read, routed and probed together (>= 1)."),
    quiet: bool = quiet_option(),
) -> None:
    """Append models to an index file without re-reading the indexed ones (the file is replaced atomically)."""
    from lamina._validation import check_positive_int
    from lamina.errors import InputError
    from lamina.weights.experts import ProbeXMixture
    from lamina.weights.serve.index import ModelIndex, add_to_index
    from lamina.weights.serve.predict import Source, catalogue_sources

    check_positive_int("--batch-size", batch_size)
    model = model or []
    if ids and len(ids) != len(model):
        raise InputError(f"--id: {len(ids)} given for {len(model)} model file(s); give one per file or none")
    sources = [Source(p, i) for p, i in zip(model, ids or [None] * len(model), strict=True)]
    ix = ModelIndex.load(index)
    have = set(ix.ids)
    sources += [s for s in catalogue_sources(zoo) if s.id not in have] if zoo is not None else []
    if not model and zoo is None:
        raise InputError("model: give model file(s) or --zoo ZOO")
    mix = ProbeXMixture.load(probe or Path(ix.probe["path"]))
    with _bar("indexing", len(sources), quiet) as advance:
        summary = add_to_index(index, mix, sources, batch_size=batch_size, progress=advance)
    echo_written("weights index add", [index], {**summary, "probe_sha256": mix.sha256_})
    if summary["added"] == 0:
        raise LaminaError(f"index add: nothing was added to {index} ({len(summary['skipped'])} models skipped, "
                          f"{len(sources)} given)")


@app.command("evaluate")
def evaluate(
    zoo: Path = typer.Argument(..., help="Zoo folder."),
    out: Path = typer.Option(..., "-o", "--out", help="Report folder (JSON, Markdown, PNG)."),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Comma-separated seeds (splits and initialisation)."),
    epochs: int = typer.Option(20, "--epochs", help="Training epochs of ProbeX and the dense probe."),
    workers: int = typer.Option(2, "--workers", help="Parallel worker processes (1 torch thread each)."),
    max_models: int = typer.Option(None, "--max-models", help="Use at most this many models per tree."),
    dense_seeds: int = typer.Option(1, "--dense-seeds", help="Seeds for the (slow) dense logistic probe."),
    low_rank: int = typer.Option(2, "--low-rank", help="Probes per category of the low-rank probe."),
    probex_grid: str = typer.Option(
        "", "--probex-grid",
        help="Other ProbeX settings the validation sweep may choose per tree, ';' between candidates, e.g. "
             "'activation=linear,weight_decay=1e-3,epochs=60'; the dense logistic probe then trains with the same."),
    text_ranks: str = typer.Option(
        "", "--text-ranks",
        help="Ranks the text readout chooses from per seed, e.g. '1,2,4', by zero-shot mAP on folds of the seen "
             "categories (validation models); default: its fixed rank 4."),
) -> None:
    """Evaluate ProbeX, the baselines, tree discovery and zero-shot search on a zoo; write the report."""
    from lamina._validation import check_positive_int, check_seed
    from lamina.errors import InputError
    from lamina.weights.eval.evaluate import EvalConfig, evaluate_zoo
    from lamina.weights.eval.report import write_report
    from lamina.weights.probes.probex import ProbeXConfig

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
    check_positive_int("--low-rank", low_rank)
    if max_models is not None:
        check_positive_int("--max-models", max_models)
    cfg = EvalConfig(seeds=seed_list, probex=ProbeXConfig(epochs=epochs), workers=workers,
                     max_models_per_tree=max_models, dense_seeds=dense_seeds, low_rank=low_rank,
                     probex_grid=_probex_grid(probex_grid), text_ranks=_text_ranks(text_ranks))
    rep = evaluate_zoo(zoo, cfg, log=lambda m: typer.echo(m, err=True))
    files = write_report(rep, out)
    typer.echo((out / "report.md").read_text(), err=True)  # stdout: the JSON below
    echo_written("weights evaluate", list(files.values()), {**{k: str(v) for k, v in files.items()}, "zoo": str(zoo),
                                                            "seeds": seed_list, "epochs": epochs})


@catalogue_app.command("add")
def catalogue_add(
    zoo: Path = typer.Argument(..., help="Catalogue folder (created when missing; the models stay where they are)."),
    model: list[Path] = typer.Argument(None, help="Model files or folders trained on --categories."),
    categories: str = typer.Option(None, "--categories", help="Comma-separated names of the categories the models "
                                                              "were trained on (e.g. 'bird,fish')."),
    ids: list[str] = typer.Option(None, "--id", help="Catalogue id per model (default: the file or folder name)."),
    tree: str = typer.Option(None, "--tree", help="Label for the models' tree (default: 'user'; trees are found "
                                                  "from the weights)."),
    csv: Path = typer.Option(None, "--csv", help="A CSV with columns path, categories (names separated by ';'), "
                                                 "and optionally id, tree: one model per row."),
) -> None:
    """Catalogue models lamina did not build, with what each was trained on (then: lamina weights train ZOO)."""
    import csv as csv_mod

    from lamina.errors import InputError
    from lamina.weights.zoo.catalogue import add_user_models

    model = model or []
    if ids and len(ids) != len(model):
        raise InputError(f"--id: {len(ids)} given for {len(model)} model(s); give one per model or none")
    if model and not categories:
        raise InputError("--categories: give the categories the models were trained on (e.g. --categories bird,fish)")
    entries = [{"path": p, "categories": categories, "id": i, "tree": tree}
               for p, i in zip(model, ids or [None] * len(model), strict=True)]
    if csv is not None:
        try:
            with open(csv, newline="", encoding="utf-8") as fh:
                rows = list(csv_mod.DictReader(fh))
        except (OSError, UnicodeDecodeError, csv_mod.Error) as exc:
            raise InputError(f"--csv: cannot read {csv} ({exc})") from None
        if rows and not {"path", "categories"} <= set(rows[0]):
            raise InputError(f"--csv: {csv} needs columns path and categories, has {sorted(rows[0])}")
        base = csv.parent
        entries += [{"path": base / r["path"] if not Path(r["path"]).is_absolute() else Path(r["path"]),
                     "categories": [c for c in (r["categories"] or "").split(";")], "id": r.get("id") or None,
                     "tree": r.get("tree") or tree} for r in rows]
    if not entries:
        raise InputError("model: give model files or folders with --categories, or --csv FILE")
    summary = add_user_models(zoo, entries)
    echo_written("weights catalogue add", [zoo], summary)
    if not summary["added"] and not summary["unchanged"]:
        raise LaminaError(f"catalogue add: nothing was added to {zoo}")

"""``lamina geo finetune``: fine-tune the climate encoder with a one-layer head on a labelled points table.

A plain function, registered on the ``lamina geo`` sub-app by :mod:`lamina.cli.geo`. Thin: parses options, calls
:func:`lamina.geo.finetune.finetune`, saves the folder and prints JSON describing what was written. Applying the
result: ``lamina geo probe-predict DIR points.csv -o pred.parquet`` (the folder is also an encoder checkpoint:
``lamina geo embed --checkpoint DIR``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from lamina.cli._common import echo_written, progress_option
from lamina.cli._geo_options import CHECKPOINT, WRAP


def finetune_cmd(
    table: Path = typer.Argument(..., metavar="TABLE", help="Labelled points: CSV or Parquet with lon / lat columns, "
                                 "or GeoParquet / GeoPackage points in any CRS."),
    target: list[str] = typer.Option(..., "--target", "-t", help="Target column (repeat for a multi-output "
                                     "regression)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder: the fine-tuned encoder checkpoint, "
                                "head/ and finetune.json (a new path, an empty folder or an earlier output)."),
    lon_col: str = typer.Option("lon", "--lon-col", help="Longitude column (degrees) of a table without geometry."),
    lat_col: str = typer.Option("lat", "--lat-col", help="Latitude column (degrees) of a table without geometry."),
    kind: str = typer.Option("auto", "--kind", help="auto | classification | regression (auto: text, true/false "
                             "and integers with at most 50 values are classes; real numbers are regressed)."),
    train: str = typer.Option("head", "--train", help="head (encoder frozen) | last (its last layers trained too) "
                              "| all (all of it trained too)."),
    head_init: str = typer.Option("zero", "--head-init", help="zero (a zero head) | probe (start from geo "
                                  "evaluate's cross-validated linear probe, kept unless training beats it)."),
    checkpoint: Path | None = CHECKPOINT,
    month: int | None = typer.Option(None, "--month", "-m", help="Month 1..12 whose embedding the head reads; "
                                     "omit for months 3, 6, 9, 12 concatenated."),
    epochs: int = typer.Option(50, "--epochs", help="Maximum epochs per stage (head, then encoder)."),
    lr: float = typer.Option(1e-3, "--lr", help="AdamW learning rate of the head."),
    encoder_lr: float | None = typer.Option(None, "--encoder-lr", help="Learning rate of the encoder (default: "
                                            "lr / 10)."),
    batch_size: int = typer.Option(256, "--batch-size", help="Points per optimiser step."),
    weight_decay: float = typer.Option(1e-4, "--weight-decay", help="AdamW weight decay of the head."),
    patience: int = typer.Option(8, "--patience", help="Epochs without a better validation loss before stopping."),
    block_deg: float = typer.Option(10.0, "--block-deg", help="Size in degrees of the spatial blocks held out "
                                    "for validation (smaller for regional data)."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Share of points in the validation blocks."),
    seed: int = typer.Option(0, "--seed", help="Seed of the validation split and the batch order."),
    threads: int | None = typer.Option(None, "--threads", help="Torch threads (default: torch's)."),
    wrap_lon: bool = WRAP,
    progress: bool = progress_option(),
) -> None:
    """Fine-tune the climate encoder and a one-layer head on a labelled points table; save them as one folder."""
    from lamina._io import read_checkpoint_config
    from lamina.geo.finetune import FineTuneConfig, finetune
    from lamina.geo.finetune_model import check_output_folder

    cfg = FineTuneConfig(train=train, head_init=head_init, month=month, epochs=epochs, lr=lr, encoder_lr=encoder_lr,
                         batch_size=batch_size, weight_decay=weight_decay, patience=patience, block_deg=block_deg,
                         val_fraction=val_fraction, seed=seed)  # checked before any work
    check_output_folder(output)
    model = finetune(table, target=target, lon_col=lon_col, lat_col=lat_col, kind=kind, checkpoint=checkpoint,
                     wrap_lon=wrap_lon, threads=threads, progress=progress, config=cfg)
    model.save(output)
    ft, parent = model.provenance["finetune"], model.provenance["parent"]
    val = ft["validation"]
    metric = val["metrics"]["metric"]
    typer.echo(f"wrote {output}: {ft['task']['kind']} on {ft['data']['rows_used']} points, validation "
               f"{metric} {val['metrics'][metric]:.4f}", err=True)
    echo_written("geo finetune", [output], {
        "output": str(output), "what": "finetune", "train": ft["train"], "head_init": ft["head_init"]["kind"],
        "rows": ft["data"]["rows_used"], "n_train": ft["split"]["n_train"], "n_val": ft["split"]["n_val"],
        **ft["task"],
        "metric": metric, "value": val["metrics"][metric], "validation": val["metrics"],
        "best_stage": val["best_stage"], "best_epoch": val["best_epoch"], "epochs_run": val["epochs_run"],
        "stopped": val["stopped"],
        "parent_checkpoint": parent["checkpoint"], "parent_sha256": parent["sha256"],
        "checkpoint_sha256": read_checkpoint_config(output)["sha256"], "data_sha256": ft["data"]["sha256"],
        "lamina_version": ft["lamina_version"], "seconds": ft["seconds"],
    })

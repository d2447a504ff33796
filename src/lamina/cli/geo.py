"""``lamina geo``: climate implicit embeddings (Climplicit).

Commands are plain functions, registered on the sub-app explicitly at the end of this module (:data:`COMMANDS`),
including the evaluation commands of :mod:`lamina.cli.geo_evaluate` and ``finetune`` of
:mod:`lamina.cli.geo_finetune`.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from lamina.cli import geo_evaluate, geo_finetune
from lamina.cli._common import echo_json, echo_written, fix_mmap_threshold, name_values, new_app, progress_option
from lamina.cli._geo_options import CHECKPOINT, WRAP, checkpoint_provenance
from lamina.errors import InputError

app = new_app("Climate implicit embeddings: (lon, lat, month) -> embedding anywhere on Earth.")


def _encoder(checkpoint: Path | None):
    from lamina.geo.encoder import load

    return load(checkpoint)


def _points_or_table(input_path, lon, lat, output):
    if input_path is None:
        if not lon or not lat:
            raise InputError("give a points table (CSV / Parquet) or --lon and --lat")
        if output is not None:
            raise InputError("--output needs an input table; for single points the result is printed as JSON")
        return None
    if lon or lat:
        raise InputError("give either a points table or --lon/--lat, not both")
    if output is None:
        raise InputError("--output/-o is required with an input table (e.g. -o out.parquet)")
    return Path(input_path)


def embed(
    input_path: Path | None = typer.Argument(None, metavar="[POINTS]", help="CSV, Parquet, GeoParquet or GeoPackage "
                                             "(.gpkg) table of points (geometries in any CRS); or a folder / quoted "
                                             "glob of such partitions, embedded on Dask into a folder."),
    lon: list[float] | None = typer.Option(None, "--lon", help="Longitude(s), degrees east (repeatable)."),
    lat: list[float] | None = typer.Option(None, "--lat", help="Latitude(s), degrees north (repeatable)."),
    month: int | None = typer.Option(None, "--month", "-m", help="Month 1..12; omit for months 3,6,9,12 (1024-d)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output table (.parquet or .csv; GeoParquet "
                                       ".parquet or .gpkg for a geometry input, which keeps its geometry)."),
    lon_col: str = typer.Option("lon", help="Longitude column of the input table."),
    lat_col: str = typer.Option("lat", help="Latitude column of the input table."),
    month_col: str | None = typer.Option(None, help="Month column of the input table (overrides --month)."),
    chunk_rows: int = typer.Option(65_536, min=1, help="Rows per streamed chunk."),
    keep_columns: bool = typer.Option(True, help="Copy the input columns into the output."),
    precision: str = typer.Option("float32", help="float32 or bfloat16."),
    wrap_lon: bool = WRAP,
    checkpoint: Path | None = CHECKPOINT,
    progress: bool = progress_option(),
    scheduler: str | None = typer.Option(None, help="Partitioned input: address of a running dask.distributed "
                                         "scheduler (tcp://host:8786); default: a local cluster."),
    workers: int = typer.Option(2, min=1, help="Partitioned input: processes of the local Dask cluster."),
    layer: str | None = typer.Option(None, "--layer", help="Layer of a GeoPackage input (required when the file "
                                     "has several)."),
) -> None:
    """Climate embeddings of points: JSON for --lon/--lat, a table for a points file, a folder of tables for a
    folder or glob of partitions (on Dask: a local cluster, or --scheduler)."""
    table = _points_or_table(input_path, lon, lat, output)
    from lamina.geo.scale import embed_partitions, is_partitioned

    if table is not None and is_partitioned(table):
        info = embed_partitions(str(table), output, checkpoint=checkpoint, month=month, month_col=month_col,
                                lon_col=lon_col, lat_col=lat_col, wrap_lon=wrap_lon, keep_columns=keep_columns,
                                precision=precision, chunk_rows=chunk_rows, scheduler=scheduler, workers=workers,
                                progress=progress, layer=layer)
        skipped = f" ({info['skipped']} already done)" if info["skipped"] else ""
        typer.echo(f"wrote {info['rows']} rows in {info['partitions'] - info['skipped']} partitions to "
                   f"{output}{skipped}", err=True)
        echo_written("geo embed", [output], {**info, "output": str(output), "what": "embed",
                                             **checkpoint_provenance(checkpoint)})
        return
    if scheduler is not None:
        raise InputError("--scheduler needs a folder or a glob of partitions as input")
    if layer is not None and table is None:
        raise InputError("--layer needs a GeoPackage (.gpkg) input")
    enc = _encoder(checkpoint)
    if table is None:
        emb = enc.embed(lon=lon, lat=lat, month=month, wrap_lon=wrap_lon, precision=precision)
        from lamina.geo.embed import encoder_provenance

        echo_json({"lon": lon, "lat": lat, "month": month if month is not None else [3, 6, 9, 12],
                   "dim": int(emb.shape[1]), "embedding": [[round(float(v), 6) for v in row] for row in emb],
                   **encoder_provenance(enc)})
        return
    from lamina.geo.embed import process_table

    fix_mmap_threshold()

    n = process_table(enc, table, output, what="embed", lon_col=lon_col, lat_col=lat_col, month_col=month_col,
                      month=month, chunk_rows=chunk_rows, wrap_lon=wrap_lon, keep_columns=keep_columns,
                      precision=precision, progress=progress, layer=layer)
    typer.echo(f"wrote {n} rows to {output}", err=True)
    echo_written("geo embed", _table_files(output), _written(enc, output, n, "embed"))


def reconstruct(
    input_path: Path | None = typer.Argument(None, metavar="[POINTS]", help="CSV or Parquet table of points."),
    lon: list[float] | None = typer.Option(None, "--lon", help="Longitude(s), degrees east (repeatable)."),
    lat: list[float] | None = typer.Option(None, "--lat", help="Latitude(s), degrees north (repeatable)."),
    month: int | None = typer.Option(None, "--month", "-m", help="Month 1..12."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output table (.parquet or .csv)."),
    lon_col: str = typer.Option("lon"),
    lat_col: str = typer.Option("lat"),
    month_col: str | None = typer.Option(None),
    chunk_rows: int = typer.Option(65_536, min=1),
    keep_columns: bool = typer.Option(True),
    wrap_lon: bool = WRAP,
    checkpoint: Path | None = CHECKPOINT,
    progress: bool = progress_option(),
    layer: str | None = typer.Option(None, "--layer", help="Layer of a GeoPackage input (required when the file "
                                     "has several)."),
) -> None:
    """The pretraining variables as the encoder reconstructs them, in physical units."""
    table = _points_or_table(input_path, lon, lat, output)
    if layer is not None and table is None:
        raise InputError("--layer needs a GeoPackage (.gpkg) input")
    enc = _encoder(checkpoint)
    if table is None:
        if month is None:
            raise InputError("month: --month 1..12 is required (the variables are monthly)")
        rec = enc.reconstruct(lon=lon, lat=lat, month=month, wrap_lon=wrap_lon)
        echo_json({"lon": lon, "lat": lat, "month": month,
                   "units": {v.name: v.units for v in enc.variables},
                   "values": [{v.name: round(float(x), 4) for v, x in zip(enc.variables, row, strict=True)}
                              for row in rec]})
        return
    from lamina.geo.embed import process_table

    fix_mmap_threshold()

    n = process_table(enc, table, output, what="reconstruct", lon_col=lon_col, lat_col=lat_col,
                      month_col=month_col, month=month, chunk_rows=chunk_rows, wrap_lon=wrap_lon,
                      keep_columns=keep_columns, progress=progress, layer=layer)
    typer.echo(f"wrote {n} rows to {output}", err=True)
    echo_written("geo reconstruct", _table_files(output), _written(enc, output, n, "reconstruct"))


def raster(
    bbox: tuple[float, float, float, float] = typer.Option(
        ..., "--bbox", metavar="W S E N", help="Bounding box in degrees (W > E crosses the antimeridian)."),
    resolution: float = typer.Option(..., "--resolution", "-r", help="Pixel size in degrees."),
    output: Path = typer.Option(..., "--output", "-o",
                                help="Output .tif (a Cloud-Optimized GeoTIFF) or .zarr (a Zarr store)."),
    month: int | None = typer.Option(None, "--month", "-m", help="Month 1..12; omit for months 3,6,9,12."),
    pca: int | None = typer.Option(None, "--pca", help="Write K PCA bands (PCA stored in the file's metadata)."),
    dtype: str = typer.Option("float32", help="float32 or float16 band values."),
    force: bool = typer.Option(False, "--force", help="Allow outputs above 2e9 values (pixels x bands)."),
    block_rows: int | None = typer.Option(None, min=1, help="Rows computed per block (default: ~16 M values)."),
    seed: int = typer.Option(0, help="Seed of the PCA's pixel sample."),
    precision: str = typer.Option("float32", help="float32 or bfloat16 network precision."),
    checkpoint: Path | None = CHECKPOINT,
    progress: bool = progress_option(),
) -> None:
    """Embedding raster over a bbox: a tiled COG with overviews or a Zarr store, resumable after a kill."""
    from lamina.geo.raster_file import check_raster_output, write_raster

    check_raster_output(output)  # before loading anything
    enc = _encoder(checkpoint)
    info = write_raster(enc, output, bbox=bbox, resolution=resolution, month=month, pca=pca, dtype=dtype,
                        force=force, block_rows=block_rows, seed=seed, precision=precision, progress=progress)
    resumed = f", resumed after {info['resumed_blocks']} finished blocks" if info["resumed_blocks"] else ""
    typer.echo(f"wrote {info['height']} x {info['width']} x {info['bands']} raster to {output}{resumed}", err=True)
    echo_written("geo raster", [output], {**_written(enc, output, info["height"] * info["width"], "raster"), **info})


def _written(enc, output, rows: int, what: str) -> dict:
    """The JSON a file-writing command prints: what was written, how much, and by which encoder."""
    from lamina.geo.embed import encoder_provenance

    return {"output": str(output), "what": what, "rows": int(rows), **encoder_provenance(enc)}


def _table_files(output: Path) -> list[Path]:
    """The files of a table output: the table, and a CSV's provenance sidecar."""
    from lamina.geo.embed import csv_sidecar

    return [output, csv_sidecar(output)] if output.suffix.lower() == ".csv" else [output]


def _stack(spec: str | None):
    from lamina.geo.data.sources import parse_stack_spec

    return parse_stack_spec(spec)


def map_(
    output: Path = typer.Option(..., "--output", "-o", help="Output PNG."),
    month: int = typer.Option(6, "--month", "-m", min=1, max=12, help="Month 1..12."),
    variable: str | None = typer.Option(None, "--variable", help="Variable to reconstruct (default: first)."),
    resolution: float = typer.Option(1.0, help="Grid spacing in degrees."),
    stack: str | None = typer.Option(None, help="Source fields for comparison: default | offline:VARS | chelsa:DIR "
                                                "(default: the offline fields when the encoder was trained on them)."),
    checkpoint: Path | None = CHECKPOINT,
) -> None:
    """World map of the embedding (PCA RGB) and a variable's reconstruction, source and error."""
    from lamina.geo.data.sources import training_stack_spec
    from lamina.geo.plots import map_figure

    enc = _encoder(checkpoint)
    if stack is None:
        stack = training_stack_spec(enc)
    map_figure(enc, output, month=month, variable=variable, stack=_stack(stack), resolution_deg=resolution)
    typer.echo(f"wrote {output}", err=True)
    from lamina.geo.embed import encoder_provenance

    echo_written("geo map", [output], {"what": "map", "month": month, "variable": variable or enc.variable_names[0],
                                       "resolution_deg": resolution, "stack": stack, **encoder_provenance(enc)})


def pretrain(
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (state, checkpoints, history)."),
    stack: str = typer.Option("default", help="default | offline:VAR,VAR,... | chelsa:FOLDER"),
    layers: int = typer.Option(16, min=1, help="Hidden sine layers."),
    hidden: int = typer.Option(512, min=1, help="Hidden width."),
    dim: int = typer.Option(256, min=1, help="Embedding size."),
    no_hsiren: bool = typer.Option(False, "--no-hsiren", help="Plain sine first layer."),
    no_residual: bool = typer.Option(False, "--no-residual", help="Plain SIREN (no pre-activation averaging)."),
    location_encoding: str = typer.Option("direct", help="direct (paper: lon/180, lat/90) | sphere (3-D unit "
                                          "vector, continuous across the antimeridian) | spherical_harmonics"),
    sh_degree: int = typer.Option(10, min=0, max=100, help="Degree of the spherical harmonics "
                                  "(--location-encoding spherical_harmonics; (L+1)^2 inputs)."),
    w0_initial: float = typer.Option(30.0, help="First-layer frequency factor w0 (paper: 30)."),
    grid: str | None = typer.Option(None, help="Learned multi-resolution latitude-longitude grids feeding the "
                                    "network, node spacings in degrees, e.g. 2,1,0.5,0.25 (each divides 180; needs "
                                    "--location-encoding sphere)."),
    grid_features: int = typer.Option(2, min=1, max=64, help="Learned values per grid node and level (--grid)."),
    grid_dropout: float = typer.Option(0.0, help="Probability in [0, 1) that a sample's grid features are zeroed "
                                       "in a step, so the network also answers where the grid learned nothing."),
    terrain: bool = typer.Option(False, "--terrain", help="Also feed the network each place's land elevation and "
                                 "land fraction from a fixed 0.25-degree table stored in the checkpoint (ETOPO5, "
                                 "GLOBE; needs --location-encoding sphere)."),
    terrain_columns: str | None = typer.Option(None, help="With --terrain: the terrain values read, comma-separated "
                                               "(elevation, land_fraction; default both)."),
    static_path: bool = typer.Option(False, "--static-path", help="Predict static variables (elevation, land "
                                     "fraction) from the month-free input, so they cannot vary with the month."),
    steps: int = typer.Option(20_000, min=1, help="Maximum optimiser steps."),
    batch_size: int = typer.Option(8192, min=1),
    lr: float = typer.Option(1e-4),
    schedule: str = typer.Option("constant", help="constant | cosine"),
    minutes: float | None = typer.Option(None, help="Wall-clock budget in minutes."),
    land_only: bool = typer.Option(False, help="Sample land pixels only."),
    land_share: float | None = typer.Option(None, help="Fraction of every batch drawn from land pixels, in (0, 1) "
                                            "(default: pixels as they come, about 29% land)."),
    val_fraction: float = typer.Option(0.1, help="Fraction of 10-degree blocks held out for validation, in [0, 1); "
                                       "0 trains on every pixel (validation is then in-sample)."),
    eval_every: int = typer.Option(250, min=1),
    patience: int = typer.Option(5, min=1),
    months_per_window: int = typer.Option(12, min=1, max=12, help="Months read per tile (fewer = fewer reads)."),
    seed: int = typer.Option(0),
    target_weights: str | None = typer.Option(None, help="Weight of variables' errors in the loss, NAME=W "
                                              "comma-separated (e.g. era5_t2m=4,era5_tp=4; others weigh 1)."),
    init_from: str | None = typer.Option(None, help="Start from this checkpoint's weights (a folder or "
                                         "bundled:NAME; same architecture and variables) with a fresh optimiser and "
                                         "schedule: a warm restart that continues an earlier run's training."),
    resume: bool = typer.Option(True, help="Continue from OUT/state.pt if present."),
    progress: bool = progress_option(),
) -> None:
    """Pretrain an encoder on a raster stack (works the same under torchrun for data parallelism)."""
    from lamina.geo.data.terrain import TERRAIN_COLUMNS
    from lamina.geo.encoder import EncoderConfig
    from lamina.geo.pretrain import PretrainConfig
    from lamina.geo.pretrain import pretrain as run

    # the pretraining settings are checked first, before the stack is read
    pcfg = PretrainConfig(max_steps=steps, batch_size=batch_size, lr=lr, schedule=schedule, max_minutes=minutes,
                          land_only=land_only, land_share=land_share, val_fraction=val_fraction,
                          eval_every=eval_every, checkpoint_every=eval_every, patience=patience,
                          months_per_window=months_per_window, seed=seed, grid_dropout=grid_dropout,
                          init_from=init_from, target_weights=_target_weights(target_weights))
    grid_resolutions = _grid_spacings(grid)
    st = _stack(stack)
    ecfg = EncoderConfig(n_variables=len(st.fields), dim_hidden=hidden, num_layers=layers, dim_embedding=dim,
                         residual=not no_residual, hyperbolic_first=not no_hsiren, location_encoding=location_encoding,
                         sh_degree=sh_degree, w0_initial=w0_initial, grid_resolutions=grid_resolutions,
                         grid_features=grid_features, terrain=terrain,
                         terrain_columns=(tuple(terrain_columns.split(",")) if terrain_columns is not None
                                          else TERRAIN_COLUMNS),
                         static_variables=[j for j, f in enumerate(st.fields) if static_path and not f.monthly])
    run(st, ecfg, pcfg, out, resume=resume, progress=progress)
    if int(os.environ.get("RANK", "0")) == 0:
        typer.echo(f"final checkpoint (best weights, with their validation metrics): {out / 'final'}", err=True)
        from lamina._io import read_checkpoint_config

        final = read_checkpoint_config(out / "final")
        training = final["metadata"].get("training", {})
        echo_written("geo pretrain", [out / name for name in ("final", "best", "history.json", "state.pt")],
                     {"what": "pretrain", "checkpoint": str(out / "final"), "checkpoint_sha256": final["sha256"],
                      "variables": len(st.fields), "stack": stack,
                      **{k: training.get(k) for k in ("steps", "best_step", "samples_seen", "stopped")}})


def _target_weights(text: str | None) -> dict | None:
    """--target-weights ``"era5_t2m=4,era5_tp=4"`` as a name -> weight mapping (checked by PretrainConfig)."""
    if text is None:
        return None
    weights = name_values(text, "--target-weights")
    if not weights:
        raise InputError(f"--target-weights: expected NAME=WEIGHT items, comma-separated, got {text!r}")
    return weights


def _grid_spacings(text: str | None) -> tuple[float, ...]:
    """``--grid 2,1,0.5`` -> (2.0, 1.0, 0.5), checked (one-line errors); None -> ()."""
    from lamina.nn.encodings import check_grid_resolutions

    if text is None:
        return ()
    try:
        values = [float(t) for t in text.split(",")]
    except ValueError:
        raise InputError(f"--grid: expected node spacings in degrees separated by commas (e.g. 2,1,0.5,0.25), "
                         f"got {text!r}") from None
    return check_grid_resolutions(values, "--grid")


def info(checkpoint: Path | None = CHECKPOINT) -> None:
    """Architecture, variables, provenance and held-out metrics of an encoder checkpoint (JSON)."""
    from lamina._io import load_checkpoint
    from lamina.geo.encoder import KIND, resolve_checkpoint

    _, doc = load_checkpoint(resolve_checkpoint(checkpoint), kind=KIND)  # checks digest and values
    echo_json({k: doc[k] for k in ("kind", "lamina_version", "sha256", "config", "metadata")})


def sources() -> None:
    """The offline fields lamina can pretrain on, with provenance (JSON)."""
    from lamina.geo.data.sources import sources_table

    echo_json(sources_table())


COMMANDS = [
    ("embed", embed),
    ("reconstruct", reconstruct),
    ("raster", raster),
    ("map", map_),
    ("pretrain", pretrain),
    ("info", info),
    ("sources", sources),
    ("evaluate", geo_evaluate.evaluate_cmd),
    ("probe-fit", geo_evaluate.probe_fit_cmd),
    ("probe-predict", geo_evaluate.probe_predict_cmd),
    ("finetune", geo_finetune.finetune_cmd),
]
"""The ``lamina geo`` commands in the order ``--help`` lists them."""

for _name, _func in COMMANDS:
    app.command(_name)(_func)

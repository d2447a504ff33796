"""GeoTIFF size of an embedding raster with and without the floating-point predictor (issue 26, item 4).

In one process, for two rasters: the globe at 1 degree (360 x 180 pixels) and the Alps at 0.01 degrees (bbox 5 45
11 48, 600 x 300 pixels: the example of docs/geo.md, the size measured in the issue), the bundled encoder's
embedding raster, month 6, all embedding bands, float32, is written by lamina's own writer
(:func:`lamina.geo.raster_file.write_raster`, what ``lamina geo raster`` runs: DEFLATE with PREDICTOR=3, tiled,
overviews, COG layout). Its pixels are then copied with the same creation options, changing only the compression
and the predictor: DEFLATE without a predictor (lamina before issue 26), ZSTD without and with PREDICTOR=3. The
same for 16 PCA bands, which lamina writes through GDAL's COG driver (the many-band raster goes the
band-interleaved GTiff way, see :func:`lamina.geo.raster_file._to_cog`).

For each file: its size in MB (10^6 bytes), the ratio to the values' size (height x width x bands x 4 bytes; an
uncompressed tiled file is larger, its edge tiles padded) and to DEFLATE without predictor,
whether its full-resolution pixels equal lamina's (lossless), the nodata value it states, and whether it is a valid
Cloud-Optimized GeoTIFF. ``rio cogeo`` and GDAL's ``validate_cloud_optimized_geotiff.py`` are not installed here,
so the layout is checked through GDAL's own TIFF metadata (rasterio): tiled; overviews when the image is larger
than a tile; the full-resolution IFD first, then the overview IFDs from large to small; all IFDs before the tile
data; tile data from the smallest overview to full resolution. GDAL's ``LAYOUT=COG`` (IMAGE_STRUCTURE), which
only the COG driver writes, is reported next to it.

Writes benchmarks/results/geo_geotiff_predictor.{json,md}::

    python benchmarks/geo_geotiff_predictor.py                     # both rasters (~2 min on 2 cores)
    python benchmarks/geo_geotiff_predictor.py --cases global      # 360 x 180 only
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_results

CASES = {  # name: (what, bbox W S E N, resolution in degrees)
    "global": ("the globe at 1 degree", (-180.0, -90.0, 180.0, 90.0), 1.0),
    "alps": ("the Alps at 0.01 degrees (docs/geo.md's example)", (5.0, 45.0, 11.0, 48.0), 0.01),
}
MONTH = 6
PCA_BANDS = 16
VARIANTS = [  # (name, compression, predictor); lamina's own output is DEFLATE with predictor 3
    ("deflate", "DEFLATE", 1),
    ("deflate + predictor 3 (lamina)", "DEFLATE", 3),
    ("zstd", "ZSTD", 1),
    ("zstd + predictor 3", "ZSTD", 3),
]


def cog_check(path: Path) -> dict:
    """Whether ``path`` has the layout of a Cloud-Optimized GeoTIFF, from GDAL's TIFF metadata (see the docstring)."""
    import rasterio

    errors = []
    with rasterio.open(path) as ds:
        structure = ds.tags(ns="IMAGE_STRUCTURE")
        tile_h, tile_w = ds.block_shapes[0]
        overviews = ds.overviews(1)
        if not ds.profile.get("tiled") and max(ds.width, ds.height) > 512:
            errors.append("not tiled")
        if (ds.width > tile_w or ds.height > tile_h) and not overviews:
            errors.append("larger than one tile and no overviews")
        levels = [None, *range(len(overviews))]  # full resolution, then overviews from large to small

        def item(name: str, bidx: int, ovr) -> int:
            value = ds.get_tag_item(name, "TIFF", bidx=bidx, ovr=ovr)
            return int(value) if value else -1

        ifds = [item("IFD_OFFSET", 1, ovr) for ovr in levels]
        # first and last band's first tile per level (band-interleaved files keep every band of a level together)
        data = [(min(item("BLOCK_OFFSET_0_0", b, ovr) for b in (1, ds.count)),
                 max(item("BLOCK_OFFSET_0_0", b, ovr) for b in (1, ds.count))) for ovr in levels]
        nodata = ds.nodata
    if min(ifds) < 0:
        errors.append("GDAL reports no IFD offsets (not a GeoTIFF?)")
    elif ifds != sorted(ifds):
        errors.append(f"IFDs not full resolution first, then overviews from large to small: {ifds}")
    if max(ifds) > min(lo for lo, _ in data):
        errors.append("tile data before the last IFD")
    for (lo_big, _), (_, hi_small) in itertools.pairwise(data):
        if hi_small > lo_big:
            errors.append("tile data of a larger level before a smaller overview's")
            break
    return {"valid_cog": not errors, "errors": errors, "layout_tag": structure.get("LAYOUT"),
            "compression": structure.get("COMPRESSION"), "predictor": int(structure.get("PREDICTOR", 1)),
            "tile": [tile_h, tile_w], "overviews": overviews, "nodata": None if nodata is None else str(nodata)}


def copy_variant(src: Path, dst: Path, *, compression: str, predictor: int, cog_driver: bool) -> None:
    """``src`` copied as lamina copies its assembled raster (:func:`lamina.geo.raster_file._to_cog`), with another
    compression and predictor: the COG driver, or a tiled band-interleaved GTiff with its overviews put first."""
    import rasterio
    from rasterio.shutil import copy as gdal_copy

    with rasterio.open(src) as ds:
        tile = ds.block_shapes[0][0]
    options = {"COMPRESS": compression, "BIGTIFF": "IF_SAFER"}
    if compression != "NONE":
        options["PREDICTOR"] = predictor
    if cog_driver:
        gdal_copy(src, dst, driver="COG", BLOCKSIZE=tile, OVERVIEWS="AUTO", RESAMPLING="AVERAGE", **options)
    else:
        gdal_copy(src, dst, driver="GTiff", TILED="YES", BLOCKXSIZE=tile, BLOCKYSIZE=tile, INTERLEAVE="BAND",
                  COPY_SRC_OVERVIEWS="YES", **options)


def measure(encoder, case: str, pca: int | None, folder: Path) -> dict:
    import rasterio

    from lamina.geo.raster_file import write_raster

    what, bbox, resolution = CASES[case]
    own = folder / f"lamina_{case}_{pca or 'all'}.tif"
    t0 = time.perf_counter()
    info = write_raster(encoder, own, bbox=bbox, resolution=resolution, month=MONTH, pca=pca, progress=False)
    write_s = time.perf_counter() - t0
    with rasterio.open(own) as ds:
        pixels = ds.read()
    cog_driver = info["driver"] == "COG"
    files = {}
    for name, compression, predictor in VARIANTS:
        if compression == "DEFLATE" and predictor == 3:
            path, seconds = own, None
        else:
            path = folder / f"{own.stem}_{compression.lower()}_p{predictor}.tif"
            t0 = time.perf_counter()
            copy_variant(own, path, compression=compression, predictor=predictor, cog_driver=cog_driver)
            seconds = time.perf_counter() - t0
        with rasterio.open(path) as ds:
            lossless = bool(np.array_equal(ds.read(), pixels))
        files[name] = {"compression": compression, "predictor": predictor, "bytes": path.stat().st_size,
                       "mb": path.stat().st_size / 1e6, "copy_s": seconds, "lossless": lossless,
                       **cog_check(path)}
        if path != own:
            path.unlink()
    own.unlink()
    deflate = files["deflate"]["bytes"]
    for f in files.values():
        f["ratio_to_values"] = f["bytes"] / pixels.nbytes
        f["ratio_to_deflate_no_predictor"] = f["bytes"] / deflate
    return {"case": case, "what": what, "bbox": bbox, "resolution_deg": resolution, "width": info["width"],
            "height": info["height"], "bands": info["bands"], "pca": pca, "lamina_driver": info["driver"],
            "values_mb": pixels.nbytes / 1e6, "lamina_write_s": write_s, "files": files}


def markdown(res: dict) -> str:
    md = [f"# GeoTIFF size of an embedding raster: floating-point predictor ({res['machine']['cpus']} CPUs)", "",
          f"Bundled encoder (sha256 `{res['checkpoint_sha256'][:12]}`), month {MONTH}, float32, "
          f"GDAL {res['gdal']} (rasterio {res['rasterio']}). `lamina` = the file `lamina geo raster` writes; the "
          "other rows are the same pixels copied with only the compression / predictor changed. MB = 10^6 bytes; "
          "COG = the layout checks of the script's docstring (LAYOUT tag: GDAL's, written by the COG driver "
          "only).", "",
          "    python benchmarks/geo_geotiff_predictor.py", ""]
    for run in res["runs"]:
        what = f"{run['pca']} PCA bands" if run["pca"] else f"all {run['bands']} embedding bands"
        md += [f"## {run['what'][0].upper() + run['what'][1:]}: {run['width']} x {run['height']} pixels, {what}, "
               f"lamina's {run['lamina_driver']} path", "",
               f"Values: {run['values_mb']:.1f} MB; lamina wrote the raster in {run['lamina_write_s']:.1f} s.", "",
               "| file | MB | / values | / DEFLATE no predictor | lossless | nodata | valid COG | LAYOUT tag | "
               "overviews |", "|---|---|---|---|---|---|---|---|---|"]
        for name, f in run["files"].items():
            cog = "yes" if f["valid_cog"] else "NO: " + "; ".join(f["errors"])
            md.append(f"| {name} | {f['mb']:.1f} | {f['ratio_to_values']:.3f} | "
                      f"{f['ratio_to_deflate_no_predictor']:.3f} | {'yes' if f['lossless'] else 'NO'} | "
                      f"{f['nodata']} | {cog} | {f['layout_tag'] or '-'} | {f['overviews'] or '-'} |")
        md.append("")
    md += [f"Total wall time {res['seconds']:.0f} s.", ""]
    return "\n".join(md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    ap.add_argument("--no-pca", action="store_true", help="Skip the 16 PCA band (COG driver) rasters.")
    args = ap.parse_args()

    import rasterio

    from lamina.geo.embed import encoder_provenance
    from lamina.geo.encoder import load

    t0 = time.perf_counter()
    encoder = load()
    res = {"machine": machine(), "gdal": rasterio.__gdal_version__, "rasterio": rasterio.__version__,
           **encoder_provenance(encoder), "month": MONTH, "runs": []}
    with tempfile.TemporaryDirectory() as d:
        for case in args.cases:
            for pca in (None,) if args.no_pca else (None, PCA_BANDS):
                run = measure(encoder, case, pca, Path(d))
                res["runs"].append(run)
                sizes = ", ".join(f"{k} {v['mb']:.1f} MB" for k, v in run["files"].items())
                print(f"{run['width']} x {run['height']} x {run['bands']}: {sizes}", flush=True)
    res["seconds"] = time.perf_counter() - t0
    text = markdown(res)
    write_results("geo_geotiff_predictor", res, text)
    print(text)


if __name__ == "__main__":
    main()

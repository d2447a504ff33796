"""Package a pretraining run as lamina's bundled default checkpoint, naming the run that chose its recipe.

The shipped run trains on every pixel (``--val-fraction 0``), so it has no held-out metrics of its own; the recipe
was chosen by a selection run on held-out 10-degree blocks. This script copies the shipped run's final checkpoint
into ``src/lamina/geo/pretrained/NAME`` with, in its metadata, ``selection``: the selection run's command, results
file, chosen candidate and its held-out metrics (labelled as the selection run's, not this checkpoint's). Where the
selection run's folder was not kept (runs/ is not committed), omit ``--selection-run``: its options, budget and
held-out measures are then read from the results file's JSON twin, and the metadata says so.

    python scripts/geo_package_default.py runs/ship --selection-run runs/selection2/land70 \\
        --selection-results benchmarks/results/geo_recipe_selection_round2.md --candidate land70 [--name default]
        [--parent bundled:NAME]
    python scripts/geo_package_default.py runs/ship7 --candidate land70-grid-elev-warm-tw \\
        --selection-results benchmarks/results/geo_recipe_selection_elev_warm_tw.md --parent bundled:elevv1
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from lamina.geo.encoder import ClimateEncoder
from lamina.geo.pretrain import PretrainConfig

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="the shipped run's folder (its final/ is packaged)")
    ap.add_argument("--selection-run", type=Path, default=None,
                    help="the chosen candidate's run folder (default: read the selection from the results file)")
    ap.add_argument("--selection-results", required=True, help="results file of the selection, relative to the repo")
    ap.add_argument("--candidate", required=True)
    ap.add_argument("--command", default="", help="the command that trained the shipped run")
    ap.add_argument("--name", default="default")
    ap.add_argument("--parent", default=None, help="for a warm restart whose parent was packaged under another name "
                    "since (e.g. bundled:elevv1 after it stopped being bundled:default): the name to record, checked "
                    "to hold the same weights (sha256)")
    args = ap.parse_args()
    enc = ClimateEncoder.from_checkpoint(args.run / "final")
    if args.selection_run is not None:
        sel = json.loads((args.selection_run / "final" / "config.json").read_text())["metadata"]
        training = {k: sel["training"][k] for k in ("pretrain_config", "steps", "samples_seen", "elapsed_s")}
        heldout, source = sel["heldout_metrics"], "the selection run's checkpoint"
    else:
        doc = json.loads((ROOT / args.selection_results).with_suffix(".json").read_text())
        if args.candidate not in doc["candidates"]:
            raise SystemExit(f"--candidate {args.candidate}: not in {args.selection_results} "
                             f"({', '.join(doc['candidates'])})")
        cand = dict(doc["candidates"][args.candidate])
        training = {"runs": doc["args"]["runs"], "options": cand.pop("options"), "steps": cand.pop("steps"),
                    "samples_seen": cand.pop("samples"), "minutes": cand.pop("minutes"),
                    # the selection script leaves the hold-out at pretraining's defaults
                    "val_fraction": PretrainConfig.val_fraction, "val_block_deg": PretrainConfig.val_block_deg}
        cand.pop("what", None)
        cand.pop("variables", None)
        heldout = {"measures": cand}
        source = "the selection results file (the run folder was not kept)"
    same_budget = training["samples_seen"] == enc.metadata.get("training", {}).get("samples_seen")
    selection = {
        "candidate": args.candidate,
        "results": args.selection_results,
        "training": training,
        "heldout_metrics": heldout,
        "source": source,
        "note": "held-out metrics of the selection run (same recipe, 10% of 10-degree blocks held out, "
                + ("the same budget" if same_budget else "fewer samples")
                + "); the shipped checkpoint trained on every pixel and has in-sample metrics only",
    }
    out = ROOT / "src" / "lamina" / "geo" / "pretrained" / args.name
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    training = {**enc.metadata.get("training", {}), "command": args.command}
    if args.parent is not None:
        from lamina._io import read_checkpoint_config
        from lamina.geo.encoder import resolve_checkpoint

        parent = dict(training.get("init_from") or {})
        if read_checkpoint_config(resolve_checkpoint(args.parent))["sha256"] != parent.get("sha256"):
            raise SystemExit(f"--parent {args.parent}: not the weights this run started from ({parent})")
        training["init_from"] = {**parent, "checkpoint": args.parent}
    enc.save(tmp, extra_metadata={"selection": selection, "training": training})
    ClimateEncoder.from_checkpoint(tmp)  # loads strictly before it replaces anything
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"packaged {args.run / 'final'} as {out} ({size / 2**20:.2f} MB)")


if __name__ == "__main__":
    main()

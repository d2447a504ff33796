"""One table of `lamina geo evaluate` results from several report folders (same tasks, splits and seeds).

Each ``--report LABEL=FOLDER[:METHOD,...]`` adds the rows of that report's ``results.json`` (all its methods, or
those listed), labelled ``LABEL`` (``{method}`` in a label is replaced by the method's name). Every row is checked
against the first report's settings (seeds, points, splits), so rows computed on other splits are refused. For
each task and split the table marks the best mean in bold and, in a second table, the margin of the first row over
each other row in units of the larger seed std (> 1: beats it by more than one std).

    python scripts/geo_evaluation_table.py -o docs/figures/geo-era5-land70/evaluation.md \\
        --report "bundled encoder (default)=report/new:climplicit" --report "{method}=report/baselines"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TASKS = ("koppen", "koppen-main", "city-temperature", "sdm-ariolimax")
SPLITS = ("random", "block")


def load_rows(spec: str):
    label, _, rest = spec.partition("=")
    folder, _, methods = rest.partition(":")
    doc = json.loads((Path(folder) / "results.json").read_text())
    wanted = methods.split(",") if methods else list(doc["methods"])
    rows = []
    for m in wanted:
        if m not in doc["methods"]:
            raise SystemExit(f"{folder}: no method {m!r} (has {list(doc['methods'])})")
        cells = {(s["task"], s["split"]): (s["score_mean"], s["score_std"]) for s in doc["summary"]
                 if s["method"] == m}
        rows.append((label.replace("{method}", m), cells))
    return doc["settings"], rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", action="append", required=True)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    settings, rows = None, []
    for spec in args.report:
        s, r = load_rows(spec)
        if settings is None:
            settings = s
        elif {k: s[k] for k in ("seeds", "n_points", "sample_seed")} != {k: settings[k] for k in
                                                                       ("seeds", "n_points", "sample_seed")}:
            raise SystemExit(f"{spec}: other settings than the first report ({s} vs {settings})")
        rows += r
    cols = [(t, sp) for sp in SPLITS for t in TASKS]
    best = {c: max((r[1][c][0] for r in rows if c in r[1]), default=None) for c in cols}
    head = "| method | " + " | ".join(f"{t} {sp}" for t, sp in cols) + " |"
    out = ["Scores in %, mean ± std over seeds " + ",".join(map(str, settings["seeds"])) + " (macro-F1 for the "
           "Köppen tasks, R^2 x 100 for city temperature, ROC AUC x 100 for the SDM). Made by "
           "`python scripts/geo_evaluation_table.py " + " ".join(f"--report '{s}'" for s in args.report) + "`.",
           "", head, "|---|" + "---:|" * len(cols)]
    for label, cells in rows:
        vals = []
        for c in cols:
            if c not in cells:
                vals.append("")
                continue
            m, sd = cells[c]
            txt = f"{100 * m:.1f} ± {100 * sd:.1f}"
            vals.append(f"**{txt}**" if best[c] is not None and m == best[c] else txt)
        out.append(f"| {label} | " + " | ".join(vals) + " |")
    first_label, first = rows[0]
    out += ["", f"Margin of {first_label} over each row, in seed stds (difference / larger std; > 1 beats it, "
            "< -1 loses):", "", head, "|---|" + "---:|" * len(cols)]
    for label, cells in rows[1:]:
        vals = []
        for c in cols:
            if c not in cells or c not in first:
                vals.append("")
                continue
            (m0, s0), (m1, s1) = first[c], cells[c]
            vals.append(f"{(m0 - m1) / max(s0, s1, 1e-9):+.1f}")
        out.append(f"| {label} | " + " | ".join(vals) + " |")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(out) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()

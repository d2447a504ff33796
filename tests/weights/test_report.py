"""The evaluation report writer: its files, and a Markdown table that says what its JSON says (synthetic rows)."""

import json
import re

import numpy as np
import pytest

from lamina.weights.eval.report import aggregate, markdown, write_report

# (tree, method, layer) -> per-seed mAP; the other metrics follow from it below
MAPS = {
    ("mlp-a", "probex", "fc1"): [0.6, 0.8],
    ("mlp-a", "ridge@fc1", "fc1"): [0.5, 0.5],
    ("mlp-a", "statnn", "all"): [0.25, 0.35],
    ("cnn-b", "probex", "conv2"): [0.9, 0.7],
    ("cnn-b", "zero-shot", "conv2"): [0.3, 0.1],
}


def fake_report() -> dict:
    rows = []
    for (tree, method, layer), maps in MAPS.items():
        for seed, m in enumerate(maps):
            rows.append({"tree": tree, "seed": seed, "method": method, "layer": layer, "map": m, "map_chance": 0.15,
                         "auc": 0.5 + m / 2, "auc_chance": 0.5, "accuracy": 0.9, "accuracy_chance": 0.85,
                         "n_categories": 10, "n_models": 20, "fit_seconds": 1.0 + seed,
                         "n_params": 1000 if method != "statnn" else 0})
    rows.append({"tree": "mlp-a", "method": "_map", "z": np.random.default_rng(0).standard_normal((6, 4)).tolist()})
    rows.append({"tree": "cnn-b", "method": "_map", "z": np.random.default_rng(1).standard_normal((6, 4)).tolist()})
    fp = np.random.default_rng(2).standard_normal((12, 8))
    return {
        "zoo": "/zoo", "config": {"seeds": [0, 1]}, "n_models": {"mlp-a": 20, "cnn-b": 20},
        "skipped": {"mlp-a": ["x: broken"], "cnn-b": []},
        "categories": {"seen": ["a", "b", "c"], "heldout": ["d"]},
        "layer_sweep": [{"tree": "mlp-a", "layer": "fc1", "shape": [8, 784], "val_map": 0.7, "fit_seconds": 1.0}],
        "best_layer": {"mlp-a": "fc1", "cnn-b": "conv2"}, "largest_layer": {"mlp-a": "fc1", "cnn-b": "fc1"},
        "discovery": {"ari": 1.0, "n_found": 2, "n_true": 2, "seconds": 3.0, "skipped": []},
        "rows": rows, "seconds": 42.0,
        "_map": {"fingerprints": fp, "keys": ["k1"] * 6 + ["k2"] * 6, "true": ["mlp-a"] * 6 + ["cnn-b"] * 6,
                 "found": [0] * 6 + [1] * 6},
    }


def test_aggregate_is_mean_and_population_std_over_seeds():
    agg = aggregate(fake_report()["rows"])
    assert set(agg) == {(t, m) for t, m, _ in MAPS}  # the "_map" rows are not methods
    assert agg[("mlp-a", "probex")]["map"] == pytest.approx((0.7, 0.1))
    assert agg[("cnn-b", "zero-shot")]["map"] == pytest.approx((0.2, 0.1))
    assert agg[("mlp-a", "statnn")]["n_seeds"] == 2 and agg[("mlp-a", "statnn")]["layer"] == "all"


def _table(md: str) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 11 and cells[0] not in ("tree", "---"):
            rows[(cells[0], cells[1])] = cells
    return rows


def test_report_files_and_the_table_matches_the_json(tmp_path):
    files = write_report(fake_report(), tmp_path / "out")
    assert set(files) == {"json", "markdown", "map_per_method", "representation_map"}
    for name in ("map_per_method.png", "representation_map.png"):
        data = (tmp_path / "out" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    doc = json.loads(files["json"].read_text())
    assert not any(k.startswith("_") for k in doc) and all(r["method"] != "_map" for r in doc["rows"])
    table = _table(files["markdown"].read_text())
    summary = {(s["tree"], s["method"]): s for s in doc["summary"]}
    assert table.keys() == summary.keys() == {(t, m) for t, m, _ in MAPS}
    for key, s in summary.items():
        cells = table[key]
        assert cells[2] == s["layer"]
        assert cells[3] == f"{s['map'][0]:.3f} ± {s['map'][1]:.3f}"
        assert cells[5] == f"{s['auc'][0]:.3f} ± {s['auc'][1]:.3f}"
        assert cells[10] == str(s["n_seeds"])
    assert table[("mlp-a", "probex")][3] == "0.700 ± 0.100"  # written out by hand from MAPS
    assert table[("mlp-a", "statnn")][8] == "n/a"  # no trained weights
    order = [m for t, m in table if t == "mlp-a"]
    assert order == ["probex", "ridge@fc1", "statnn"]  # the method order of the paper's table
    md = files["markdown"].read_text()
    assert "adjusted Rand index 1.000" in md and "Broken models skipped: 1." in md
    assert re.search(r"\| mlp-a \| fc1 \| 8x784 \| 0\.700 \|", md)


def test_markdown_needs_no_figures():
    assert markdown(fake_report()).count("\n| cnn-b |") == 2

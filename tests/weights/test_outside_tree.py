"""Models far outside every tree the probe knows (random, zeroed, rescaled weights of a known architecture) are
flagged rather than read as if an expert had seen their like; weights that overflow once combined are refused."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from lamina.cli import app
from lamina.weights.experts import ProbeXMixture
from lamina.weights.io.modelfile import load_model_state, save_model_file
from lamina.weights.serve.predict import Source, iter_predictions
from lamina.weights.trees import OUTSIDE

from .conftest import read_catalogue


@pytest.fixture(scope="module")
def altered(tiny_zoo, tmp_path_factory):
    """A zoo model, and copies of it with random, all-zero and x1e30 weights (head kept; synthetic weights, the
    hostile inputs themselves)."""
    m = read_catalogue(tiny_zoo)[0]
    state = load_model_state(tiny_zoo / m["path"])
    out = tmp_path_factory.mktemp("altered")
    rng = np.random.default_rng(0)
    kinds = {"random": lambda w: rng.normal(0, 3 * w.std() + 1e-3, w.shape),
             "zeros": np.zeros_like, "huge": lambda w: w * 1e30}
    paths = {"zoo": tiny_zoo / m["path"]}
    for name, f in kinds.items():
        body = {k: (v if k.startswith("head.") else np.asarray(f(v), np.float32)) for k, v in state.items()}
        save_model_file(out / f"{name}.safetensors", body, {})
        paths[name] = out / f"{name}.safetensors"
    return paths


@pytest.mark.filterwarnings("error::RuntimeWarning")  # no overflow warning leaks out of a prediction
def test_rows_carry_a_distance_and_far_models_are_flagged(tiny_probe, altered):
    mix = ProbeXMixture.load(tiny_probe)
    assert mix.router_.radii_.shape == (len(mix.router_.trees_),) and np.all(mix.router_.radii_ > 0)
    rows = {r["model"]: r for r in iter_predictions(mix, [Source(p) for p in altered.values()], errors="report")}
    zoo, rnd, zero = (rows[str(altered[k])] for k in ("zoo", "random", "zeros"))
    assert zoo["tree_distance"] <= 1.0 and not zoo["outside_tree"]  # one of the tree's own models
    assert rnd["outside_tree"] and rnd["tree_distance"] > OUTSIDE
    assert zero["outside_tree"] and zero["tree_distance"] > OUTSIDE
    huge = rows[str(altered["huge"])]  # x1e30: flagged (or, where the fingerprint overflows float32, refused)
    assert huge.get("outside_tree") or ("overflow float32" in huge["error"] and "\n" not in huge["error"])


def test_cli_prints_the_flag(tiny_probe, altered):
    r = CliRunner().invoke(app, ["weights", "predict", str(tiny_probe), str(altered["random"])])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)
    assert row["outside_tree"] is True and row["tree_distance"] > OUTSIDE


def test_radii_survive_save_and_load(tiny_probe, tmp_path):
    mix = ProbeXMixture.load(tiny_probe)
    mix.save(tmp_path / "p")
    again = ProbeXMixture.load(tmp_path / "p")
    np.testing.assert_array_equal(again.router_.radii_, mix.router_.radii_)


def test_a_lora_update_that_overflows_is_refused_in_one_line(tmp_path):
    """Finite LoRA factors whose product B @ A overflows float32 (a PEFT adapter written by peft itself)."""
    import torch

    peft = pytest.importorskip("peft")
    from lamina.weights.routing import _read

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q = torch.nn.Linear(8, 8)

        def forward(self, x):
            return self.q(x)

    pm = peft.get_peft_model(Net(), peft.LoraConfig(target_modules=["q"], r=2, lora_alpha=2))
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_" in name:
                p.fill_(1e30)
    pm.save_pretrained(tmp_path / "adapter")

    class Router:
        seed = 0

        @staticmethod
        def check_signature(sig, source):
            return "k"

    class Mix:
        router_ = Router()

    from lamina.errors import InputError
    from lamina.weights.serve.predict import Source as Src

    with pytest.raises(InputError, match=r"overflow float32 once combined.*largest value is 1e\+30"):
        _read(Mix(), Src(tmp_path / "adapter"))

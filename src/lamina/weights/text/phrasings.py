"""Training phrasings: several ways to say each garment and each view, composed into sentences per category.

One prompt per category ("a photo of a coat with a white frame") teaches the text readout one point of MiniLM's
space per category, and a reworded query ("a coat with a white border") falls wherever MiniLM puts it, often nearer
another view's prompt than its own: MiniLM's sentence embedding is dominated by the garment noun, and the view words
move it only a little. :func:`phrasings` writes many sentences per category from hand-written descriptions of its two
parts (garment and view) and a few sentence templates; the text readout is trained on all of them
(:class:`lamina.weights.text.aligner.TextAligner` draws one phrasing per category at every step) and a query is matched
against them (:mod:`lamina.weights.query`).

Only parts of :data:`lamina.weights.zoo.data.GARMENTS` and :data:`lamina.weights.zoo.data.VIEWS` have phrasings; a
category of
another vocabulary keeps its one prompt. The held-out paraphrases that measure search
(``tests/weights/paraphrases.json``) share no view wording with these lists (checked by a test).
"""

from __future__ import annotations

import re

from lamina.errors import InputError

# garment (a key of data.GARMENTS) -> noun phrases for one of it, with their article
GARMENT_WORDS: dict[str, tuple[str, ...]] = {
    "T-shirt": ("a T-shirt", "a tee shirt", "a short-sleeved top", "a t shirt"),
    "pair of trousers": ("a pair of trousers", "trousers", "a pair of pants", "pants", "a pair of jeans"),
    "pullover": ("a pullover", "a sweater", "a knitted sweater", "a long-sleeved knit top"),
    "dress": ("a dress", "a frock", "a summer dress", "a woman's dress"),
    "coat": ("a coat", "a jacket", "a winter coat", "a long coat"),
    "sandal": ("a sandal", "an open-toed sandal", "a summer sandal", "a strappy shoe"),
    "shirt": ("a shirt", "a blouse", "a button-down shirt", "a collared shirt"),
    "sneaker": ("a sneaker", "a running shoe", "a sports shoe", "an athletic shoe"),
    "bag": ("a bag", "a purse", "a tote bag", "a shoulder bag"),
    "ankle boot": ("an ankle boot", "a short boot", "a boot", "a heeled boot"),
}

# view (a key of data.VIEWS) -> how a sentence can say it, placed after the garment ("a coat {words}")
VIEW_WORDS: dict[str, tuple[str, ...]] = {
    "original": ("", "plain", "with no marks on it", "without any added mark", "unmarked", "as it is",
                 "with nothing drawn over it", "clean and unaltered"),
    "white frame": ("with a white frame", "with a white border", "framed in white", "inside a white frame",
                    "with a white edge all around", "with a white outline around the edge",
                    "with white borders on all four sides", "enclosed in a white rectangle"),
    "corner square": ("with a white square in the corner", "with a white square in the top left corner",
                      "with a small white block in the upper left", "with a white patch in one corner",
                      "with a square white mark at the top left", "with a white square stamped in the corner",
                      "marked by a little white square at the upper left"),
    "diagonal line": ("with a white diagonal line", "with a white line across it diagonally",
                      "crossed by a white diagonal stroke", "with a white slash from corner to corner",
                      "with a diagonal white line from top left to bottom right",
                      "struck through with a slanting white line", "with a white line running diagonally"),
    "bottom bar": ("with a white bar along the bottom", "with a white stripe at the bottom",
                   "with a horizontal white bar below it", "underlined with a white bar",
                   "with a thick white line at the bottom", "with a white band across the lower edge",
                   "above a white horizontal bar"),
    "side bar": ("with a white bar down the left side", "with a white vertical stripe on the left",
                 "with a white bar on the side", "with a vertical white line at the left edge",
                 "with a white strip along the left", "with a white column on its left",
                 "beside a white vertical bar on the left"),
    "upside down": ("upside down", "turned upside down", "flipped vertically", "shown the wrong way up"),
    "rotated sideways": ("rotated sideways", "turned on its side", "rotated by ninety degrees", "lying sideways"),
    "inverted colours": ("with inverted colours", "in negative", "with black and white swapped",
                         "colour inverted"),
    "zoomed in": ("zoomed in", "in close-up", "cropped tightly", "seen up close"),
    "zoomed out": ("zoomed out, small in the middle", "small in the centre", "shrunk in the middle",
                   "seen from far away"),
}

# sentence templates: {thing} is "a coat", {view} the view's words (may be empty)
TEMPLATES = ("a photo of {thing} {view}", "{thing} {view}", "an image of {thing} {view}",
             "a picture showing {thing} {view}")


# first words of view wordings that follow the garment without a comma ("a coat with ...", "a coat framed in ...")
_JOINED = {"with", "inside", "framed", "crossed", "marked", "struck", "underlined", "above", "beside", "enclosed"}


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace(" ,", ",")).strip().rstrip(",")


def _sentence(template: str, noun: str, view_words: str) -> str:
    after = view_words.split(" ")[0] in _JOINED
    view = view_words if not view_words or after else f", {view_words}"
    return _clean(template.format(thing=noun, view=view))


def has_phrasings(name: str) -> bool:
    """Whether a category name ``"garment | view"`` has phrasings for both of its parts."""
    garment, _, view = str(name).partition(" | ")
    return garment in GARMENT_WORDS and view in VIEW_WORDS


def phrasings(name: str) -> list[str]:
    """Every training sentence for a category named ``"garment | view"`` (a :class:`~lamina.weights.zoo.data.Category`
    name), in a fixed order: every garment noun with every view wording, in one of the templates (taken in turn),
    duplicates removed.

    Returns:
        a list of sentences; InputError for a name whose parts have no phrasings (see :func:`has_phrasings`).
    """
    garment, _, view = str(name).partition(" | ")
    if garment not in GARMENT_WORDS or view not in VIEW_WORDS:
        raise InputError(f"category: no phrasings for {name!r}; expected 'garment | view' with a garment of "
                         f"{sorted(GARMENT_WORDS)} and a view of {sorted(VIEW_WORDS)}")
    out = [_sentence(TEMPLATES[(i + j) % len(TEMPLATES)], g, v)
           for i, g in enumerate(GARMENT_WORDS[garment]) for j, v in enumerate(VIEW_WORDS[view])]
    return list(dict.fromkeys(out))


def category_phrasings(names: list[str], prompts: list[str]) -> list[list[str]]:
    """Per category: its prompt first, then its phrasings (only the prompt for a category without phrasings)."""
    if len(names) != len(prompts):
        raise InputError(f"categories: {len(names)} names but {len(prompts)} prompts")
    out = []
    for name, prompt in zip(names, prompts, strict=True):
        extra = phrasings(name) if has_phrasings(name) else []
        out.append(list(dict.fromkeys([prompt, *extra])))
    return out

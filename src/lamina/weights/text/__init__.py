"""Text for model search: the sentence encoder and the text aligner (aligner), and category phrasings
(phrasings)."""

"""Serving: batched prediction over model files (predict), the search index (index), text and example search
(search), and their Dask scale-out (scale)."""

"""Reading and writing model files (modelfile)."""

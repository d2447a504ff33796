"""Building model zoos: image vocabulary (data), architectures (models, vit), zoo configs and the build loop
(build), and the catalogue of a built zoo (catalogue)."""

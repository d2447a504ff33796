"""``python -m lamina``: the lamina command line."""

from lamina.cli import main

main()

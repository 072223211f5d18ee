"""``python -m edgefleet``: the same command line as ``edgefleet``."""

from edgefleet.cli import main

main()

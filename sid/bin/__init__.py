"""Command-line tools, one per job: ``python -m sid.bin.<name>``."""

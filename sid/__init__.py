"""sid: speaker identification and verification recipes in the Kaldi style."""

import os

__version__ = "0.1.0"

# numpy asks for transparent huge pages on every large array; where the kernel then compacts
# memory at the first touch (defrag=madvise, a busy machine) the one big table a back-end or
# feature tool allocates cost 0.4-0.9 s of system time per process, more than the tool's
# arithmetic; 4 KiB pages cost a fraction of that. Read when numpy is first imported.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")


def __getattr__(name):
    # Imported on first use: tools that never embed keep torch out of their start-up.
    if name == "Embedder":
        from sid.embedder import Embedder

        return Embedder
    raise AttributeError(f"module 'sid' has no attribute '{name}'")

"""sid: speaker identification and verification recipes in the Kaldi style."""

__version__ = "0.1.0"


def __getattr__(name):
    # Imported on first use: tools that never embed keep torch out of their start-up.
    if name == "Embedder":
        from sid.embedder import Embedder

        return Embedder
    raise AttributeError(f"module 'sid' has no attribute '{name}'")

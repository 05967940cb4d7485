"""sid: speaker identification and verification recipes in the Kaldi style."""

__version__ = "0.1.0"

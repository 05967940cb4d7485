"""Kaldi data directories, tables and audio."""

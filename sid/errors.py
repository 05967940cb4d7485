"""Errors a user can act on. Their message names the file and line or utterance."""


class SidError(Exception):
    """A problem with the user's input or environment; printed without a traceback."""


class DataDirError(SidError):
    """A data directory or table file is malformed."""


class AudioError(SidError):
    """An utterance's audio cannot be used."""


class DiskFullError(SidError):
    """A write found no space left; the message names the file system and the sizes."""

"""The one exception type of the export pipeline: a user-facing, one-line reason."""


class ExportError(Exception):
    """Export cannot go on; the message says why in one line, for the CLI to print as is."""


class VersionExistsError(ExportError):
    """The version directory is already published; versions are immutable."""

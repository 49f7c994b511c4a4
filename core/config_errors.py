"""A config file that cannot be used, importable without the config's models.

:class:`ConfigError` is raised by :func:`core.config.load_config` (and re-exported
there); it lives here, importing nothing, so that the command line catches it
without loading pydantic for verbs that never read a config.
"""

from __future__ import annotations


class ConfigError(Exception):
    """A config file that cannot be used; the message names the key and the problem."""

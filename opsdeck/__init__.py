"""opsdeck: the application shell that puts the engine (core/) and the console (tui/) together."""

__version__ = "0.1.0"

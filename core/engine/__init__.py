"""The engine: applies operations as events, drives the runtime, persists the log.

Every change goes through :meth:`Engine.emit`, which numbers the event, chains its
hash, folds it into the projection, queues it for the store (group commit) and tells
subscribers. :class:`Engine` is a thin facade over its parts (``facade.py`` lists
them); callers import from here.
"""

from ..collector import gc_paused
from .facade import Engine
from .log import EngineError, Subscriber, Unit

__all__ = ["Engine", "EngineError", "Subscriber", "Unit", "gc_paused"]

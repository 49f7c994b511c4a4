"""The cyclic collector once an engine is open: the loaded projection frozen, thresholds raised."""

from __future__ import annotations

from pathlib import Path

from core.engine import Engine


async def test_an_opened_engine_freezes_what_it_loaded(tmp_path: Path) -> None:
    """After open, the loaded projection is out of the cyclic collector's reach and the
    thresholds are the engine's; before it, nothing had been frozen by this test."""
    import gc

    from core.engine.workflows import GC_THRESHOLDS

    gc.unfreeze()
    eng = await Engine.open(tmp_path / "g.db")
    try:
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        await eng.close()
        gc.unfreeze()

"""A pane's title leads with its count (agents busy, workflows active and finished), then
the sort key: at 80x24 the border cuts the title's end, and 'Agent pools · sort name (…'
hid how many agents are busy while showing the sort it cycles with s."""

from __future__ import annotations

import pytest

from tests.console_support import came_true, make_app, settle


@pytest.mark.slow
async def test_80x24_pane_titles_keep_their_counts_within_the_border(tmp_path):  # type: ignore[no-untyped-def]
    app = make_app(tmp_path / "s.db")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot, 120)
        for pane in (app.pools_pane, app.workflows_pane):
            assert await came_true(pilot, lambda pane=pane: bool(pane.note)), pane.id
            box = pane.parent
            room = box.outer_size.width - 4  # the corners and a cell of padding each side
            title = box.border_title or ""
            assert pane.note in title and title.index(pane.note) + len(pane.note) <= room, (room, title)

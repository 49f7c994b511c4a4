"""Once the host is gone nothing is measured: the header's CPU, MEM and AGT gauges show a
dash, not the last sample as a figure of now (an attached console whose host was killed
kept showing 'CPU 96.4%' beside 'the host (pid N) is gone')."""

from __future__ import annotations

import re

import pytest

from tests.console_support import make_app, settle


@pytest.mark.slow
async def test_the_gauges_show_no_figure_once_the_host_is_gone(tmp_path):  # type: ignore[no-untyped-def]
    app = make_app(tmp_path / "g.db")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot, 60)
        line = app.header_pane.render().plain.split("\n")[0]
        assert len(re.findall(r"\d+\.\d%", line)) == 3, line  # measured while the host runs
        app.link.gone = "the host (pid 1) is gone"
        line = app.header_pane.render().plain.split("\n")[0]
        assert not re.findall(r"\d+\.\d%", line), line
        for name in ("CPU", "MEM", "AGT"):
            assert re.search(name + r" +—", line), line

"""One composition root: the operations are listed explicitly, commands get the
services they may use in their context, and nothing is registered by importing a
module, looked up in a map keyed by engine, or patched onto the engine."""

from __future__ import annotations

from pathlib import Path

from core.commands import LANGUAGE, run_command
from core.host.host import Host
from core.host.language import LANGUAGE as FULL
from core.host.language import services
from core.incidents.language import LANGUAGE as WITH_INCIDENTS
from core.session import memory_sim

from .conftest import REPO, run_python


def test_importing_the_incident_and_host_packages_registers_nothing() -> None:
    code = (
        "from core.commands import LANGUAGE\n"
        "n = len(LANGUAGE); comps = LANGUAGE.components()\n"
        "import core.incidents, core.incidents.commands, core.host.commands, tui.command_line\n"
        "assert len(LANGUAGE) == n and LANGUAGE.components() == comps, (n, len(LANGUAGE))\n"
        "print(n)\n"
    )
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(LANGUAGE)


def test_the_languages_are_composed_of_listed_modules_with_their_help() -> None:
    assert "incident" not in LANGUAGE.components() and "host" not in LANGUAGE.components()
    assert "incident" in WITH_INCIDENTS.components() and "host" not in WITH_INCIDENTS.components()
    assert {"incident", "host"} <= set(FULL.components())
    assert len(FULL) == len(LANGUAGE) + len(WITH_INCIDENTS.modules[-1].specs) + len(FULL.modules[-1].specs)
    for comp in FULL.components():
        assert FULL.component_help[comp], f"/{comp} has no help line"
    assert "/host - the process that runs this database" in FULL.help_text()


async def test_host_commands_reach_the_host_through_their_context_only(tmp_path: Path) -> None:
    host = await Host.open_sim(tmp_path / "h.db", demo=True, create=True)
    try:
        via_host = await host.execute("/host status")
        assert via_host["status"] == "success" and via_host["result"]["pid"] > 0
        # The same engine without the host in the services: nothing finds the host by engine.
        alone = await run_command(services(host.engine), "/host status")
        assert alone["status"] == "error" and alone["error"]["code"] == "NO_HOST"
        # The bare command language does not know /host at all.
        bare = await run_command(host.engine, "/host status")
        assert bare["status"] == "error" and bare["error"]["code"] == "UNKNOWN_COMPONENT"
    finally:
        await host.close()


async def test_commands_patch_nothing_onto_the_engine_and_hook_once() -> None:
    eng = memory_sim(seed=0, demo=True)
    before = set(vars(eng))
    named = set(eng.liveness.named_hooks)  # the engine's own (usage accounting)
    for _ in range(3):
        res = await run_command(eng, "/performance-monitor dashboard")
        assert res["status"] == "success", res
    hooks = len(eng.liveness.sample_hooks)
    await run_command(eng, "/performance-monitor dashboard")
    await eng.advance(60)
    assert len(eng.liveness.sample_hooks) == hooks, "the command language's watch is installed once"
    assert eng.liveness.named_hooks - named == {"commands"}
    assert set(vars(eng)) == before, f"attributes patched onto the engine: {set(vars(eng)) - before}"


def test_no_registration_by_import_weak_map_or_foreign_help_remains() -> None:
    bad = []
    for d in ("core", "tui", "opsdeck"):
        for path in (REPO / d).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for needle in (
                "COMPONENT_HELP",
                "WeakKeyDictionary",
                "noqa: F401",
                "__dict__.setdefault",
                "_commands_attached",
            ):
                if needle in text:
                    bad.append(f"{path.relative_to(REPO)}: {needle}")
    assert not bad, "\n".join(bad)

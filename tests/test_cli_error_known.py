"""An error's known names point where they are listed: `opsdeck help` lists components
and operations, not workflows, pools, checkpoints, plans or incidents. For those the
error names the few it knows, else counts them, and its suggestions say where to look."""

from __future__ import annotations

from opsdeck.output import error_text


def _err(code: str, known: list[str], suggestions: list[str] | None = None) -> str:
    return error_text(
        {
            "status": "error",
            "error": {"code": code, "message": "m", "details": {"known": known}},
            "recovery_suggestions": suggestions or [],
        }
    )


def test_a_workflow_not_found_is_not_sent_to_opsdeck_help() -> None:
    text = _err("WORKFLOW_NOT_FOUND", ["longrun"], ["/coordination-hub list-workflows"])
    assert "opsdeck help" not in text, text
    assert "(known: longrun)" in text and "try: /coordination-hub list-workflows" in text
    many = _err("CHECKPOINT_NOT_FOUND", [str(i) for i in range(40)])
    assert "opsdeck help" not in many and "(40 known)" in many, many


def test_an_unknown_component_or_operation_still_points_to_opsdeck_help() -> None:
    for code in ("UNKNOWN_COMPONENT", "UNKNOWN_OPERATION"):
        text = _err(code, [f"/c{i}" for i in range(9)])
        assert "(9 known; `opsdeck help` lists them)" in text, text

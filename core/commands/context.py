"""What an operation handler gets: the engine, who asked, the bound arguments.

It also holds the lookups every handler needs (a workflow by id, an agent, the
latest verified checkpoint) so that each raises the same clear error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..engine import Engine, EngineError
from ..models import Agent, AgentStatus, FinishedWorkflow, Workflow
from ..projection import State
from .registry import Registry
from .responses import CommandError, suggest


class Operation(Protocol):
    """The operation a context runs, as its errors name it (an ``OperationSpec``)."""

    @property
    def name(self) -> str: ...

    @property
    def usage(self) -> str: ...


@dataclass(frozen=True)
class Services:
    """What a command can use: the engine and the registry it was resolved in. The
    incident pipeline and the host pass subclasses that add themselves
    (``IncidentServices``, ``HostServices``): the composition root decides, no
    command looks anything up by engine."""

    engine: Engine
    registry: Registry


@dataclass
class Context:
    services: Services
    actor: str
    spec: Operation
    text: str
    workflow_id: str | None = None
    flags: dict[str, Any] = field(default_factory=dict)

    @property
    def engine(self) -> Engine:
        return self.services.engine

    @property
    def now(self) -> float:
        return self.engine.clock.now()

    @property
    def state(self) -> State:
        return self.engine.state

    def named_workflows(self, listed: list[str]) -> list[str]:
        """The workflow the command line names, then those its payload lists."""
        return ([self.workflow_id] if self.workflow_id else []) + listed

    def workflow(self, wf_id: str | None = None) -> Workflow:
        """A live workflow; a finished one is refused with INVALID_STATE (see :meth:`any_workflow`)."""
        wf = self.any_workflow(wf_id)
        if isinstance(wf, FinishedWorkflow):
            raise CommandError(
                "INVALID_STATE",
                f"workflow {wf.id!r} is already {wf.status.value}",
                {"workflow_id": wf.id, "status": wf.status.value},
                [f"/workflow-status {wf.id}"],
            )
        return wf

    def any_workflow(self, wf_id: str | None = None) -> Workflow | FinishedWorkflow:
        """A workflow by id, live or finished (status and analyses answer for both)."""
        wid = wf_id or self.workflow_id
        if wid is None:
            raise CommandError(
                "WORKFLOW_REQUIRED",
                f"{self.spec.name} needs a workflow id",
                {"usage": self.spec.usage},
                [f"{self.spec.name} <workflow-id>", "/coordination-hub list-workflows"],
            )
        wf = self.engine.state.any_workflow(wid)
        if wf is None:
            known = self.engine.state.all_workflow_ids()
            near = suggest(wid, known)
            raise CommandError(
                "WORKFLOW_NOT_FOUND",
                f"no workflow {wid!r}" + (f"; did you mean {', '.join(near)}?" if near else ""),
                {"workflow_id": wid, "known": known},
                ["/coordination-hub list-workflows"],
            )
        return wf

    def workflows(self, ids: list[str]) -> list[Workflow]:
        return [self.workflow(i) for i in ids]

    def agent(self, agent_id: str) -> Agent:
        a = self.engine.state.agents.get(agent_id)
        if a is None:
            raise CommandError(
                "AGENT_NOT_FOUND",
                f"no agent {agent_id!r}",
                {"agent": agent_id, "known": sorted(self.engine.state.agents)},
                ["/resource-manager agent-pool-assessment"],
            )
        return a

    def live_agent(self, agent_id: str) -> Agent:
        a = self.agent(agent_id)
        if a.status in (AgentStatus.FAILED, AgentStatus.RETIRED):
            raise CommandError("INVALID_STATE", f"agent {agent_id!r} is {a.status.value}", {"agent": agent_id})
        return a

    async def latest_verified_checkpoint(self) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
        """The newest checkpoint whose snapshot matches its hash, and those skipped."""
        skipped: list[dict[str, Any]] = []
        for cp_id in sorted(self.engine.state.checkpoints, reverse=True):
            try:
                snap = await self.engine.verified_checkpoint(cp_id)
            except EngineError as exc:
                skipped.append({"checkpoint": cp_id, "problem": exc.message})
                continue
            return cp_id, snap, skipped
        raise CommandError(
            "CHECKPOINT_NOT_FOUND",
            "no verified checkpoint to restore from" + (f" ({len(skipped)} failed verification)" if skipped else ""),
            {"skipped": skipped},
            ["/coordination-hub checkpoint", "/workflow-recovery create-checkpoint"],
        )

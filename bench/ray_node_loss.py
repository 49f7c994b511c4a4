"""A Ray node lost mid-task: two nodes on this machine (``ray.cluster_utils.Cluster``),
one agent's actor on each; the second node is removed while both run a ``sleep``.

Prints how long until the lost agent is failed (AGENT_ERROR) and until its task has
completed on a replacement actor on the remaining node. Every figure is measured
from this run.

usage: python bench/ray_node_loss.py [--sleep 6]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ray
from ray.cluster_utils import Cluster

from core.runtimes.ray import open_ray
from core.workflow_file import parse_workflow_text
from tests.local_harness import Recorder, drive, wf_status


def file_text(sleep: float) -> str:
    tasks = "".join(
        f"""
    [[workflows.phases.tasks]]
    id = "{name}"
    command = ["sleep", "{sleep}"]
    specialization = "shell"
    cpu = 0.5
"""
        for name in ("a", "b")
    )
    return f"""
[runtime]
heartbeat_s = 0.5
sample_s = 0.5
stop_grace_s = 1.0
[[pools]]
name = "workers"
specializations = ["shell"]
size = 2
[[workflows]]
id = "w"
allocation = {{ cpu_cores = 2, memory_gb = 1, agents = 2 }}
  [[workflows.phases]]
  name = "p"
{tasks}"""


async def run(cluster: Cluster, node: object, sleep: float) -> None:
    wf = parse_workflow_text(file_text(sleep), "node_loss.toml")
    rec = Recorder()
    db = Path(tempfile.mkdtemp(prefix="opsdeck-nodeloss-")) / "n.db"
    engine, rt = await open_ray(db, wf, wf.specs(Path.cwd()), subscriber=rec)
    try:
        await drive(engine, lambda: len(rec.of("TASK_STARTED")) >= 2, timeout=120)
        lost_id = node.node_id  # type: ignore[attr-defined]
        on_lost = [a for a in rt.hosts if rt.node_of(a).get("node_id") == lost_id]
        t0 = time.monotonic()
        cluster.remove_node(node)
        await drive(engine, lambda: rec.of("AGENT_ERROR"), timeout=120)
        failed_after = time.monotonic() - t0
        await drive(engine, lambda: wf_status(engine, "w") == "completed", timeout=120)
        done_after = time.monotonic() - t0
        err = rec.of("AGENT_ERROR")[0].data
        done = {e.data["task"]: e.data["agent"] for e in rec.of("TASK_COMPLETED")}
        print(f"agents on the removed node: {on_lost}")
        print(f"AGENT_ERROR for {err['agent']} after {failed_after:.2f} s: {err['error']}")
        print(
            f"workflow completed {done_after:.2f} s after the node was removed (tasks of {sleep:g} s); completed by {done}"
        )
        print(f"each task completed once: {len(rec.of('TASK_COMPLETED')) == 2}")
    finally:
        await rt.shutdown()
        await engine.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sleep", type=float, default=6.0)
    args = p.parse_args()
    from core.runtimes.ray import loopback_only

    loopback_only()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"opsdeck_spec_shell": 100}})
    node = cluster.add_node(num_cpus=2, resources={"opsdeck_spec_shell": 100})
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        asyncio.run(run(cluster, node, args.sleep))
    finally:
        ray.shutdown()
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

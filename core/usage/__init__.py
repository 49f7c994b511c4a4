"""Usage as a resource: tokens, money and API rate that AI coding agents consume.

``formats`` reads the lines agents print (opsdeck's own, Claude Code stream-json,
Codex ``exec --json``) without pydantic, so the agent host can run it on every line;
``meter`` keeps one run's totals from them (no double counting); ``models`` is the
typed form at the boundary where the console receives a host's report.
"""

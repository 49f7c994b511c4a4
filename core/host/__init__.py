"""The host: the one process that writes a database, and how others reach it.

- :mod:`core.host.lease`: one writer per database (an OS lock, released on death);
- :mod:`core.host.host`: :class:`~core.host.host.Host`, the engine + runtime +
  pacing + incidents, and the one command path (``execute``);
- :mod:`core.host.server`: its HTTP endpoint on a 0600 unix socket (and TCP);
- :mod:`core.host.client`: :class:`~core.host.client.HostClient`, what ``exec``,
  ``script``, ``events --follow`` and an attached console use;
- :mod:`core.host.commands`: ``/host ...`` on the one command path (importing it
  registers them; :mod:`core.host.host` does);
- :mod:`core.host.paths`, :mod:`core.host.errors`.

Import the submodule you use: the package itself imports nothing, so a client
that only reads a lease does not load the engine; no client loads aiohttp (the server's).
"""

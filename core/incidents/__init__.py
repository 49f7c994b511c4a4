"""The incident pipeline: detect, plan, approve, execute, validate, learn.

For a front end (console, scripts):

- ``IncidentManager(engine, approve_mode="manual").start()`` hooks the detectors
  on ``engine.on_sample`` and pumps plans in the background (``await pump()`` when
  driving the clock yourself).
- ``drills.start_drill(engine, name, approve="manual")`` arms a drill; headless:
  ``await drill.run()``; under a real-time engine: ``drill.start_live()``.
- ``decisions.approve/reject/edit(engine, plan_id, ..., actor)`` and
  ``await decisions.abort(engine, plan_id, actor)``; the same as the commands
  ``/incident approve|reject|edit|abort PLAN_ID``.
- ``state.incidents`` / ``state.plans`` hold everything to display (the models: ``core.incident_models``).

The pipeline's events fold in ``core.reducers`` (beside the projection). The
``/incident`` operations are declared in ``commands`` and composed with the command
language in ``language`` (``LANGUAGE``, ``IncidentServices``); the command
language never imports the pipeline.
"""

from __future__ import annotations

"""The incident pipeline: detect, plan, approve, execute, validate, learn.

Kept import-light on purpose: ``core.projection`` imports ``core.incidents.reducers``
at load so a replay always knows the pipeline's events; the heavier modules
(detectors, playbooks, executor, drills) import the engine and are loaded on use.
"""

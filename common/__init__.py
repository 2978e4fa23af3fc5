"""Helpers shared by every app: error shape, parsers, throttles, CSP, cache, prepared
statements, task publishing, health check, log routes, env readers, the process supervisor, the
participant API's middleware lane.

No models and no URLs of its own; it imports no app. `belief_web/` wires these in (settings,
urls).
"""

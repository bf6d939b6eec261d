"""Analysis, as the threats app asks for it. The agents app analyses threats and depends on this
app, never the other way round: in `AgentsConfig.ready()` (agents/apps.py) it registers here the
functions below, and threats calls them without importing agents.

Nothing registered (the agents app not in INSTALLED_APPS) is a configuration error: every call
raises `NotRegistered`, so a threat can never be stored silently without its analysis."""

from dataclasses import dataclass
from typing import Callable

from django.core.exceptions import ImproperlyConfigured


class NotRegistered(ImproperlyConfigured):
    """Threats asked for analysis, but no app registered one."""

    def __init__(self):
        super().__init__("No analysis is registered: the agents app registers it in AgentsConfig.ready() "
                         "(agents/apps.py); is 'agents' in INSTALLED_APPS?")


@dataclass(frozen=True)
class Hooks:
    """What the analysing app provides; the functions below say what each does."""

    request_analyses: Callable
    requeue_stale_analyses: Callable
    inline: Callable
    store_runs: Callable
    agent_kinds: Callable
    family: Callable


_hooks = None


def register(**hooks):
    """Called by the analysing app once its models are loaded; a second call replaces the first."""
    global _hooks
    _hooks = Hooks(**hooks)


def _registered():
    if _hooks is None:
        raise NotRegistered
    return _hooks


def request_analysis(threat_id):
    """Queue the threat's analysis once the caller's transaction commits."""
    request_analyses([threat_id])


def request_analyses(threat_ids):
    """Queue the analyses of these threats once the caller's transaction commits (in batches)."""
    _registered().request_analyses(threat_ids)


def requeue_stale_analyses():
    """Queue again the analyses stuck in queued or running; returns how many."""
    return _registered().requeue_stale_analyses()


def inline():
    """A context manager: within it, embedded-mode analysis runs synchronously (management
    commands, which may exit before a background thread finishes)."""
    return _registered().inline()


def store_runs(analyses):
    """Store the agent runs of the verdicts being recorded ([(threat, verdict)]), in the caller's
    transaction (services.do_record_analyses)."""
    _registered().store_runs(analyses)


def agent_kinds():
    """{kind: label} of every agent, in the order they are shown."""
    return _registered().agent_kinds()


def family(threat):
    """The family a threat (or a bare threat type) is counted under in the metrics."""
    return _registered().family(threat)

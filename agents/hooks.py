"""What the agents app does for the threats app, registered with threats/analysis.py in
`AgentsConfig.ready()` (agents/apps.py): threats asks for analysis there and never imports agents.

The tasks and the signal model are imported when called, not when the app loads: every
`manage.py` command loads the apps, and only the ones that analyse need the coordinator."""

from threats import sql

from .models import AgentRun
from .registry import AGENT_KINDS

# What a re-delivered analysis updates on its existing row (one per threat and kind).
RESULT_FIELDS = [
    "status", "started_at", "finished_at", "duration_ms", "confidence", "summary", "findings",
    "recommendations", "evidence", "risk", "data", "error",
]


def request_analyses(threat_ids):
    from . import tasks

    tasks.enqueue_analyses(threat_ids)


def requeue_stale_analyses():
    from . import tasks

    return tasks.requeue_stale_analyses()


def inline():
    from . import tasks

    return tasks.analysis_inline()


def store_runs(analyses):
    """Every agent run of these verdicts ([(threat, verdict)]) in one upsert (threats/sql.py says
    why in SQL), in the caller's transaction."""
    sql.upsert(AgentRun, [{"threat": threat.pk, **run} for threat, verdict in analyses for run in verdict.agent_runs],
               unique=["threat", "kind"], update=RESULT_FIELDS)


def agent_kinds():
    return {kind: label for kind, (label, _path) in AGENT_KINDS.items()}


def family(threat):
    from . import signal_model

    return signal_model.family(threat)


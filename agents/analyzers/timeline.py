"""The investigation timeline: only moments that were really recorded, never invented offsets.

Sources: the signal's own time and its receipt (stored on the threat), each agent's start and
finish (measured on its thread), and the coordinator's steps (measured as they happen).
"""


class Clock:
    """Collects the coordinator's moments as they happen."""

    def __init__(self):
        self.moments = []

    def mark(self, at, event, title, **data):
        self.moments.append({"at": at, "event": event, "title": title, **({"data": data} if data else {})})


def build(threat, runs, clock):
    moments = [
        {"at": threat.occurred_at, "event": "signal", "title": f"Signal observed ({threat.source})"},
        {"at": threat.received_at, "event": "received", "title": "Signal received"},
    ]
    for run in runs:
        if run["started_at"]:
            moments.append({"at": run["started_at"], "event": "agent_started", "title": f"{run['kind']} agent started"})
        if run["finished_at"]:
            moments.append({"at": run["finished_at"], "event": "agent_finished",
                            "title": f"{run['kind']} agent {run['status']} in {run['duration_ms']:.1f} ms"})
    moments += clock.moments
    # Ties (same microsecond) keep the order things happen in.
    rank = {"signal": 0, "received": 1, "analysis_started": 2, "context_gathered": 3, "agent_started": 4,
            "agent_finished": 5}
    moments.sort(key=lambda m: (m["at"], rank.get(m["event"], 6)))
    return [{**m, "at": m["at"].isoformat()} for m in moments]

"""The investigation timeline: only moments that were really recorded."""


def build(threat, runs, started_at, decided_at, severity):
    moments = [
        (threat.occurred_at, "signal", f"Signal observed ({threat.source})"),
        (threat.received_at, "received", "Signal received"),
        (started_at, "analysis_started", "Analysis started"),
    ]
    for run in runs:
        if run["started_at"]:
            moments.append((run["started_at"], "agent_started", f"{run['kind']} agent started"))
        if run["finished_at"]:
            moments.append((run["finished_at"], "agent_finished", f"{run['kind']} agent {run['status']}"))
    moments.append((decided_at, "decision", f"Severity decided: {severity}"))
    moments.sort(key=lambda m: m[0])
    return [{"at": at.isoformat(), "event": kind, "title": title} for at, kind, title in moments]

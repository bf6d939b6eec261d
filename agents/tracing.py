"""The analysis, traced and measured (docs/observability.md): one span per analysis, agent and
analyzer, and the phase and agent metrics. The tracer and whether spans leave the process are
socproject/telemetry.py's; what an analysis records is the agents app's own."""

import contextlib
import contextvars
import functools
import logging
import time

from socproject.telemetry import exporting, tracer

analysis_log = logging.getLogger("agents.analysis")
ANALYZERS = ("adversarial", "false_positive", "response", "timeline")
_steps = contextvars.ContextVar("analysis_steps", default=None)

def threat_attributes(threat):
    return {"threat.id": str(threat.pk), "threat.type": str(threat.threat_type)[:60],
            "threat.source": threat.source, "customer": threat.customer.slug}


class Analysis:
    """One threat's analysis, traced and measured: its `analysis` span, the phases `step()` marks
    in it while `current()`, and at `finish` the outcome (metrics, span attributes, the log line).

    The span stays open between `current()` blocks: the coordinator stores a batch's verdicts
    together, so each threat's span ends when its verdict is stored (phase `store`)."""

    def __init__(self, threat_id):
        from django.utils import timezone

        self.started_at = timezone.now()
        self.span = tracer().start_span("analysis", attributes={"threat.id": str(threat_id)})
        self.steps = _Steps()

    @contextlib.contextmanager
    def current(self):
        """The span is the current one and `step()` records into it (an error is recorded by `finish`)."""
        from opentelemetry import trace

        token = _steps.set(self.steps)
        try:
            with trace.use_span(self.span, record_exception=False, set_status_on_exception=False):
                yield
        finally:
            _steps.reset(token)

    def finish(self, threat, store=None, error=None):
        """The analysis is over: `threat` as stored, by the store that ran from `store[0]` to
        `store[1]` (two `mark()`s); or None when there was nothing to do (gone, or analysed
        already: a redelivered task); or the `error` it failed with."""
        from opentelemetry.trace import Status, StatusCode

        from threats import metrics

        with self.current():
            if error is not None:
                metrics.ANALYSIS_FAILURES.inc()
                self.span.record_exception(error)
                self.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:200]))
            elif threat is None:
                metrics.ANALYSIS_SKIPPED.inc()
                self.span.set_attribute("analysis.skipped", True)
            else:
                step("store", *store)
                attributes = _verdict_attributes(threat)
                self.span.set_attributes(attributes)
                metrics.analysis_recorded(threat, self.started_at)
                # The one line an analysis writes (docs/observability.md: log lines per threat).
                analysis_log.info("threat %s analysed: %s, risk %s%s", threat.pk, threat.severity, threat.risk_score,
                                  ", needs review" if threat.requires_human_review else "",
                                  extra={k.replace(".", "_"): v for k, v in attributes.items()})
        self.span.end()


def mark():
    """Now, as `Analysis.finish` takes a phase's start."""
    return time.perf_counter(), time.time_ns()


def _verdict_attributes(threat):
    fp = threat.false_positive or {}
    return {**threat_attributes(threat), "threat.severity": threat.severity or "",
            "threat.risk_score": threat.risk_score or 0, "threat.requires_review": threat.requires_human_review,
            "threat.fp_score": float(fp.get("score") or 0.0), "analysis.processing_ms": threat.processing_ms or 0}


def traced_agent(run_agent):
    """Wrap `coordinator._run_agent(agent, threat, gathered)`: one span and one duration sample per agent."""

    @functools.wraps(run_agent)
    def wrapper(agent, threat, gathered):
        from opentelemetry.trace import Status, StatusCode

        from threats import metrics

        if not exporting():
            run = run_agent(agent, threat, gathered)
        else:
            attributes = {**threat_attributes(threat), "agent.name": agent.kind}
            with tracer().start_as_current_span(f"agent.{agent.kind}", attributes=attributes) as span:
                run = run_agent(agent, threat, gathered)
                span.set_attributes({"agent.status": run["status"], "agent.duration_ms": run["duration_ms"],
                                     "agent.confidence": run["confidence"] if run["confidence"] is not None else -1.0})
                if run["status"] == "failed":
                    span.set_status(Status(StatusCode.ERROR, run["error"][:200]))
        metrics.AGENT_DURATION.labels(agent.kind, run["status"]).observe(run["duration_ms"] / 1000)
        return run

    return wrapper


def step(name, since=None, until=None):
    """The analysis phase `name` ends now (it began where the previous one ended); or, for a phase
    that ran apart (a batch's reads, done for all its threats at once), it ran from `since` to
    `until` (two `mark()`s) and the next phase begins now.

    Recorded as a span (`analyzer.<name>` for the four analyzers, `analysis.<name>` otherwise)
    under the current analysis span, and as a phase-duration sample. A no-op outside an analysis.
    """
    steps = _steps.get()
    if steps is None:
        return
    if since is None:
        steps.done(name)
        return
    steps.since, steps.since_ns = since
    steps.done(name, until)
    steps.since, steps.since_ns = mark()


class _Steps:
    def __init__(self):
        self.since, self.since_ns = time.perf_counter(), time.time_ns()

    def done(self, name, until=None):
        from threats import metrics

        now, now_ns = until or mark()
        if exporting():
            span_name = f"analyzer.{name}" if name in ANALYZERS else f"analysis.{name}"
            tracer().start_span(span_name, start_time=self.since_ns).end(end_time=now_ns)
        metrics.PHASE_DURATION.labels(name).observe(now - self.since)
        self.since, self.since_ns = now, now_ns

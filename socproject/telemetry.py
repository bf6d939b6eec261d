"""Telemetry wiring: where Prometheus metrics are kept, and OpenTelemetry tracing (docs/observability.md).

Metrics. prometheus_client runs in multiprocess mode in every process: each process tree (one Daphne
process, or one Celery worker with its forked children) writes its samples to its own directory,
and the endpoint that serves them (`/metrics` on the web, the worker's metrics port) reads the whole
directory. That is what lets a prefork child's analysis metrics be scraped from the worker pod.

Tracing. One tracer provider per process: spans are always created (log lines carry their ids)
and exported over OTLP only when OTEL_EXPORTER_OTLP_ENDPOINT is set. Web processes instrument
Django and Celery (the producer side injects the trace context into the task headers); Celery
children set tracing up after the fork (socproject/celery.py), since a gRPC channel or an exporter
thread never survives one. A missing collector never holds a process up at exit: shutdown waits
at most SHUTDOWN_SECONDS.

Nothing here imports prometheus_client at module level: it picks multiprocess mode once, when it
is first imported, from the directory `metrics_directory` names (threats/metrics.py asks first).
"""

import atexit
import contextlib
import contextvars
import functools
import logging
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)
analysis_log = logging.getLogger("agents.analysis")

SHUTDOWN_SECONDS = 2.0  # the longest a process waits at exit for spans to leave
EXPORT_TIMEOUT_SECONDS = 5.0  # one export, retries included (the SDK default is 10 s)
# Probes and scrapes arrive every few seconds from every pod: tracing them would bury the real traffic.
UNTRACED_URLS = "/health$,/ready$,/metrics$"  # regular expressions searched in the request URL
ANALYZERS = ("adversarial", "false_positive", "response", "timeline")

_tracing = {"pid": None, "provider": None, "exporters": [], "sinks": 0}  # sinks: span processors
_tracer = {"pid": None, "tracer": None}
_steps = contextvars.ContextVar("analysis_steps", default=None)
_metrics = {"path": None}  # this process's metric directory (a forked child keeps its parent's)


# --- Metric storage ---------------------------------------------------------------------------


def metrics_directory():
    """This process's directory for metric files, made on first use and inherited by the children
    it forks; PROMETHEUS_MULTIPROC_DIR names it for prometheus_client.

    threats/metrics.py calls it before it imports prometheus_client. A process started with exec
    (another Daphne, a test's subprocess) makes its own directory; a forked Celery child keeps its
    parent's, as the worker imports its tasks, and so the metrics, before it forks. Removed at exit.
    """
    if _metrics["path"] is None:
        path = tempfile.mkdtemp(prefix="soc-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        atexit.register(_remove_directory, path, os.getpid())
        _metrics["path"] = path
    return _metrics["path"]


def _remove_directory(path, owner):
    if os.getpid() == owner:  # forked children inherit the handler, not the directory
        shutil.rmtree(path, ignore_errors=True)


def start_worker_metrics_server(port, address="0.0.0.0"):  # noqa: S104 - pod-local port, see docs/observability.md
    """Serve every process's metrics of this worker tree on `port` (run in the worker's main process)."""
    from threats.metrics import worker_registry  # first: it names the metric directory

    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=address, registry=worker_registry())
    log.info("worker metrics on port %s", server.server_port)
    return server


# --- Tracing ----------------------------------------------------------------------------------


def setup_tracing():
    """Install this process's tracer provider, once. A process that forks workers (the Celery main
    process of a prefork pool) must not call this: each child sets up its own after the fork."""
    if _tracing["provider"] is not None:
        return _tracing["provider"]
    from django.conf import settings
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": settings.OTEL_SERVICE_NAME, "process.pid": os.getpid()})
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    exporter = _otlp_exporter(settings.OTEL_EXPORTER_OTLP_ENDPOINT, settings.OTEL_EXPORTER_OTLP_PROTOCOL)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    atexit.register(shutdown_tracing)
    _tracing.update(pid=os.getpid(), provider=provider, exporters=[exporter] if exporter else [],
                    sinks=1 if exporter else 0)
    return provider


def _otlp_exporter(endpoint, protocol):
    if not endpoint:
        return None
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"),
                                timeout=EXPORT_TIMEOUT_SECONDS)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # The variable names the collector's base URL; the traces path is appended, as the spec says.
    return OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=EXPORT_TIMEOUT_SECONDS)


def add_span_processor(processor):
    """Attach one more processor to this process's provider (tests: an in-memory exporter)."""
    setup_tracing().add_span_processor(processor)
    _tracing["sinks"] += 1


def exporting():
    """Whether spans of this process go anywhere (an OTLP exporter, or a processor a test added).
    When none do, an analysis makes only its root span (its ids are in the log lines) and skips
    the twelve per-phase and per-agent spans nobody could ever read (8 % of a worker's time)."""
    return _tracing["sinks"] > 0 and _tracing["pid"] == os.getpid()


def shutdown_tracing(timeout=SHUTDOWN_SECONDS):
    """Send what is buffered, but never wait for a missing collector longer than `timeout`."""
    provider = _tracing["provider"]
    if provider is None or _tracing["pid"] != os.getpid():
        return
    worker = threading.Thread(target=provider.shutdown, name="otel-shutdown", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        for exporter in _tracing["exporters"]:
            exporter.shutdown()  # ends the exporter's retry wait; the spans still queued are dropped
        log.warning("trace export did not finish within %.0f s at exit; unsent spans dropped", timeout)


# The library's request middleware, except that a request Django cancels (its client went away)
# still ends its span in the context that attached it (see the module's docstring).
REQUEST_SPAN_MIDDLEWARE = "socproject.request_tracing.RequestSpanMiddleware"


def instrument_web():
    """Web processes: request spans, and the trace context carried into Celery task headers."""
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    provider = setup_tracing()
    if not DjangoInstrumentor().is_instrumented_by_opentelemetry:
        DjangoInstrumentor._opentelemetry_middleware = REQUEST_SPAN_MIDDLEWARE  # the path it inserts first
        DjangoInstrumentor().instrument(tracer_provider=provider, excluded_urls=UNTRACED_URLS)
    instrument_celery()


def instrument_celery():
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    provider = setup_tracing()
    if not CeleryInstrumentor().is_instrumented_by_opentelemetry:
        CeleryInstrumentor().instrument(tracer_provider=provider)


def tracer():
    """This process's analysis tracer (looked up once: an analysis makes about fifteen spans).
    Before `setup_tracing` it is the API's proxy, which follows the provider once one is set."""
    if _tracer["pid"] != os.getpid():
        from opentelemetry import trace

        _tracer.update(pid=os.getpid(), tracer=trace.get_tracer("soc.analysis"))
    return _tracer["tracer"]


class ContextExecutor(ThreadPoolExecutor):
    """A thread pool whose jobs run in the submitter's context, so a trace goes on in the pool threads."""

    def submit(self, fn, /, *args, **kwargs):
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


# --- The analysis: one span per analysis, agent and analyzer; phase and agent metrics ----------


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

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
import contextvars
import logging
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

SHUTDOWN_SECONDS = 2.0  # the longest a process waits at exit for spans to leave
EXPORT_TIMEOUT_SECONDS = 5.0  # one export, retries included (the SDK default is 10 s)
# Probes and scrapes arrive every few seconds from every pod: tracing them would bury the real traffic.
UNTRACED_URLS = "/health$,/ready$,/metrics$"  # regular expressions searched in the request URL

_tracing = {"pid": None, "provider": None, "exporters": [], "sinks": 0}  # sinks: span processors
_tracer = {"pid": None, "tracer": None}
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

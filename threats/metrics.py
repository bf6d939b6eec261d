"""Prometheus metrics: their definitions, the gauges read from the database, and `/metrics`.

Every metric is listed with its meaning in docs/observability.md. Counters and histograms are
kept by prometheus_client in multiprocess mode (socproject/telemetry.py): a web pod's `/metrics`
shows what its Daphne process did; a worker pod's metrics port shows what all its Celery children
did. The triage gauges (open threats, threats requiring review, pending analyses) are counted in
the database at scrape time, so they are exact and every web pod reports the same value: aggregate
them with max(), not sum().

Labels only take bounded values: threat families, severities, statuses, agent kinds, route
patterns, event types, importer names.
"""

import ipaddress
import time
from collections import Counter as Tally

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, Q
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from socproject import telemetry

# prometheus_client picks its storage once, when first imported: name this process's directory first.
telemetry.metrics_directory()

from prometheus_client import (  # noqa: E402
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily  # noqa: E402

if not getattr(values.ValueClass, "_multiprocess", False):
    # Something imported prometheus_client before this module could name the directory.
    raise ImproperlyConfigured("prometheus_client was imported before threats.metrics set PROMETHEUS_MULTIPROC_DIR")

SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
WAIT_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
HTTP_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

# --- Analysis (recorded where the analysis runs: a worker child, or the web process when embedded) ---

THREATS_PROCESSED = Counter("soc_threats_processed", "Analyses completed, by threat family and decided severity",
                            ["threat_type", "severity"])
ANALYSIS_FAILURES = Counter("soc_analysis_failures", "Analysis runs that raised (the threat is marked failed)")
ANALYSIS_SKIPPED = Counter("soc_analysis_skipped",
                           "Analysis tasks with nothing to do: threat gone or already analysed (redelivered task)")
ANALYSES_REQUEUED = Counter("soc_analyses_requeued", "Stuck analyses queued again by the sweeper")
QUEUE_WAIT = Histogram("soc_analysis_queue_wait_seconds", "From a threat's receipt to the start of its analysis",
                       buckets=WAIT_SECONDS)
PHASE_DURATION = Histogram("soc_analysis_phase_duration_seconds",
                           "Analysis time by phase (gather, agents, each analyzer, store; total)", ["phase"],
                           buckets=SECONDS)
AGENT_DURATION = Histogram("soc_agent_duration_seconds", "One agent's analysis of one threat", ["agent", "status"],
                           buckets=SECONDS)
FALSE_POSITIVE_SCORE = Histogram("soc_false_positive_score", "False-positive likelihood of analysed threats (0-1)",
                                 buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0))

# --- Real time (recorded by the web process that holds the sockets, and by whoever broadcasts) ---

WS_CONNECTIONS = Gauge("soc_websocket_connections", "Open /ws connections in this pod", multiprocess_mode="livesum")
WS_CONNECTS = Counter("soc_websocket_connects", "/ws handshakes, accepted or refused (not logged in, no role)",
                      ["outcome"])
WS_RESUMES = Counter("soc_websocket_resumes", "Client resume requests, by outcome (resumed, resync, invalid)",
                     ["outcome"])
WS_REPLAYED = Counter("soc_websocket_replayed_events", "Events a socket sent from the database log (resume, gap)")
WS_GAPS = Counter("soc_websocket_gaps", "Live events that arrived ahead of a socket's position (a push was lost)")
EVENTS_BROADCAST = Counter("soc_events_broadcast", "Events pushed to the channel layer after commit", ["type"])
LAYER_SEND_FAILURES = Counter("soc_channel_layer_send_failures",
                              "Channel-layer group sends that failed (overflow, Redis down); clients catch up")
SLA_WARNINGS = Counter("soc_sla_warnings", "Near-breach warnings sent (threat.sla_warning, docs/queue.md), by severity",
                       ["severity"])
STORIES_FLAGGED = Counter("soc_stories_flagged", "Attack stories flagged (story.flagged, docs/stories.md), by the "
                          "story's severity", ["severity"])
REDIS_PUBLISH_FAILURES = Counter("soc_redis_publish_failures", "Failed PUBLISHes on the threats:events channel")

# --- Ingestion and HTTP ---------------------------------------------------------------------------

INGEST_ITEMS = Counter("soc_ingest_items", "Ingested alert items by format and outcome (created, duplicate, "
                       "skipped, error)", ["source", "outcome"])
HTTP_REQUESTS = Counter("soc_http_requests", "HTTP responses by method, route pattern and status",
                        ["method", "route", "status"])
HTTP_DURATION = Histogram("soc_http_request_duration_seconds", "HTTP request time by method and route pattern",
                          ["method", "route"], buckets=HTTP_SECONDS)


def _zero_series():
    """Series of small known label sets exist from the start at 0, so a rate() or an alert sees them
    before the first event (an absent series reads as "no data", not as zero)."""
    from .choices import EventType

    for outcome in ("accepted", "refused"):
        WS_CONNECTS.labels(outcome)
    for outcome in ("resumed", "resync", "invalid"):
        WS_RESUMES.labels(outcome)
    for event_type in EventType.values:
        EVENTS_BROADCAST.labels(event_type)
    for source in INGEST_FORMATS:
        for outcome in ("created", "duplicate", "skipped", "error"):
            INGEST_ITEMS.labels(source, outcome)
    EVENTS_BROADCAST.labels("story.flagged")  # not a threat event type: recorded by stitching (docs/stories.md)
    for severity in ("LOW", "MEDIUM", "HIGH", "CRITICAL"):
        SLA_WARNINGS.labels(severity)
        STORIES_FLAGGED.labels(severity)


INGEST_FORMATS = ("generic", "wazuh", "suricata", "ecs")
_zero_series()


def analysis_recorded(threat, started_at):
    """One analysis stored: count it and sample its queue wait, total time and false-positive score."""
    from .analysis import family

    THREATS_PROCESSED.labels(family(threat.threat_type), threat.severity).inc()
    QUEUE_WAIT.observe(max(0.0, (started_at - threat.received_at).total_seconds()))
    PHASE_DURATION.labels("total").observe((timezone.now() - started_at).total_seconds())
    FALSE_POSITIVE_SCORE.observe(float((threat.false_positive or {}).get("score") or 0.0))


def count_ingested(source, results):
    for outcome, count in Tally(result.status for result in results).items():
        INGEST_ITEMS.labels(source, outcome).inc(count)


def socket_opened(consumer):
    WS_CONNECTS.labels("accepted").inc()
    WS_CONNECTIONS.inc()
    consumer.counted_open = True


def socket_closed(consumer):
    """Called for every disconnect, including handshakes refused before accept (never counted open)."""
    if getattr(consumer, "counted_open", False):
        consumer.counted_open = False
        WS_CONNECTIONS.dec()


# --- Gauges from the database ------------------------------------------------------------------------


class DatabaseCollector:
    """Triage state counted at scrape time: exact after every triage, the same from every pod."""

    def collect(self):
        from .choices import CLOSED_STATUSES, AnalysisStatus, Severity, Status

        pending_states = [AnalysisStatus.QUEUED, AnalysisStatus.RUNNING]
        rows = (
            _threats()
            .filter(~Q(status__in=CLOSED_STATUSES) | Q(analysis_status__in=pending_states))
            .values("status", "severity", "requires_human_review", "analysis_status")
            .annotate(n=Count("pk"))
        )
        open_statuses = [s for s in Status.values if s not in CLOSED_STATUSES]
        severities = ["", *Severity.values]
        opened = {(status, severity): 0 for status in open_statuses for severity in severities}
        review = dict.fromkeys(severities, 0)
        pending = dict.fromkeys(pending_states, 0)
        for row in rows:
            if row["status"] not in CLOSED_STATUSES:
                opened[row["status"], row["severity"]] = opened.get((row["status"], row["severity"]), 0) + row["n"]
                if row["requires_human_review"]:
                    review[row["severity"]] = review.get(row["severity"], 0) + row["n"]
            if row["analysis_status"] in pending:
                pending[row["analysis_status"]] += row["n"]
        yield _gauge("soc_open_threats", "Threats not resolved or closed, by triage status and severity "
                     "(severity empty until analysed)", ["status", "severity"], opened)
        yield _gauge("soc_threats_requiring_review", "Open threats the agents flagged for human review, by severity",
                     ["severity"], {(k,): v for k, v in review.items()})
        yield _gauge("soc_analyses_pending", "Threats whose analysis is queued or running", ["analysis_status"],
                     {(str(k),): v for k, v in pending.items()})


def _threats():
    from .models import Threat

    return Threat.objects.order_by()


def _gauge(name, documentation, labels, counts):
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for key, value in counts.items():
        family.add_metric([str(part) for part in key], value)
    return family


# --- Serving ------------------------------------------------------------------------------------------


def _registry(database):
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=telemetry.metrics_directory())
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    if database:
        registry.register(DatabaseCollector())
    return registry


def worker_registry():
    """What a worker pod serves: its children's analysis metrics (the database gauges come from the web)."""
    return _registry(database=False)


def exposition():
    """This web process's metrics and the database gauges, in Prometheus text format."""
    return generate_latest(_registry(database=True))


@never_cache
@require_GET
def metrics_view(request):
    """Prometheus text format. No login: reachable only inside the cluster (docs/observability.md)."""
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


async def asgi_metrics(scope, receive, send):
    """`/metrics` under Daphne, answered before Django: Prometheus scrapes a pod by its IP, a Host
    that Django's ALLOWED_HOSTS check would refuse (the probes set an allowed Host; a scrape cannot).
    So the rule here is its own: an IP address or an allowed host name (`scrape_host_allowed`)."""
    from channels.db import database_sync_to_async

    if not scrape_host_allowed(scope):
        status, body, headers = 400, b"Host not allowed.\n", []
    elif scope["method"] not in ("GET", "HEAD"):
        status, body, headers = 405, b"Method not allowed.\n", [(b"allow", b"GET, HEAD")]
    else:
        status, headers = 200, [(b"cache-control", b"no-store")]
        body = await database_sync_to_async(exposition)()
    headers += [(b"content-type", CONTENT_TYPE_LATEST.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


def scrape_host_allowed(scope):
    """One Host header naming an IP address (how Prometheus addresses a pod) or one of
    ALLOWED_HOSTS. Any other name is refused: a browser that a hostile page pointed at the pod by DNS
    rebinding sends that page's host name, never the pod's IP."""
    from django.http.request import split_domain_port, validate_host

    hosts = [value.decode("latin-1") for key, value in scope.get("headers", []) if key.lower() == b"host"]
    if len(hosts) != 1:
        return False
    domain, _port = split_domain_port(hosts[0])
    return bool(domain) and (_is_ip_address(domain.strip("[]")) or validate_host(domain, settings.ALLOWED_HOSTS))


def _is_ip_address(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# --- HTTP request metrics -----------------------------------------------------------------------------


class HttpMetricsMiddleware:
    """Counts and times every response by route pattern (never the raw path: bounded labels).

    Sync and async capable, so it adds no thread hop under Daphne."""

    sync_capable = async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        _observe(request, response, started)
        return response

    async def _acall(self, request):
        started = time.perf_counter()
        response = await self.get_response(request)
        _observe(request, response, started)
        return response


def _observe(request, response, started):
    match = getattr(request, "resolver_match", None)
    if match is not None:
        route = match.route or match.view_name or "unnamed"
    else:
        route = "static" if request.path.startswith("/" + settings.STATIC_URL.lstrip("/")) else "unmatched"
    method = request.method if request.method in METHODS else "other"
    HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
    HTTP_DURATION.labels(method, route).observe(time.perf_counter() - started)

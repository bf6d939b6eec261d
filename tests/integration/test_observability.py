"""Observability with real processes: a Daphne pod and a prefork Celery worker export one trace per
threat to a real OTLP receiver (http/protobuf and gRPC, on loopback), the worker's metrics port shows
its children's analysis metrics, logs are JSON lines with the trace id, /ready does a real
channel-layer round trip, and a process whose collector is missing still exits promptly."""

import http.server
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent import futures

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.integration.cluster import REPO_ROOT, Cluster, free_port
from tests.integration.server import login, trigger

pytestmark = pytest.mark.integration

WAIT_SECONDS = 30
# The SDK alone waits up to 10 s per export (then retries); telemetry.SHUTDOWN_SECONDS is 2.
EXIT_BOUND_SECONDS = 5


class Spans:
    """Spans received by a collector, by service and name."""

    def __init__(self):
        self.lock, self.items = threading.Lock(), []

    def add(self, request):
        with self.lock:
            for resource_spans in request.resource_spans:
                attributes = {a.key: a.value.string_value or a.value.int_value
                              for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.items.append({"name": span.name, "trace_id": span.trace_id.hex(),
                                           "span_id": span.span_id.hex(), "parent": span.parent_span_id.hex(),
                                           "pid": attributes.get("process.pid"),
                                           "service": attributes.get("service.name"),
                                           "attributes": {a.key: a.value for a in span.attributes}})

    def wait_for(self, condition, what):
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            with self.lock:
                if condition(list(self.items)):
                    return list(self.items)
            time.sleep(0.2)  # the processes export in batches, every few seconds
        raise AssertionError(f"never received {what}; got {sorted({s['name'] for s in self.items})}")


@pytest.fixture
def http_collector():
    spans = Spans()

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            spans.add(request)
            answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200 if self.path == "/v1/traces" else 404)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    spans.endpoint = f"http://127.0.0.1:{server.server_port}"
    yield spans
    server.shutdown()


@pytest.fixture
def grpc_collector():
    import grpc

    spans = Spans()

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):  # noqa: N802 - the generated service's naming
            spans.add(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    spans.endpoint = f"http://127.0.0.1:{port}"
    yield spans
    server.stop(grace=None)


def _cluster(collector, protocol):
    return Cluster(pods=1, worker=False, beat=False, nginx=False, env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_SERVICE_NAME": "soc-test", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO",
    })


def _start_worker(cluster, metrics_port):
    """The cluster's worker, with the metrics port the chart gives it (the cluster stops it)."""
    cluster.worker = cluster._process("worker", ["-m", "celery", "-A", "socproject", "worker", "-c", "2",
                                                 "--without-gossip", "--without-mingle",
                                                 "--metrics-port", str(metrics_port)])
    return cluster.worker


def _one_trace(spans, threat_id):
    def complete(items):
        analysis = [s for s in items if s["name"] == "analysis"
                    and s["attributes"].get("threat.id") and s["attributes"]["threat.id"].string_value == threat_id]
        if not analysis:
            return False
        trace = {s["name"] for s in items if s["trace_id"] == analysis[0]["trace_id"]}
        return {"POST api/threats/trigger", "run/agents.analyze_threat", "agent.priority",
                "analyzer.timeline", "analysis.store"} <= trace

    items = spans.wait_for(complete, f"the whole trace of threat {threat_id}")
    analysis = next(s for s in items if s["name"] == "analysis"
                    and s["attributes"]["threat.id"].string_value == threat_id)
    return [s for s in items if s["trace_id"] == analysis["trace_id"]]


def test_a_real_worker_continues_the_request_s_trace_over_http_protobuf_and_serves_its_metrics(http_collector):
    metrics_port = free_port()
    with _cluster(http_collector, "http/protobuf") as cluster:
        worker = _start_worker(cluster, metrics_port)
        try:
            threat = trigger(login(cluster.pod_url(0)), scenario="critical_threat")
            trace = _one_trace(http_collector, threat["id"])
            worker_metrics = _scrape(f"http://127.0.0.1:{metrics_port}/metrics")
            children = cluster.worker_children()
        finally:
            worker.stop()
        web_log, worker_log = cluster.pods[0].log_tail(200_000), worker.log_tail(200_000)

    request = next(s for s in trace if s["name"] == "POST api/threats/trigger")
    task = next(s for s in trace if s["name"] == "run/agents.analyze_threat")
    analysis = next(s for s in trace if s["name"] == "analysis")
    assert request["pid"] == cluster.pods[0].pid and task["pid"] in children and task["pid"] != request["pid"]
    assert analysis["parent"] == task["span_id"]
    assert {s["service"] for s in trace} == {"soc-test"}
    assert {f"agent.{k}" for k in ("historical", "config", "devops", "context", "priority")} <= {
        s["name"] for s in trace if s["parent"] == analysis["span_id"]}
    # The pool child's analysis, scraped from the worker's main process.
    assert 'soc_threats_processed_total{severity="CRITICAL",threat_type=' in worker_metrics
    assert "soc_agent_duration_seconds_count" in worker_metrics

    mine = [json.loads(line) for line in (web_log + worker_log).splitlines()
            if line.startswith("{") and analysis["trace_id"] in line]
    assert mine and all(line["trace_id"] == analysis["trace_id"] for line in mine)
    print(f"\nlog lines (LOG_LEVEL=INFO) carrying this threat's trace: {len(mine)}: "
          f"{[line['message'][:60] for line in mine]}")
    assert len(mine) <= 5
    for text in (web_log, worker_log):
        lines = [line for line in text.splitlines() if line.strip()]
        assert all(json.loads(line) for line in lines if line.startswith("{"))
    assert "[queues]" not in worker_log  # no ASCII banner between the JSON lines


def test_the_chart_default_protocol_grpc_exports_to_a_grpc_collector(grpc_collector):
    with _cluster(grpc_collector, "grpc") as cluster:
        worker = _start_worker(cluster, free_port())
        try:
            threat = trigger(login(cluster.pod_url(0)), threat_type="bot_traffic")
            trace = _one_trace(grpc_collector, threat["id"])
        finally:
            worker.stop()
    assert len({s["pid"] for s in trace}) == 2  # the web pod and a worker child, one trace


def _scrape(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return response.read().decode()


def test_metrics_answer_a_scrape_that_names_the_pod_by_ip_and_ready_round_trips_the_layer():
    with Cluster(pods=1, worker=False, beat=False, nginx=False) as cluster:
        port = cluster.pod_ports[0]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Host": f"10.1.2.3:{port}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert b"soc_websocket_connections" in response.read()
        with urllib.request.urlopen(cluster.pod_url(0) + "/ready", timeout=5) as response:
            assert json.loads(response.read()) == {"status": "ready"}
        subscribed = subprocess.run(["redis-cli", "-p", str(cluster.redis_port), "pubsub", "channels", "*ready*"],
                                    capture_output=True, text=True).stdout.split()
        assert subscribed == []  # the probe's channel is unsubscribed after its round trip


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_process_whose_collector_never_answers_exits_promptly(protocol, tmp_path):
    # A listening socket that accepts nothing: connections hang instead of being refused.
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)
    script = (
        "import django; django.setup()\n"
        "from socproject import telemetry\n"
        "telemetry.setup_tracing()\n"
        "tracer = telemetry.tracer()\n"
        "for i in range(50):\n"
        "    with tracer.start_as_current_span(f'span {i}'): pass\n"
        "import time; print('done', time.time(), flush=True)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "socproject.settings", "DJANGO_SECRET_KEY": "x" * 40,
           "DJANGO_ALLOWED_HOSTS": "localhost", "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
           "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{silent.getsockname()[1]}",
           "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}
    try:
        result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True,
                                text=True, timeout=60)
        exited = time.time()
    finally:
        silent.close()
    assert result.returncode == 0 and "done" in result.stdout, result.stderr
    took = exited - float(result.stdout.split()[1])  # from the script's last line to the process's end
    print(f"\n{protocol}: exited {took:.1f} s after its work ended, with an unresponsive collector")
    assert took < EXIT_BOUND_SECONDS


def test_daphne_stops_promptly_on_sigterm_without_a_collector(tmp_path):
    dead_port = free_port()  # nothing listens here
    with Cluster(pods=1, worker=False, beat=False, nginx=False, env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{dead_port}"}) as cluster:
        trigger(login(cluster.pod_url(0)), threat_type="geo_anomaly")  # spans waiting to be exported
        pod = cluster.pods[0]
        started = time.monotonic()
        pod.popen.send_signal(signal.SIGTERM)
        pod.popen.wait(timeout=60)
        took = time.monotonic() - started
    print(f"\nDaphne exited {took:.1f} s after SIGTERM with no collector")
    assert took < EXIT_BOUND_SECONDS


@pytest.mark.django_db
def test_ready_leaves_no_redis_connection_open_after_its_probes(client, settings, redis_url):
    import redis

    settings.REDIS_URL = redis_url
    with redis.Redis.from_url(redis_url) as watcher:
        before = len(watcher.client_list())
        for _ in range(5):
            assert client.get("/ready").status_code == 200
        assert len(watcher.client_list()) == before  # only the watcher itself

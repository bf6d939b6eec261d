"""The topology run: what the chart renders, started as local processes.

The chart is rendered (external database = one of our own, Redis with a generated password, fast
synthetic generation). Then, in Kubernetes order and with each container's *rendered* command,
args and environment (ConfigMap and Secret resolved, `$(VAR)` expanded, `/tmp` mounts and Service
addresses mapped to loopback):

  Redis -> the migration Job -> every pod's wait-for-migrations init container -> the seed Job
  -> 2 backend pods (Daphne), the Celery worker, Celery beat -> the frontend nginx (its rendered
  server block)

and every rendered probe is run against them. A WebSocket client on backend pod B then receives a
threat triggered through pod A, and a client going through the frontend receives it too.
"""

import asyncio
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.chart import helmchart as hc
from tests.integration.cluster import Process
from tests.integration.server import create_postgres_database, drop_postgres_database, free_port, login, trigger

pytestmark = [pytest.mark.chart, pytest.mark.integration]

STARTUP_SECONDS = 60
FRAME_SECONDS = 30
VENV_BIN = Path(sys.executable).parent


def values(database_url):
    return {
        "postgresql": {"enabled": False},
        "externalDatabase": {"url": database_url},
        "redis": {"auth": {"enabled": True}},
        "backend": {"env": {
            "THREAT_GENERATION_INTERVAL": "2",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "",  # no collector on this machine
        }},
    }


def image_env():
    """The ENV of the Dockerfile's runtime stage, with the image's /opt/venv/bin mapped to ours."""
    dockerfile = re.sub(r"\\\n\s*", " ", (hc.REPO_ROOT / "Dockerfile").read_text())
    runtime = dockerfile.split("AS runtime", 1)[1]
    env = {}
    for line in runtime.splitlines():
        if line.startswith("ENV "):
            env.update(word.split("=", 1) for word in shlex.split(line[4:]))
    env["PATH"] = env["PATH"].replace("/opt/venv/bin", str(VENV_BIN)).replace("$PATH", os.environ["PATH"])
    return env


def expand(text, env):
    """Kubernetes' $(VAR) expansion in command and args."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), text)


class Topology:
    def __init__(self, tmp, database_url):
        self.tmp = tmp
        self.objects = hc.render(values(database_url))
        self.redis_port = free_port()
        self.backend_ports = [free_port(), free_port()]
        self.frontend_port = free_port()
        self.processes = []
        self.hostname = socket.gethostname()

    # --- rendered containers, mapped to this machine ----------------------------------------------

    def container(self, component, name=None):
        spec = hc.pod_of(self.objects, component)[2]
        return hc.container(spec, name or spec["containers"][0]["name"])

    def env(self, container):
        """The container's environment with the cluster's Service addresses mapped to loopback."""
        rendered = hc.env_values(self.objects, container)
        mapped = {k: v.replace("soc-agent-redis:6379", f"127.0.0.1:{self.redis_port}") for k, v in rendered.items()}
        return {**image_env(), "HOME": str(self.tmp), "HOSTNAME": self.hostname, **mapped}

    def argv(self, container, tmp_dir, extra=()):
        env = self.env(container)
        argv = [expand(arg, env) for arg in container["command"] + container.get("args", [])]
        return [arg.replace("/tmp", str(tmp_dir)) for arg in argv] + list(extra), env

    def pod_tmp(self, name):
        directory = self.tmp / f"{name}-tmp"
        directory.mkdir(exist_ok=True)
        return directory

    def run_to_completion(self, component, name=None, timeout=300):
        container = self.container(component, name)
        argv, env = self.argv(container, self.pod_tmp(component))
        result = subprocess.run(argv, cwd=hc.REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"{component}/{container['name']}: {argv}\n{result.stdout}\n{result.stderr}"
        return result

    def start(self, name, component, replace=()):
        container = self.container(component)
        argv, env = self.argv(container, self.pod_tmp(name))
        for old, new in replace:
            argv[argv.index(old) + 1] = new
        process = Process(name, argv, env, self.tmp)
        process.start()
        self.processes.append(process)
        return process

    # --- lifecycle --------------------------------------------------------------------------------

    def start_redis(self):
        container = self.container("redis")
        argv, env = self.argv(container, self.pod_tmp("redis"), extra=["--bind", "127.0.0.1"])
        argv[argv.index("--port") + 1] = str(self.redis_port)
        argv[argv.index("--dir") + 1] = str(self.pod_tmp("redis"))
        self.redis_process = Process("redis", argv, env, self.tmp).start()
        self.processes.append(self.redis_process)
        self.wait_for_exec_probe("redis", container["readinessProbe"], self.redis_process,
                                 replace=("-p 6379", f"-p {self.redis_port}"))

    def start_backends(self):
        self.backends = [
            self.start(f"backend-{index}", "backend", replace=[("-b", "127.0.0.1"), ("-p", str(port))])
            for index, port in enumerate(self.backend_ports)
        ]
        probe = self.container("backend")["readinessProbe"]["httpGet"]
        for process, port in zip(self.backends, self.backend_ports):
            self.wait_for_http(process, port, probe)

    def start_frontend(self):
        conf = hc.find(self.objects, "ConfigMap", "soc-agent-frontend")["data"]["default.conf"]
        servers = "".join(f"server 127.0.0.1:{port};\n" for port in self.backend_ports)
        conf = conf.replace("server soc-agent-backend:8000;\n", servers)
        conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{self.frontend_port};")
        conf = conf.replace("/usr/share/nginx/html/static/", f"{hc.REPO_ROOT}/staticfiles/")
        (self.tmp / "conf.d").mkdir()
        (self.tmp / "conf.d" / "default.conf").write_text(conf)
        t = self.pod_tmp("frontend")
        # The image's nginx.conf, minimal; as root (CI) the workers must not drop to "nobody".
        user = "user root;\n" if os.geteuid() == 0 else ""
        (self.tmp / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {t}/nginx.pid;\nerror_log {t}/error.log warn;\n"
            f"events {{ worker_connections 256; }}\n"
            f"http {{ include /etc/nginx/mime.types; access_log off; client_body_temp_path {t}/body; "
            f"proxy_temp_path {t}/proxy; fastcgi_temp_path {t}/fastcgi; uwsgi_temp_path {t}/uwsgi; "
            f"scgi_temp_path {t}/scgi; include {self.tmp}/conf.d/*.conf; }}\n")
        frontend = self.container("frontend")
        argv = frontend["command"][:1] + ["-c", str(self.tmp / "nginx.conf")] + frontend["command"][1:]
        self.frontend = Process("frontend", argv, os.environ.copy(), self.tmp).start()
        self.processes.append(self.frontend)
        probe = frontend["readinessProbe"]["httpGet"]
        self.wait_for_http(self.frontend, self.frontend_port, probe)

    def stop(self):
        for process in reversed(self.processes):
            process.stop()

    # --- probes -----------------------------------------------------------------------------------

    def http_probe(self, port, probe):
        headers = {h["name"]: h["value"] for h in probe.get("httpHeaders", [])}
        request = urllib.request.Request(f"http://127.0.0.1:{port}{probe['path']}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except (urllib.error.URLError, ConnectionError, OSError):
            return None

    def wait_for_http(self, process, port, probe):
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert process.alive(), f"{process.name} exited:\n{process.log_tail()}"
            if self.http_probe(port, probe) == 200:
                return
            time.sleep(0.2)  # waiting for a real process to start
        pytest.fail(f"{process.name}: {probe['path']} never answered 200:\n{process.log_tail()}")

    def exec_probe(self, component, probe, replace=None):
        container = self.container(component)
        argv, env = self.argv({**container, "command": probe["exec"]["command"], "args": []}, self.pod_tmp(component))
        if replace:
            argv = [arg.replace(*replace) for arg in argv]
        return subprocess.run(argv, cwd=hc.REPO_ROOT, env=env, capture_output=True, text=True,
                              timeout=probe.get("timeoutSeconds", 10) + 30)

    def wait_for_exec_probe(self, component, probe, process, replace=None):
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert process.alive(), f"{process.name} exited:\n{process.log_tail()}"
            result = self.exec_probe(component, probe, replace)
            if result.returncode == 0:
                return
            time.sleep(0.5)  # waiting for a real process to start
        pytest.fail(f"{component} probe {probe['exec']['command']} kept failing: {result.stderr}\n{process.log_tail()}")


@pytest.fixture(scope="module")
def topology(request):
    tmp = Path(tempfile.mkdtemp(prefix="soc-chart-topology-"))
    outer = os.environ.get("DATABASE_URL", "")
    postgres_server = outer if outer.startswith(("postgres://", "postgresql://")) else None
    database, database_url = (None, f"sqlite:///{tmp}/db.sqlite3")
    if postgres_server:
        database, database_url = create_postgres_database(postgres_server, prefix="chart")
    running = Topology(tmp, database_url)
    failed_before = request.session.testsfailed
    try:
        running.start_redis()
        running.steps = {}
        yield running
    finally:
        running.stop()
        if request.session.testsfailed > failed_before:
            for log in sorted(tmp.glob("*.log")):
                print(f"\n--- {log.name} ---\n{log.read_text(errors='replace')[-3000:]}")
        if database:
            drop_postgres_database(postgres_server, database)
        shutil.rmtree(tmp, ignore_errors=True)


# The tests run in order, each one a stage of an install.


def test_redis_runs_with_its_rendered_args_and_the_generated_password(topology):
    password = hc.secret_data(topology.objects)["redis-password"]
    unauthenticated = subprocess.run(["redis-cli", "-p", str(topology.redis_port), "ping"], capture_output=True, text=True)

    assert "NOAUTH" in unauthenticated.stdout + unauthenticated.stderr
    assert f":{password}@127.0.0.1:{topology.redis_port}" in topology.env(topology.container("backend"))["REDIS_URL"]


def test_app_pods_wait_while_migrations_are_missing(topology):
    check = topology.container("backend", "wait-for-migrations")["command"][-1]
    assert "python manage.py migrate --check" in check
    argv, env = topology.argv(topology.container("backend", "wait-for-migrations"), topology.pod_tmp("init"))

    result = subprocess.run(["python", "manage.py", "migrate", "--check"], cwd=hc.REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=120)

    assert result.returncode != 0


def test_the_migration_job_migrates(topology):
    result = topology.run_to_completion("migrate")

    assert "Applying threats." in result.stdout


def test_after_it_every_wait_for_migrations_init_container_finishes(topology):
    for component in ("backend", "worker", "beat", "seed"):
        topology.run_to_completion(component, "wait-for-migrations", timeout=120)


def test_the_seed_job_creates_the_demo_login(topology):
    result = topology.run_to_completion("seed")

    assert "Log in as analyst / analyst" in result.stdout


def test_two_backend_pods_pass_their_readiness_and_liveness_probes(topology):
    topology.start_backends()
    backend = topology.container("backend")

    for port in topology.backend_ports:
        assert topology.http_probe(port, backend["readinessProbe"]["httpGet"]) == 200
        assert topology.http_probe(port, backend["livenessProbe"]["httpGet"]) == 200
        assert topology.http_probe(port, {"path": "/health"}) == 400  # the kubelet's default Host: refused


def test_the_worker_and_beat_pass_their_liveness_probes(topology):
    worker = topology.start("worker", "worker")
    beat = topology.start("beat", "beat")

    topology.wait_for_exec_probe("worker", topology.container("worker")["livenessProbe"], worker)
    topology.wait_for_exec_probe("beat", topology.container("beat")["livenessProbe"], beat)
    assert list(topology.pod_tmp("beat").glob("celerybeat-schedule*"))


def test_a_client_on_one_backend_pod_receives_a_threat_triggered_through_the_other(topology):
    port_a, port_b = topology.backend_ports
    session = login(f"http://localhost:{port_a}")

    async def scenario():
        async with _socket(f"localhost:{port_b}", session) as ws:
            assert (await _receive(ws))["type"] == "hello"
            created = await asyncio.to_thread(trigger, session, scenario="critical_threat")
            frames = await _frames_for(ws, created["id"], {"threat.created", "threat.analyzed"})
            return created, frames

    created, frames = asyncio.run(scenario())

    assert [f["type"] for f in frames] == ["threat.created", "threat.analyzed"]
    assert frames[1]["threat"]["severity"] == "CRITICAL"


def test_beat_generates_threats_that_workers_analyse_and_every_pod_pushes(topology):
    session = login(f"http://localhost:{topology.backend_ports[1]}")

    async def scenario():
        generated = set()
        async with _socket(f"localhost:{topology.backend_ports[0]}", session) as ws:
            await _receive(ws)
            while True:
                frame = await _receive(ws)
                if frame["type"] == "threat.created" and frame.get("actor") == "system":
                    generated.add(frame["threat"]["id"])
                elif frame["type"] == "threat.analyzed" and frame["threat"]["id"] in generated:
                    return frame

    frame = asyncio.run(asyncio.wait_for(scenario(), FRAME_SECONDS))

    assert frame["threat"]["analysis_status"] == "completed"


def test_the_frontend_serves_static_files_proxies_pages_and_websockets_and_hides_metrics(topology):
    if shutil.which("nginx") is None:
        pytest.skip("nginx not installed (.ci/run installs it)")
    collect = subprocess.run(["python", "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
                             cwd=hc.REPO_ROOT, env=topology.env(topology.container("migrate")),
                             capture_output=True, text=True, timeout=120)
    assert collect.returncode == 0, collect.stderr
    topology.start_frontend()
    front = f"localhost:{topology.frontend_port}"

    static = urllib.request.urlopen(f"http://{front}/static/js/live.js", timeout=5)
    assert static.read() == (hc.REPO_ROOT / "staticfiles" / "js" / "live.js").read_bytes()
    assert static.headers["Server"] == "nginx"
    with pytest.raises(urllib.error.HTTPError) as metrics:
        urllib.request.urlopen(f"http://{front}/metrics", timeout=5)
    assert metrics.value.code == 404 and "nginx" in metrics.value.read().decode()

    session = login(f"http://{front}")  # the login POST passes CSRF's Origin check through the proxy

    async def scenario():
        async with _socket(front, session) as ws:
            await _receive(ws)
            created = await asyncio.to_thread(trigger, session, threat_type="geo_anomaly")
            return await _frames_for(ws, created["id"], {"threat.created"})

    assert asyncio.run(scenario())[0]["type"] == "threat.created"


# --- WebSocket helpers ------------------------------------------------------------------------------


def _socket(host, session):
    return connect(f"ws://{host}/ws", additional_headers={"Cookie": session.cookie_header},
                   origin=f"http://{host}", open_timeout=FRAME_SECONDS, close_timeout=2)


async def _receive(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), FRAME_SECONDS))


async def _frames_for(ws, threat_id, types):
    """Frames about `threat_id` until one of each type arrived (other threats' frames skipped)."""
    frames = []
    deadline = time.monotonic() + FRAME_SECONDS
    while {f["type"] for f in frames} < types:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {frames} for {threat_id}"
        frame = json.loads(await asyncio.wait_for(ws.recv(), remaining))
        if frame.get("threat", {}).get("id") == threat_id:
            frames.append(frame)
    return frames

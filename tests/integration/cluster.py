"""The cluster topology on one machine: Redis, N Daphne "pods", a Celery worker, Celery beat and
nginx in front, all real processes on loopback. Used by `make cluster`, the multi-pod integration
tests and the benchmarks.

    python -m tests.integration.cluster --pods 3 --port 8080     # what `make cluster` runs

Redis: a private `redis-server` on a free port unless `redis_url` is given. Database: the given
`database_url` as it is, a fresh database on the Postgres server of `postgres_url`, or a SQLite
file in the cluster's temporary folder. nginx routes `/`, `/api` and `/ws` to the pods like the
chart's ingress (round robin; `/metrics` is not routed). Every process is stopped by the PID this
module started; nothing is killed by name.
"""

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.integration.server import (
    REPO_ROOT,
    create_postgres_database,
    drop_postgres_database,
    free_port,
)

STARTUP_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 15
NGINX_CONF = """
user root;
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    upstream pods {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 8m;
        location = /metrics {{ return 404; }}
        location /ws {{
            proxy_pass http://pods;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
        location / {{
            proxy_pass http://pods;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


class Process:
    """One started process: its command, log files and PID."""

    def __init__(self, name, command, env, tmp):
        self.name, self.command, self.env, self.tmp = name, command, env, tmp
        self.popen = None

    def start(self):
        log = open(self.tmp / f"{self.name}.log", "ab")
        self.popen = subprocess.Popen(self.command, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=log,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        return self

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT_SECONDS):
        """Signal this process group (the process and the children it forked), then SIGKILL."""
        if not self.alive():
            return
        try:
            os.killpg(self.popen.pid, sig)
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=timeout)
        except ProcessLookupError:
            pass

    def kill(self):
        self.stop(signal.SIGKILL)

    def log_tail(self, limit=4000):
        path = self.tmp / f"{self.name}.log"
        return path.read_text(errors="replace")[-limit:] if path.exists() else ""


class Cluster:
    def __init__(self, pods=3, worker=True, beat=True, nginx=True, port=None, redis_url=None,
                 database_url=None, postgres_url=None, worker_concurrency=2, env=None, keep=False):
        self.pod_count, self.with_worker, self.with_beat, self.with_nginx = pods, worker, beat, nginx
        self.port = port
        self.redis_url, self.database_url, self.postgres_url = redis_url, database_url, postgres_url
        self.worker_concurrency = worker_concurrency
        self.extra_env = env or {}
        self.keep = keep
        self.tmp = None
        self.redis = self.worker = self.beat = self.nginx = None
        self.pods = []
        self.pod_ports = []
        self.pg_database = None
        self.redis_port = None
        self.restarts = {}
        self._watching = threading.Event()

    # --- lifecycle --------------------------------------------------------------------------

    def start(self):
        try:
            self.tmp = Path(tempfile.mkdtemp(prefix="soc-cluster-"))
            if not self.redis_url:
                self.redis_port = free_port()
                self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
                self.start_redis()
            self.database_url = self.database_url or self._fresh_database()
            self.env = self._environment()
            self.manage("migrate", "--noinput")
            self.manage("seed_demo", "--insecure-demo-login", "--history", "0")
            self.pod_ports = [free_port() for _ in range(self.pod_count)]
            self.pods = [self._pod(index) for index in range(self.pod_count)]
            if self.with_worker:
                self.worker = self._process("worker", ["-m", "celery", "-A", "socproject", "worker", "-l", "warning",
                                                       "-c", str(self.worker_concurrency), "--without-gossip",
                                                       "--without-mingle", "-n", f"worker-{secrets.token_hex(3)}@%h"])
            if self.with_beat:
                self.beat = self._process("beat", ["-m", "celery", "-A", "socproject", "beat", "-l", "warning",
                                                   "-s", str(self.tmp / "beat-schedule")])
            for index in range(self.pod_count):
                self.wait_healthy(self.pod_url(index), self.pods[index])
            if self.with_nginx:
                self.start_nginx()
            threading.Thread(target=self._supervise, name="cluster-supervisor", daemon=True).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        self._watching.set()
        for process in [self.nginx, self.beat, self.worker, *self.pods]:
            if process is not None:
                process.stop()
        self.stop_redis()
        if self.pg_database and not self.keep:
            drop_postgres_database(self.postgres_url, self.pg_database)
            self.pg_database = None
        if self.tmp is not None and not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    # --- addresses ----------------------------------------------------------------------------

    def pod_url(self, index):
        return f"http://127.0.0.1:{self.pod_ports[index]}"

    def pod_ws(self, index):
        return f"ws://127.0.0.1:{self.pod_ports[index]}/ws"

    @property
    def url(self):
        """The nginx front door (or the first pod when nginx is off)."""
        return f"http://127.0.0.1:{self.port}" if self.nginx else self.pod_url(0)

    # --- faults: kill and restart parts ----------------------------------------------------------

    def kill_pod(self, index):
        self.pods[index].kill()

    def restart_pod(self, index):
        self.pods[index].stop()
        self.pods[index] = self._pod(index)
        self.wait_healthy(self.pod_url(index), self.pods[index])

    def start_redis(self):
        self.redis = Process("redis", [
            "redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.tmp),
        ], os.environ.copy(), self.tmp).start()
        self._wait_for_redis()

    def stop_redis(self, sig=signal.SIGTERM):
        if self.redis is not None:
            self.redis.stop(sig)
            self.redis = None

    def restart_redis(self):
        """Kill the private Redis (its data is gone: no persistence) and start an empty one."""
        self.stop_redis(signal.SIGKILL)
        self.start_redis()

    def worker_children(self, timeout=30):
        """PIDs of the Celery worker's pool processes (the ones that run tasks), once it has them."""
        deadline = time.monotonic() + timeout
        while True:
            result = subprocess.run(["pgrep", "-P", str(self.worker.pid)], capture_output=True, text=True)
            if result.stdout.split() or time.monotonic() > deadline:
                return [int(pid) for pid in result.stdout.split()]
            time.sleep(0.2)  # a (re)started worker is still forking its pool

    def _supervise(self):
        """Restart the worker or beat when its process exits, as Kubernetes restarts a container.

        Needed for real: when Redis goes away at the wrong moment, Celery 5.7's worker can stop with
        "Unrecoverable error: AttributeError(... 'hostname')" raised while it closes the broken
        broker connection (kombu's Redis transport); in a pod the kubelet restarts it, here this does.
        """
        while not self._watching.wait(0.5):
            for name in ("worker", "beat"):
                process = getattr(self, name)
                if process is not None and not process.alive() and not self._watching.is_set():
                    self.restarts[name] = self.restarts.get(name, 0) + 1
                    setattr(self, name, Process(name, process.command, self.env, self.tmp).start())

    # --- helpers ----------------------------------------------------------------------------------

    def manage(self, *args):
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=self.env,
                                capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def _fresh_database(self):
        if self.postgres_url:
            self.pg_database, url = create_postgres_database(self.postgres_url, prefix="cluster")
            return url
        return f"sqlite:///{self.tmp}/cluster.sqlite3"

    def _environment(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("DJANGO_") and k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
        env.update(
            DJANGO_SETTINGS_MODULE="socproject.settings",
            DJANGO_SECRET_KEY="cluster-" + secrets.token_hex(24),
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def _process(self, name, args):
        return Process(name, [sys.executable, *args], self.env, self.tmp).start()

    def _pod(self, index):
        return self._process(f"pod-{index}", ["-m", "daphne", "-b", "127.0.0.1", "-p", str(self.pod_ports[index]),
                                              "socproject.asgi:application"])

    def start_nginx(self):
        self.port = self.port or free_port()
        servers = "\n".join(f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;" for port in self.pod_ports)
        conf = self.tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=self.tmp, port=self.port, servers=servers))
        self.nginx = Process("nginx", ["nginx", "-c", str(conf), "-p", str(self.tmp)], os.environ.copy(),
                             self.tmp).start()
        self.wait_healthy(f"http://127.0.0.1:{self.port}", self.nginx)

    def wait_healthy(self, base_url, process):
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
            try:
                with urllib.request.urlopen(base_url + "/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.1)  # waiting for a real process to bind its port
        raise RuntimeError(f"{process.name} did not answer /health:\n{process.log_tail()}")

    def _wait_for_redis(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            result = subprocess.run(["redis-cli", "-p", str(self.redis_port), "ping"], capture_output=True, text=True)
            if result.stdout.strip() == "PONG":
                return
            time.sleep(0.05)  # waiting for a real process to bind its port
        raise RuntimeError(f"redis did not start:\n{self.redis.log_tail()}")


def main():
    parser = argparse.ArgumentParser(description="Run the cluster topology on this machine until Ctrl-C.")
    parser.add_argument("--pods", type=int, default=3)
    parser.add_argument("--port", type=int, default=8080, help="nginx port (default 8080)")
    parser.add_argument("--generate", type=float, default=10.0,
                        help="seconds between synthetic threats (Celery beat); 0 = off")
    args = parser.parse_args()
    env = {"ENABLE_AUTO_THREAT_GENERATION": "true" if args.generate else "false",
           "THREAT_GENERATION_INTERVAL": str(args.generate or 30)}
    cluster = Cluster(pods=args.pods, port=args.port, redis_url=os.environ.get("REDIS_URL"),
                      database_url=os.environ.get("DATABASE_URL"), env=env)
    print("Starting Redis, database, pods, worker, beat and nginx...", flush=True)
    cluster.start()
    try:
        print(f"\n  Dashboard through nginx: {cluster.url}/   (log in as analyst / analyst)")
        for index, process in enumerate(cluster.pods):
            print(f"  pod-{index}: {cluster.pod_url(index)}  (pid {process.pid})")
        print(f"  worker pid {cluster.worker.pid}, beat pid {cluster.beat.pid}, redis {cluster.redis_url}")
        print(f"  logs: {cluster.tmp}\n  Stop with Ctrl-C.\n", flush=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        print("Stopping...", flush=True)
        cluster.stop()


if __name__ == "__main__":
    main()

"""Generated secrets are made once and kept across upgrades.

The chart reads the release's Secret back with Helm's `lookup`. Offline, lookup finds nothing (so
every render generates new values, see test_render.py); here Helm renders against a minimal fake
Kubernetes API on loopback that serves discovery and one existing Secret, the way an upgrade sees
the cluster.
"""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from tests.chart import helmchart as hc

pytestmark = pytest.mark.chart

EXISTING = {
    "django-secret-key": "k" * 50,
    "postgres-password": "kept-pg-password",
    "redis-password": "kept-redis-password",
}


class FakeApi(BaseHTTPRequestHandler):
    secrets = {}
    requests = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.path.split("?")[0]
        self.requests.append(path)
        if path == "/api/v1":
            self._send(200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "secrets", "singularName": "secret", "namespaced": True, "kind": "Secret", "verbs": ["get"]}]})
        elif path.startswith("/api/v1/namespaces/") and "/secrets/" in path:
            namespace, name = path.split("/")[4], path.split("/")[6]
            secret = self.secrets.get((namespace, name))
            if secret:
                self._send(200, secret)
            else:
                self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})
        else:
            self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def cluster():
    """(helm Config bound to the fake API, the Secrets it holds)."""
    FakeApi.secrets, FakeApi.requests = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = hc.helm.Config(kube_apiserver=f"http://127.0.0.1:{server.server_address[1]}", namespace="default")
    try:
        yield config, FakeApi.secrets
    finally:
        config.close()
        server.shutdown()
        server.server_close()


def upgrade_render(config, values):
    rendered = config.render(hc.chart(), values, name="soc-agent", namespace="default", is_upgrade=True, is_install=False)
    secret = yaml.safe_load(rendered["soc-agent/templates/secret.yaml"])
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def existing_secret(data):
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "soc-agent", "namespace": "default"},
            "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}}


def test_an_upgrade_keeps_the_generated_key_and_passwords(cluster):
    config, secrets = cluster
    secrets[("default", "soc-agent")] = existing_secret(EXISTING)

    data = upgrade_render(config, {"redis": {"auth": {"enabled": True}}})

    assert data["django-secret-key"] == EXISTING["django-secret-key"]
    assert data["postgres-password"] == "kept-pg-password"
    assert data["database-url"] == "postgres://soc:kept-pg-password@soc-agent-postgresql:5432/soc"
    assert data["redis-url"] == "redis://:kept-redis-password@soc-agent-redis:6379"
    assert "/api/v1/namespaces/default/secrets/soc-agent" in FakeApi.requests


def test_the_first_install_generates_new_values(cluster):
    config, _ = cluster

    data = upgrade_render(config, {})

    assert len(data["django-secret-key"]) == 50 and data["django-secret-key"] != EXISTING["django-secret-key"]
    assert len(data["postgres-password"]) == 32


def test_a_value_given_in_values_wins_over_the_kept_one(cluster):
    config, secrets = cluster
    secrets[("default", "soc-agent")] = existing_secret(EXISTING)

    data = upgrade_render(config, {"secrets": {"djangoSecretKey": "rotated-" + "r" * 50}})

    assert data["django-secret-key"] == "rotated-" + "r" * 50
    assert data["postgres-password"] == "kept-pg-password"

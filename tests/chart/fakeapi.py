"""A minimal Kubernetes API on loopback for renders that use Helm's `lookup` (an upgrade sees the
live objects of the release): discovery for the group versions of the objects it holds, and GET of
one object. Anything else is a 404, so a lookup of a missing object returns nothing, as in a cluster.

    with FakeCluster() as cluster:
        cluster.add(deployment)
        files = cluster.render(values, is_upgrade=True)
"""

import json
import threading

import yaml
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.chart import helmchart as hc

NOT_FOUND = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}
# Group version path -> the kinds it serves (what the chart may look up).
DISCOVERY = {
    "/api/v1": ["Secret", "ConfigMap", "PersistentVolumeClaim"],
    "/apis/apps/v1": ["Deployment", "StatefulSet"],
    "/apis/batch/v1": ["Job"],
}


def plural(kind):
    return kind.lower() + "s"


class FakeCluster:
    def __init__(self):
        self.objects = {}  # (group version path, plural, namespace, name) -> object
        self.requests = []
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                cluster.requests.append(path)
                status, body = cluster.answer(path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.config = hc.helm.Config(kube_apiserver=f"http://127.0.0.1:{self.server.server_address[1]}",
                                     namespace=hc.NAMESPACE)
        return self

    def __exit__(self, *exc):
        self.config.close()
        self.server.shutdown()
        self.server.server_close()

    def add(self, obj):
        api_version = obj["apiVersion"]
        prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        meta = obj["metadata"]
        self.objects[(prefix, plural(obj["kind"]), meta.get("namespace", hc.NAMESPACE), meta["name"])] = obj

    def answer(self, path):
        if path in DISCOVERY:
            resources = [{"name": plural(kind), "singularName": kind.lower(), "namespaced": True, "kind": kind, "verbs": ["get"]}
                         for kind in DISCOVERY[path]]
            group_version = path.removeprefix("/apis/").removeprefix("/api/")
            return 200, {"kind": "APIResourceList", "groupVersion": group_version, "resources": resources}
        for (prefix, resource, namespace, name), obj in self.objects.items():
            if path == f"{prefix}/namespaces/{namespace}/{resource}/{name}":
                return 200, obj
        return 404, NOT_FOUND

    def render_files(self, values=None, **options):
        """Template path -> text of a render whose `lookup` sees this cluster (an upgrade by default)."""
        options = {"is_upgrade": True, "is_install": False, **options}
        rendered = self.config.render(hc.chart(), values or {}, name=hc.RELEASE, namespace=hc.NAMESPACE, **options)
        return {path: text for path, text in rendered.items() if text.strip()}

    def render(self, values=None, **options):
        """Every Kubernetes object of that render (NOTES.txt excluded)."""
        objects = []
        for path, text in sorted(self.render_files(values, **options).items()):
            if not path.endswith("NOTES.txt"):
                objects += [document for document in yaml.safe_load_all(text) if document]
        return objects

"""Every command shown in README.md, docs/*.md, helm/README.md and eval/README.md works as written on a fresh
checkout (issue 23 item 8).

The commands are read from the docs themselves, so a changed doc changes this test: every line of a
```bash / ```sh / ```shell / ```console block (a trailing `\\` joins the next line, a `# comment` is
dropped), and every `$ ` prompt line of any other block, whose following lines are its output.
Each command is either in RUN (run here, its exit status and a key line of its output checked) or
in NOT_RUN with the reason; one in neither fails the fast test below with its file and line.

RUN commands run in a `git clone` of this checkout's HEAD (what CI clones), with this checkout's
.venv symlinked in (nothing is reinstalled) and nothing exported but PATH, HOME and LANG, so the
database is the clone's own SQLite file in var/. `make run` is started on a free port (its PORT
variable) and probed until it serves, then stopped through the process group it leads; the curl
example is sent to it, with only its host and port replaced.
"""

import json
import os
import pty
import re
import select
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.server import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "helm" / "README.md", ROOT / "eval" / "README.md"]
SHELL_BLOCKS = {"bash", "sh", "shell", "console"}
TIMEOUT_SECONDS = 300

NO_CLUSTER = "needs a Kubernetes cluster; the chart is rendered, linted and checked by tests/chart"
KIND = "creates a Kind cluster with Docker; the scripts are checked by tests/chart/test_scripts.py"
NO_DOCKER = "needs a Docker daemon; the Dockerfile is checked by tests/chart/test_image.py"
NOT_RUN = {
    "make test": "the whole suite, this test included: it would run itself",
    "./deploy.sh": KIND,
    "./teardown.sh": KIND,
    "docker build -t soc-backend:0.1.0 .": NO_DOCKER,
    "docker build --build-arg BACKEND_IMAGE=soc-backend:0.1.0 -t soc-frontend:0.1.0 docker/frontend": NO_DOCKER,
    "helm install soc-agent ./charts/soc-agent": NO_CLUSTER,
    "helm install soc-agent ./charts/soc-agent -f values-production.yaml": NO_CLUSTER,
    "helm install soc-agent ./charts/soc-agent --set backend.replicaCount=4": NO_CLUSTER,
    "helm install soc-agent ./charts/soc-agent -f values-production.yaml "
    "--set backend.image.repository=gcr.io/my-project/soc-backend "
    "--set frontend.image.repository=gcr.io/my-project/soc-frontend": NO_CLUSTER,
    "helm upgrade soc-agent ./charts/soc-agent": NO_CLUSTER,
    "helm upgrade soc-agent ./charts/soc-agent -f values-production.yaml": NO_CLUSTER,
    "helm upgrade soc-agent ./charts/soc-agent [-f values-production.yaml]": NO_CLUSTER,
    "helm upgrade soc-agent ./charts/soc-agent -f values-production.yaml -f my-values.yaml": NO_CLUSTER,
    "helm upgrade soc-agent ./charts/soc-agent --reuse-values --set backend.image.tag=1.2.4": NO_CLUSTER,
    "helm upgrade --install soc-agent ./charts/soc-agent --reuse-values "
    "--set observability.serviceMonitor.enabled=true --set observability.prometheusRule.enabled=true "
    "--set observability.dashboard.enabled=true --set observability.scrapeNamespace=monitoring "
    "--set observability.labels.release=kube-prometheus-stack": NO_CLUSTER,
    "helm rollback soc-agent": NO_CLUSTER,
    "helm uninstall soc-agent": NO_CLUSTER,
    "helm test soc-agent": NO_CLUSTER,
    "kubectl get pods -l app=soc-backend": NO_CLUSTER,
    "kubectl get pods -l app=redis": NO_CLUSTER,
    "kubectl logs -l app=soc-backend --tail=50": NO_CLUSTER,
    "kubectl exec -it <backend-pod> -- env | grep REDIS_URL": NO_CLUSTER,
    "kubectl get hpa": NO_CLUSTER,
    "kubectl get ingress": NO_CLUSTER,
    "kubectl describe ingress": NO_CLUSTER,
    "kubectl rollout restart deployment/soc-agent-backend": NO_CLUSTER,
    "kubectl logs -l app=soc-migrate --tail=100": NO_CLUSTER,
    "kubectl logs deploy/soc-agent-backend -c wait-for-migrations": NO_CLUSTER,
    "kubectl exec deploy/soc-agent-backend -- python -c \"import urllib.request as u; "
    "print(u.urlopen(u.Request('http://localhost:8000/ready', headers={'Host': 'soc-agent-backend'})).read())\"":
        NO_CLUSTER,
    "kubectl patch pvc data-soc-agent-postgresql-0 -p "
    "'{\"spec\":{\"resources\":{\"requests\":{\"storage\":\"50Gi\"}}}}'": NO_CLUSTER,
    "kubectl get pvc data-soc-agent-postgresql-0 -w": NO_CLUSTER,
    "kubectl delete statefulset soc-agent-postgresql --cascade=orphan": NO_CLUSTER,
    "kubectl exec deploy/soc-agent-backend -- python -c \"import os, urllib.parse as p; "
    "u = p.urlsplit(os.environ['REDIS_URL']); print(u._replace(netloc=u.netloc.rpartition('@')[2]).geturl())\"":
        NO_CLUSTER,
}


# --- Reading the docs ------------------------------------------------------------------------------


class Command:
    """One documented command: where it is, its text, and the output the doc shows (prompt lines)."""

    def __init__(self, path, line, text, output=None):
        self.path, self.line, self.text, self.output = path, line, text, output or []

    @property
    def where(self):
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def documented_commands():
    return [command for path in DOCS for command in _commands(path)]


def _commands(path):
    found, language, prompt = [], None, None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fence = re.match(r"\s*```\s*(\S*)", line)
        if fence:
            language, prompt = None if language is not None else fence.group(1).lower(), None
        elif language in SHELL_BLOCKS:
            _shell_line(found, path, number, line)
        elif language is not None and line.startswith("$ "):
            prompt = Command(path, number, line[2:].strip())
            found.append(prompt)
        elif prompt is not None and line.strip():
            prompt.output.append(line)  # what the doc shows the command printing
    return [command for command in found if command.text]


def _shell_line(found, path, number, line):
    text = _without_comment(line).strip()
    if found and found[-1].text.endswith("\\"):  # the continuation of the command above
        found[-1].text = found[-1].text[:-1].rstrip() + " " + text
    elif text:
        found.append(Command(path, number, text.removeprefix("$ ")))


def _without_comment(line):
    """The line up to a `#` that starts a comment (after a blank, outside quotes)."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line


# --- Running them ----------------------------------------------------------------------------------


class Checkout:
    """A fresh clone of HEAD with this checkout's .venv, and the one `make run` server it may start."""

    def __init__(self, path):
        self.path, self.server, self.port = path, None, free_port()
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(path)], check=True, timeout=120)
        (path / ".venv").symlink_to(ROOT / ".venv")
        for name in ("requirements.txt", "requirements-dev.txt"):  # the .venv is up to date for them
            os.utime(path / name, (0, 0))
        self.env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}

    def run(self, command, **kwargs):
        return subprocess.run(["bash", "-c", command], cwd=self.path, env={**self.env, **kwargs.pop("env", {})},
                              capture_output=True, text=True, timeout=TIMEOUT_SECONDS, **kwargs)

    def start_make_run(self, command):
        """`make run` as written, on a free port; returns once it serves /health."""
        self.log = self.path.parent / "make-run.log"  # a file, not a pipe nobody reads: Daphne must never block on it
        with open(self.log, "wb") as log:
            self.server = subprocess.Popen(["bash", "-c", command], cwd=self.path, env={**self.env, "PORT": str(self.port)},
                                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self.server.poll() is None, f"make run ended: {self.log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{self.base_url}/health", timeout=2) as answer:
                    return answer.status
            except OSError:
                time.sleep(0.5)  # migrating, seeding, starting Daphne
        raise AssertionError(f"make run did not serve within {TIMEOUT_SECONDS} s")

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.server and self.server.poll() is None:
            os.killpg(self.server.pid, signal.SIGTERM)  # the group our Popen leads: make and the Daphne it execs
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait(timeout=10)


def _make_run(checkout, command):
    assert checkout.start_make_run(command) == 200
    with urllib.request.urlopen(f"{checkout.base_url}/accounts/login/", timeout=10) as page:
        assert "password" in page.read().decode()


def _import_alerts(checkout, command):
    done = checkout.run(command)
    # The sample file holds deliberately broken lines: the doc shows them listed and the command fails.
    assert done.returncode == 1, done.stderr[-3000:]
    assert "3 alert(s) could not be imported" in done.stderr
    shown = next(c for c in documented_commands() if c.text == command).output
    assert _output_matches(done.stdout.splitlines(), shown), f"the doc shows:\n{shown}\nit printed:\n{done.stdout}"


def _output_matches(printed, shown):
    """Line by line, a shown `...` standing for any lines; times and rates may differ."""
    pattern = "".join("(?:.*\n)*?" if line.strip() == "..." else _timeless(line) + "\n" for line in shown)
    return re.fullmatch(pattern, "".join(line.rstrip() + "\n" for line in printed)) is not None


def _timeless(line):
    timing = r"in [0-9.]+ s \([0-9,]+/s\)"
    return timing.join(re.escape(part) for part in re.split(timing, line.rstrip()))


def _curl_ingest(checkout, command):
    key = checkout.run(".venv/bin/python manage.py shell -c "
                       "\"from threats import apikeys; print(apikeys.issue('docs', ['ingest'])[1])\"")
    assert key.returncode == 0, key.stderr[-3000:]
    done = checkout.run(command.replace("http://localhost:8000", checkout.base_url),
                        env={"KEY": key.stdout.strip().splitlines()[-1]})
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["format"] == "wazuh" and answer["received"] == 15 and answer["created"] > 0, answer


def _createsuperuser(checkout, command):
    """Interactive as written: the password is typed, twice, on a terminal when asked for."""
    parent, child = pty.openpty()
    process = subprocess.Popen(["bash", "-c", command], cwd=checkout.path, env=checkout.env,
                               stdin=child, stdout=child, stderr=child, start_new_session=True)
    os.close(child)
    try:
        output = _answer(parent, [b"Password: ", b"Password (again): "], b"Docs-test-password-9\n")
        assert process.wait(timeout=30) == 0, output.decode()[-3000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # the session our Popen leads
            process.wait(timeout=10)
    assert b"Superuser created successfully." in output
    admin = checkout.run(".venv/bin/python manage.py shell -c \"from django.contrib.auth import get_user_model; "
                         "u = get_user_model().objects.get(username='admin'); print(u.is_superuser, u.is_staff)\"")
    assert admin.stdout.split()[-2:] == ["True", "True"], admin.stderr[-3000:]


def _answer(terminal, prompts, answer):
    """What the program wrote on the terminal until it closed, typing `answer` after each prompt
    (getpass discards what was typed before it asks)."""
    output, deadline = b"", time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not select.select([terminal], [], [], 1)[0]:
            continue
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # the terminal closed: the program ended
            break
        if not chunk:
            break
        output += chunk
        if prompts and output.endswith(prompts[0]):
            prompts.pop(0)
            os.write(terminal, answer)
    os.close(terminal)
    return output


def _make_eval(checkout, command):
    """The evaluation as written (on the PostgreSQL server CI has, for the DATABASE_URL line): it
    prints the targets and, with --check, exits 0 only when all are met."""
    done = checkout.run(command)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "## Targets (issue 17)" in done.stdout


def _cd(checkout, command):
    assert checkout.run(command).returncode == 0


RUN = {
    "make run": _make_run,  # first: the commands below use the database and server it makes
    ".venv/bin/python manage.py import_alerts tests/fixtures/alerts/suricata_eve.ndjson --customer retailmax":
        _import_alerts,
    "curl -s -H \"X-API-Key: $KEY\" -H 'Content-Type: application/x-ndjson' "
    "--data-binary @tests/fixtures/alerts/wazuh_alerts.ndjson http://localhost:8000/api/ingest/wazuh": _curl_ingest,
    ".venv/bin/python manage.py createsuperuser --username admin --email admin@example.com": _createsuperuser,
    "cd helm": _cd,
    "make eval": _make_eval,
    "make eval EVAL_ARGS=\"--only ecs\"": _make_eval,
    "make eval EVAL_ARGS=\"--case office_macro_writes_and_runs_executable\"": _make_eval,
    "make eval EVAL_ARGS=\"--check\"": _make_eval,
    "DATABASE_URL=postgres://postgres@127.0.0.1:5432/mine make eval": _make_eval,
}


def test_every_documented_command_is_run_here_or_says_why_not():
    unknown = [f"{c.where}: {c.text}" for c in documented_commands() if c.text not in RUN and c.text not in NOT_RUN]
    assert not unknown, "documented commands neither run nor excused (add them to RUN or NOT_RUN):\n" + "\n".join(unknown)


def test_every_listed_command_is_still_documented():
    shown = {c.text for c in documented_commands()}
    assert not [text for text in [*RUN, *NOT_RUN] if text not in shown]


def test_the_reader_finds_blocks_continuations_comments_and_prompts(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("```bash\nmake run   # start\nhelm x \\\n  --set a=1\n```\n\n```\n$ echo '#1'\nout\n...\n```\n"
                   "```json\n{}\n```\n")
    commands = _commands(doc)
    assert [(c.line, c.text, c.output) for c in commands] == [
        (2, "make run", []), (3, "helm x --set a=1", []), (8, "echo '#1'", ["out", "..."])]


def test_shown_output_matches_with_elisions_and_other_timings():
    shown = ["f (x): 2 alert(s) in 0.3 s (49/s)", "  skipped  1", "  ...", "  error at line 3"]
    assert _output_matches(["f (x): 2 alert(s) in 1.0 s (2/s)", "  skipped  1", "  a", "  b", "  error at line 3"], shown)
    assert not _output_matches(["f (x): 2 alert(s) in 1.0 s (2/s)", "  skipped  2", "  error at line 3"], shown)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    made = Checkout(tmp_path_factory.mktemp("docs") / "checkout")
    yield made
    made.stop()


@pytest.mark.integration
@pytest.mark.parametrize("text", list(RUN))
def test_a_documented_command_works_as_written(checkout, text):
    if text != "make run" and checkout.server is None:
        _make_run(checkout, "make run")  # this test alone: the server and data it depends on
    RUN[text](checkout, text)

"""`manage.py` on a fresh checkout works as the README shows it, without exporting anything
(issue 23 item 8), and the production checks stay as strict: a deployment's settings are left
alone, and settings.py still refuses a missing key there."""

import os
import subprocess
import sys
from pathlib import Path

import manage

ROOT = Path(__file__).resolve().parents[1]


def test_a_checkout_gets_make_runs_key_file_and_local_hosts(tmp_path):
    environ = {}
    manage.one_machine_defaults(environ, tmp_path)
    key = tmp_path / "var" / "secret_key"
    assert environ == {"DJANGO_SECRET_KEY_FILE": str(key), "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1"}
    assert len(key.read_text().strip()) >= 50 and oct(key.stat().st_mode & 0o777) == "0o600"
    again = {}
    manage.one_machine_defaults(again, tmp_path)
    assert again == environ and key.read_text() == (tmp_path / "var" / "secret_key").read_text()  # kept


def test_given_hosts_are_kept(tmp_path):
    environ = {"DJANGO_ALLOWED_HOSTS": "soc.example"}
    manage.one_machine_defaults(environ, tmp_path)
    assert environ["DJANGO_ALLOWED_HOSTS"] == "soc.example"


def test_a_deployment_is_left_alone(tmp_path):
    for name in ("DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY_FILE"):
        environ = {name: "set"}
        manage.one_machine_defaults(environ, tmp_path)
        assert environ == {name: "set"}
    assert not (tmp_path / "var").exists()


def test_a_read_only_install_is_left_to_fail_loudly(tmp_path):
    base = tmp_path / "app"
    base.mkdir()
    (base / "var").write_text("not a directory")  # the key cannot be made
    environ = {}
    manage.one_machine_defaults(environ, base)
    assert environ == {}


def _bare_environment(**extra):
    keep = {"PATH", "HOME", "LANG"}
    return {**{k: v for k, v in os.environ.items() if k in keep}, **extra}


def test_manage_py_runs_without_exported_variables():
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=_bare_environment(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "System check identified no issues" in done.stdout


def test_a_deployment_without_a_key_still_fails_loudly(tmp_path):
    env = _bare_environment(DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3", DJANGO_ALLOWED_HOSTS="soc.example")
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be set" in done.stderr

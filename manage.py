#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import secrets
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
LOCAL_HOSTS = "localhost,127.0.0.1"


def one_machine_defaults(environ, base=BASE_DIR):
    """`make run`'s defaults for a checkout's `manage.py` (issue 23): its secret key file (made on
    first use, as `make run` makes it) and local host names. Only when nothing configures a
    deployment — no DATABASE_URL or REDIS_URL, no key — so a cluster missing its key still fails
    loudly in settings.py; a read-only install (the container image) is left to do the same."""
    if any(environ.get(name) for name in ("DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY_FILE")):
        return
    key = base / "var" / "secret_key"
    try:
        if not key.exists():
            key.parent.mkdir(exist_ok=True)
            key.write_text(secrets.token_urlsafe(50) + "\n")
            key.chmod(0o600)
    except OSError:
        return
    environ["DJANGO_SECRET_KEY_FILE"] = str(key)
    environ.setdefault("DJANGO_ALLOWED_HOSTS", LOCAL_HOSTS)


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "socproject.settings")
    one_machine_defaults(os.environ)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

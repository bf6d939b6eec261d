"""Suppressions across processes (docs/suppressions.md): ingestion in this process has cached its
customer's live suppressions in Redis (django-redis, as in a cluster); a suppression saved and
then revoked by another process applies to the very next chunk here, because each change starts
a new cache generation — no stale copy is read, no waiting for it to expire."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from suppressions import services
from tests import factories

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
SAVE = """
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from suppressions import services
author = get_user_model().objects.get(username="alice")
proposal = services.check_proposal(author, customer="{slug}", rule="rule:probe", entities={{}})
saved, _ = services.create(author, proposal, reason="scanner", expires_at=timezone.now() + timedelta(days=2))
print(saved.pk)
"""
REVOKE = """
from django.contrib.auth import get_user_model
from suppressions import services
services.revoke(get_user_model().objects.get(username="alice"), {pk})
"""


def database_url():
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def in_another_process(redis_url, code):
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url()}
    done = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def matched(customer):
    return services.Matcher({customer.pk}).match(customer.pk, "rule:probe", {})


def test_a_change_in_another_process_applies_to_the_next_chunk_here(settings, redis_url, alice):
    # As settings.py configures it when REDIS_URL is set: the other process uses exactly that.
    settings.CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": redis_url, "KEY_PREFIX": "soc"}}
    customer = factories.make_customer()
    assert matched(customer) is None  # the empty set is cached now (for a minute)
    pk = int(in_another_process(redis_url, SAVE.format(slug=customer.slug)))
    found = matched(customer)
    assert found is not None and found.pk == pk and found.expires_at > timezone.now() + timedelta(days=1)
    in_another_process(redis_url, REVOKE.format(pk=pk))
    assert matched(customer) is None

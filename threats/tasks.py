"""Celery tasks of the threats app (Celery beat schedules `threats.generate_threat`)."""

from celery import shared_task

from .autogen import generate_one


@shared_task(name="threats.generate_threat", soft_time_limit=20, time_limit=30)
def generate_threat_task():
    return str(generate_one().pk)

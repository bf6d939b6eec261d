"""A task that does nothing, for bench_worker.py's Celery floor (loaded with `worker --include`)."""

import time

from celery import shared_task


@shared_task(name="bench.noop", ignore_result=True)
def noop(last):
    if last:  # the queue is FIFO on one pool process: the last task marks the end of the run
        import redis
        from django.conf import settings

        redis.Redis.from_url(settings.REDIS_URL).set("bench:noop:done", time.time())

"""Produce stored threat events at a steady rate, for the fan-out benchmark.

Run with the cluster's environment (bench_cluster.py does): each event is a real triage change
through the service layer, so it is stored, then pushed through Redis to every pod.

    python bench/event_producer.py --rate 20 --duration 10
    python bench/event_producer.py --bare --rate 20 --duration 10   # group_send only, bare app
"""

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def produce_stored(rate, duration):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "socproject.settings")
    import django

    django.setup()
    from threats import services
    from threats.models import Threat

    threat = Threat.objects.select_related("customer").order_by("-received_at").first()
    if threat is None:
        threat = services.trigger_threat(services.SYSTEM)
    statuses = ["acknowledged", "investigating"]
    count = int(rate * duration)
    start = time.perf_counter()
    for index in range(count):
        services.do_triage(threat, services.SYSTEM, {"status": statuses[index % 2]})
        _pace(start, index + 1, rate)
    print(json.dumps({"produced": count, "seconds": round(time.perf_counter() - start, 2)}))


def produce_bare(rate, duration):
    from channels_redis.pubsub import RedisPubSubChannelLayer

    async def run():
        layer = RedisPubSubChannelLayer(hosts=[{"address": os.environ["BARE_REDIS_URL"]}])
        count = int(rate * duration)
        start = time.perf_counter()
        for index in range(count):
            text = json.dumps({"type": "bare.event", "seq": index + 1, "at": time.time()})
            await layer.group_send("bare", {"type": "bare.event", "text": text})
            delay = start + (index + 1) / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the producer to the requested rate
        await layer.flush()
        return count, time.perf_counter() - start

    count, seconds = asyncio.run(run())
    print(json.dumps({"produced": count, "seconds": round(seconds, 2)}))


def _pace(start, done, rate):
    delay = start + done / rate - time.perf_counter()
    if delay > 0:
        time.sleep(delay)  # pacing the producer to the requested rate


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--bare", action="store_true")
    args = parser.parse_args()
    (produce_bare if args.bare else produce_stored)(args.rate, args.duration)

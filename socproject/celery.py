"""The Celery app: workers run the analysis agents (agents/tasks.py), beat the generator.

Observability hooks (docs/observability.md): the worker logs through Django's LOGGING (LOG_LEVEL,
LOG_FORMAT) instead of Celery's own setup; tracing starts in each pool child after the fork (in the
main process for the solo pool); `--metrics-port N` serves the metrics of all the worker's
processes from its main process.
"""

import os

from celery import Celery, bootsteps, signals
from click import Option

from socproject import telemetry

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "socproject.settings")

app = Celery("socproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.user_options["worker"].add(
    Option(["--metrics-port"], type=int, default=None,
           help="Serve the Prometheus metrics of this worker and its pool processes on this port.")
)


class MetricsServer(bootsteps.StartStopStep):
    """Starts the metrics endpoint in the worker's main process, after the pool has forked."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, parent, metrics_port=None, **options):
        super().__init__(parent, **options)
        self.port, self.server = metrics_port, None

    def start(self, parent):
        if self.port is not None:
            self.server = telemetry.start_worker_metrics_server(self.port)

    def stop(self, parent):
        if self.server is not None:
            self.server.shutdown()
            self.server = None


app.steps["worker"].add(MetricsServer)


@signals.setup_logging.connect
def use_django_logging(**kwargs):
    """Connecting here stops Celery from replacing the handlers that settings.LOGGING set up."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@signals.celeryd_init.connect
def no_banner_between_json_lines(instance, **kwargs):
    """With LOG_FORMAT=json every line must be a JSON object: skip the worker's ASCII banner (as
    `celery --quiet` would; the chart's command keeps its shape)."""
    from django.conf import settings

    if settings.LOG_FORMAT == "json":
        instance.quiet = True


@signals.worker_process_init.connect
def start_tracing_in_pool_process(**kwargs):
    telemetry.instrument_celery()


@signals.worker_process_shutdown.connect
def flush_traces_of_pool_process(**kwargs):
    # Pool children leave through os._exit, which skips atexit: send their spans now (bounded wait).
    telemetry.shutdown_tracing()

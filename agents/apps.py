from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Analysis agents"

    def ready(self):
        from threats import analysis

        from . import hooks

        # The dependency is one-way: agents imports threats; threats asks for analysis through
        # threats/analysis.py, which these functions answer (docs/layout.md).
        analysis.register(request_analyses=hooks.request_analyses, requeue_stale_analyses=hooks.requeue_stale_analyses,
                          inline=hooks.inline, store_runs=hooks.store_runs, agent_kinds=hooks.agent_kinds,
                          family=hooks.family)

"""The agent kinds, by name. To add an agent: copy the closest sibling folder, change every file,
and add a line here (AgentRun.kind choices are derived from this dict)."""

from django.utils.module_loading import import_string

AGENT_KINDS = {
    "historical": ("Historical", "agents.historical.agent.HistoricalAgent"),
    "config": ("Configuration", "agents.config.agent.ConfigAgent"),
    "devops": ("DevOps", "agents.devops.agent.DevOpsAgent"),
    "context": ("Business context", "agents.context.agent.ContextAgent"),
    "priority": ("Priority (MITRE ATT&CK)", "agents.priority.agent.PriorityAgent"),
}

KIND_CHOICES = [(kind, label) for kind, (label, _path) in AGENT_KINDS.items()]


def load_agents():
    """One instance of every registered agent, in registry order."""
    return [import_string(path)() for _label, path in AGENT_KINDS.values()]

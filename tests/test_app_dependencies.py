"""The dependency between the two apps is one-way (docs/layout.md, "Dependencies"): agents imports
threats; threats never imports agents, not even inside a function. It asks for analysis through
threats/analysis.py, which AgentsConfig.ready() (agents/apps.py) answers, and the agents app adds its
runs to the threat admin itself (agents/admin.py)."""

import ast
from pathlib import Path

import pytest

from agents.registry import AGENT_KINDS
from threats import analysis

ROOT = Path(__file__).resolve().parents[1]
DYNAMIC_IMPORTS = {"import_module", "import_string", "__import__"}


def imported_modules(source, package):
    """(line, module) for every import in `source` at any depth (module, class or function level),
    relative ones resolved against `package` (a list of names), and for every import_module /
    import_string / __import__ of a string literal."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            if node.module:
                yield node.lineno, ".".join([*base, node.module])
            else:  # `from . import x`, `from .. import x`: each name may be a module
                yield from ((node.lineno, ".".join([*base, alias.name])) for alias in node.names)
        elif isinstance(node, ast.Call) and _called_name(node.func) in DYNAMIC_IMPORTS and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value


def _called_name(func):
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def threats_modules():
    """Every Python file of the threats app except tests."""
    for path in sorted((ROOT / "threats").rglob("*.py")):
        relative = path.relative_to(ROOT)
        if "tests" not in relative.parts and not path.name.startswith("test_"):
            yield relative


def test_no_module_of_the_threats_app_imports_the_agents_app():
    found = [f"{relative}:{line} imports {module}"
             for relative in threats_modules()
             for line, module in imported_modules((ROOT / relative).read_text(encoding="utf-8"), list(relative.parts[:-1]))
             if module.split(".")[0] == "agents"]

    assert found == [], "threats must not import agents; ask through threats/analysis.py (docs/layout.md)"


def test_the_check_reads_every_module_of_the_app():
    modules = {relative.as_posix() for relative in threats_modules()}

    assert {"threats/services.py", "threats/analysis.py", "threats/importers/wazuh.py",
            "threats/management/commands/seed_demo.py"} <= modules


@pytest.mark.parametrize("source", [
    "import agents",
    "import agents.tasks as tasks",
    "from agents.models import AgentRun",
    "def later():\n    from agents.tasks import enqueue_analyses\n",
    "class Admin:\n    def get(self):\n        import agents.registry\n",
    "from .. import agents",
    "from ..agents import tasks",
    "from importlib import import_module\nimport_module('agents.tasks')",
    "from django.utils.module_loading import import_string\nimport_string('agents.registry.AGENT_KINDS')",
])
def test_the_check_finds_an_import_of_agents_wherever_it_is_written(source):
    assert "agents" in {module.split(".")[0] for _line, module in imported_modules(source, ["threats"])}


@pytest.mark.parametrize("source", ["from . import analysis", "from .agents_notes import x", "import threats.agents",
                                    "from .importers import agents"])
def test_the_check_lets_the_apps_own_modules_be(source):
    assert "agents" not in {module.split(".")[0] for _line, module in imported_modules(source, ["threats"])}


def test_the_agents_app_registers_the_analysis_when_django_starts():
    assert analysis.agent_kinds() == {kind: label for kind, (label, _path) in AGENT_KINDS.items()}
    assert analysis.family("bot_traffic") == "bot_traffic" and analysis.family("not a type") == "other"


def test_without_a_registered_analysis_threats_says_what_is_missing(monkeypatch):
    monkeypatch.setattr(analysis, "_hooks", None)

    for call in (lambda: analysis.request_analyses(["x"]), analysis.requeue_stale_analyses, analysis.inline,
                 analysis.agent_kinds):
        with pytest.raises(analysis.NotRegistered, match=r"AgentsConfig\.ready\(\).*INSTALLED_APPS"):
            call()


def test_the_threat_admin_shows_the_agent_runs_first(admin_client, threat):
    response = admin_client.get(f"/admin/threats/threat/{threat.pk}/change/")

    inlines = response.context["inline_admin_formsets"]
    assert [inline.opts.model._meta.label for inline in inlines] == ["agents.AgentRun", "threats.Note", "threats.ThreatEvent"]
    assert len(inlines[0].formset.forms) == len(AGENT_KINDS)

"""The Kubernetes docs stay true: helm/README.md's values table is the one generated from the chart,
and every command of the seed README is shown there (the project README keeps the short list)."""

import re

import pytest

from tests.chart import helmchart as hc
from tests.chart import values_table

pytestmark = pytest.mark.chart

README = (hc.REPO_ROOT / "README.md").read_text()
HELM_README = (hc.HELM_DIR / "README.md").read_text()
SEED_COMMANDS = [
    "./deploy.sh",
    "helm install soc-agent ./charts/soc-agent",
    "helm install soc-agent ./charts/soc-agent -f values-production.yaml",
    "helm install soc-agent ./charts/soc-agent --set backend.replicaCount=4",
    "--set backend.image.repository=gcr.io/my-project/soc-backend",
    "--set frontend.image.repository=gcr.io/my-project/soc-frontend",
    "helm upgrade soc-agent ./charts/soc-agent",
    "helm upgrade soc-agent ./charts/soc-agent -f values-production.yaml",
    "helm rollback soc-agent",
    "helm uninstall soc-agent",
    "./teardown.sh",
    "kubectl get pods -l app=soc-backend",
    "kubectl get pods -l app=redis",
    "kubectl logs -l app=soc-backend --tail=50",
    "kubectl exec -it <backend-pod> -- env | grep REDIS_URL",
    "kubectl get hpa",
    "kubectl get ingress",
    "kubectl describe ingress",
    "kubectl rollout restart deployment/soc-agent-backend",
]


def test_the_helm_readme_values_table_is_generated_from_the_chart():
    assert values_table.replaced(HELM_README) == HELM_README, "run: .venv/bin/python -m tests.chart.values_table --write"


def test_the_values_table_lists_every_documented_key():
    table = values_table.table()

    for key, _ in hc.values_params():
        assert f"| `{key}` |" in table


@pytest.mark.parametrize("command", SEED_COMMANDS)
def test_the_helm_readme_shows_every_seed_command(command):
    assert command in HELM_README


def test_the_project_readme_keeps_the_short_list_and_each_of_its_commands_is_in_the_helm_readme():
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL)
    short_list = [line.split(" #")[0].strip() for block in blocks for line in block.splitlines()
                  if line.startswith(("helm ", "./"))]

    assert "helm install soc-agent ./charts/soc-agent" in short_list and "./deploy.sh" in short_list
    assert [command for command in short_list if command not in HELM_README] == []


def test_the_rollout_restart_line_names_a_rendered_deployment():
    assert "soc-agent-backend" in hc.named(hc.render(), "Deployment")


def test_the_helm_readme_shows_the_redis_url_without_its_password():
    import re
    import subprocess
    import sys

    command = re.search(r'kubectl exec deploy/soc-agent-backend -- python -c "([^"]*REDIS_URL[^"]*)"', HELM_README).group(1)
    url = "redis://:s3cret-pw@soc-agent-redis:6379/0"

    shown = subprocess.run([sys.executable, "-c", command], env={"REDIS_URL": url},
                           capture_output=True, text=True, check=True).stdout.strip()

    assert shown == "redis://soc-agent-redis:6379/0"
    assert "REDIS_URL" in HELM_README and "a masked one" in HELM_README

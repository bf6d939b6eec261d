"""What every agent is: read what it needs from the database, then judge the signal.

`gather()` runs on the coordinator's thread and may query the database (`gather_many()` for a
batch's threats at once); `analyze()` runs on a pool thread, in parallel with the other agents,
and must only use the threat and what `gather()` returned. That split keeps the parallel part
free of database connections and deterministic.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


@dataclass
class AgentResult:
    """An agent's verdict. Every finding and risk contribution names the evidence it used."""

    summary: str
    confidence: float
    findings: list = field(default_factory=list)
    recommendations: list = field(default_factory=list)
    risk: list = field(default_factory=list)
    data: dict = field(default_factory=dict)

    def find(self, text, *evidence):
        self.findings.append({"text": text, "evidence": list(evidence)})

    def score(self, points, reason, *evidence):
        """Add a signed contribution to the threat's risk score (see docs/agents.md, "Risk score and severity")."""
        self.risk.append({"points": points, "reason": reason, "evidence": list(evidence)})

    @property
    def evidence(self):
        refs = [ref for item in self.findings + self.risk for ref in item["evidence"]]
        return list(dict.fromkeys(refs))


class Agent(ABC):
    kind = ""

    def gather(self, threat):
        """Read the stored records this agent needs. Runs before the parallel phase."""
        return None

    def gather_many(self, threats):
        """`gather` for a batch's threats, in order (an agent may read for all of them at once)."""
        return [self.gather(threat) for threat in threats]

    @abstractmethod
    def analyze(self, threat, gathered):
        """Return an AgentResult computed only from `threat` and `gathered`."""


def observable(threat, name, default=None):
    value = threat.observables.get(name)
    return default if value in (None, "", []) else value


def field_ref(name):
    return f"signal.observables.{name}"


def customer_ref(customer, rule):
    return f"customer:{customer.slug}.{rule}"


def counted(number, noun):
    """'1 similar threat', '3 similar threats': findings are read by people."""
    return f"{number} {noun}" + ("" if number == 1 else "s")


def with_article(phrase):
    """'an anomaly detection', 'a denial of service'."""
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def threat_ref(threat_id):
    return f"threat:{threat_id}"


def read_for_batch(threats, read, keep, limit):
    """Each threat's first `limit` stored records, in order, from ONE read for the whole batch:
    `read(threats, rows)` returns at most `rows` records, in order, a superset of every threat's;
    `keep(record, threat)` is the exact condition for one threat. When that read comes back full
    (the superset may have been cut), every threat reads on its own. A single threat always does:
    its read is exactly its own."""
    if len(threats) > 1:
        found = read(threats, limit * len(threats))
        if len(found) < limit * len(threats):
            return [[record for record in found if keep(record, threat)][:limit] for threat in threats]
    return [[record for record in read([threat], limit) if keep(record, threat)] for threat in threats]

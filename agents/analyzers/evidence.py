"""What the analyzers read from the agents' results, in one place (its producer may be renamed)."""


def attack_evidence(results):
    """The attack evidence the priority agent found (short descriptions), or []."""
    priority = results.get("priority")
    found = priority.data.get("attack_evidence", []) if priority is not None else []
    return list(found) if isinstance(found, list) else []

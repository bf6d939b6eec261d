"""What the analyzers read from the agents' results, in one place (its producer may be renamed)."""

from agents.priority.behaviours import FOOTHOLD, POLICIES


def hostile_attempts(results):
    """Attacks attempted (and not shown to have failed): no trusted source makes them."""
    priority = results.get("priority")
    found = priority.data.get("hostile_attempts", []) if priority is not None else []
    return list(found) if isinstance(found, list) else []


def host_actions(results):
    """What the alert shows done on a host (a foothold or later, not merely tagged by a rule): where an
    address comes from says nothing about whether that was legitimate."""
    priority = results.get("priority")
    found = priority.data.get("behaviours", []) if priority is not None else []
    return [b["name"] for b in found if isinstance(b, dict) and not b.get("tagged")
            and b.get("name") in POLICIES and POLICIES[b["name"]].stage >= FOOTHOLD]


def authorised(results):
    """An approved reason that names this very alert: a business item keyed to its entities, or a
    change of the very service or host it is about."""
    def data(kind):
        return results[kind].data if kind in results else {}

    return bool(data("context").get("explaining_by_entity") or data("devops").get("same_service"))


def attack_evidence(results):
    """The attack evidence the priority agent found (short descriptions), or []."""
    priority = results.get("priority")
    found = priority.data.get("attack_evidence", []) if priority is not None else []
    return list(found) if isinstance(found, list) else []

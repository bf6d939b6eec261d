"""Smaller things the detail page and the overview got wrong (issue 23 item 7): raw event numbers
in the activity, the analysis's own steps drowning the timeline, the status dropdown after a
closure, and an "Adversarial input" heading over a mere disagreement between agents."""

import re

import pytest

from threats import services
from threats.models import Threat

pytestmark = pytest.mark.django_db


def test_the_activity_shows_no_raw_event_numbers(alice_client, threat):
    html = alice_client.get("/").content.decode()
    activity = html[html.index('id="activity"'):]
    assert "data-seq=" in activity  # kept for replay, not shown
    assert not re.search(r">#\d+<", activity)


def test_the_timeline_folds_the_processing_log_away(alice_client, threat):
    html = alice_client.get(f"/threats/{threat.pk}/").content.decode()
    story, _, folded = html.partition('<details class="processing">')
    timeline = story[story.index('id="timeline-title"'):]
    assert "Signal received" in timeline and "agent started" not in timeline
    steps = sum(1 for m in threat.timeline if m["event"] in ("analysis_started", "context_gathered",
                                                             "agent_started", "agent_finished"))
    assert steps >= 10 and f"Processing log: {steps} steps of the analysis" in folded
    assert "agent started" in folded[:folded.index("</details>")]


def test_the_status_dropdown_shows_a_closed_status_after_closing(alice_client, alice, threat):
    services.triage(alice, threat.pk, status="closed", disposition="false_positive", reason="lab traffic")
    html = alice_client.get(f"/threats/{threat.pk}/").content.decode()
    select = html[html.index('id="status-choice"'):]
    select = select[:select.index("</select>")]
    assert '<option value="closed" selected disabled>Closed</option>' in select


def test_a_disagreement_alone_is_headed_as_one(alice_client, threat):
    Threat.objects.filter(pk=threat.pk).update(adversarial={
        "detected": False, "summary": "The agents disagree.", "findings": [],
        "contradictions": [{"agents": ["historical", "config"], "description": "seen before vs new"}]})
    html = alice_client.get(f"/threats/{threat.pk}/").content.decode()
    assert ">Agents disagree</h2>" in html and ">Adversarial input</h2>" not in html


def test_the_false_positive_table_says_which_likelihood_each_row_moves_once(alice_client, threat):
    same = {"kind": "false_positive", "weight": 0.2, "indicator": "seen 4 times before, closed benign", "source": "history"}
    benign = {**same, "kind": "benign_true_positive", "weight": 0.1}
    Threat.objects.filter(pk=threat.pk).update(false_positive={
        "score": 0.4, "benign_score": 0.3, "recommendation": "review", "indicators": [same, same, benign]})
    html = alice_client.get(f"/threats/{threat.pk}/").content.decode()
    table = html[html.index('id="fp-indicators"'):]
    table = table[:table.index("</table>")]
    assert table.count("seen 4 times before, closed benign") == 2  # the repeat once, the other likelihood once
    assert "<td>false-positive likelihood</td>" in table and "<td>benign-true-positive likelihood</td>" in table

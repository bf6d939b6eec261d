"""The story pages (docs/stories.md): /stories/ and /stories/<id>/, and the story card on a threat's
detail page — a timeline with the tactic progression in ATT&CK order, a badge when flagged, every
alert text escaped."""

import re

import pytest
from django.contrib.auth import get_user_model

from stories.models import Story
from tests import factories
from tests.test_stories import EXECUTION, EXFIL, INITIAL, RECON, alert
from threats.models import UserAccess

pytestmark = pytest.mark.django_db
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def attack(acme):
    # Out of kill-chain order in time: execution is seen before the (later-arriving) initial access.
    return [alert(acme, 0, [EXECUTION], "MEDIUM", title=f"{SCRIPT} ran"),
            alert(acme, 30, [INITIAL, RECON], "LOW", title="Phishing link clicked"),
            alert(acme, 90, [EXFIL], "HIGH", title="Upload to a paste site")]


def chips(body):
    """The tactic chips of the first kill-chain list, in page order."""
    listing = body.split('class="kill-chain"', 1)[1].split("</ol>", 1)[0]
    return re.findall(r'<span class="tactic-id">(TA\d{4})</span>', listing)


def test_the_story_page_shows_the_timeline_and_the_progression_in_attack_order(alice_client, attack):
    story = Story.objects.get(entity_kind="host")
    body = alice_client.get(f"/stories/{story.pk}/").content.decode()
    assert chips(body) == [RECON, INITIAL, EXECUTION, EXFIL]
    for threat in attack:
        assert f'href="/threats/{threat.pk}/"' in body
    assert "flagged: kill-chain progression" in body


def test_alert_titles_are_text_never_markup(alice_client, attack):
    story = Story.objects.get(entity_kind="host")
    for path in (f"/stories/{story.pk}/", "/stories/", f"/threats/{attack[1].pk}/"):
        body = alice_client.get(path).content.decode()
        assert SCRIPT not in body, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt; ran" in alice_client.get(f"/stories/{story.pk}/").content.decode()


def test_a_threats_detail_page_shows_its_story(alice_client, attack):
    body = alice_client.get(f"/threats/{attack[2].pk}/").content.decode()
    assert 'class="card story story-flagged"' in body and "Attack story: host <code>ws-01</code>" in body
    assert "(this alert)" in body and chips(body) == [RECON, INITIAL, EXECUTION, EXFIL]


def test_the_list_is_linked_from_the_nav_and_badges_flagged_stories(alice_client, acme, attack):
    alert(acme, 0, [INITIAL], host="quiet-host")
    body = alice_client.get("/stories/").content.decode()
    assert 'href="/stories/"' in alice_client.get("/").content.decode()
    assert body.count('class="badge badge-flagged"') == 1
    assert "quiet-host" in body and "ws-01" in body
    flagged_only = alice_client.get("/stories/", {"flagged": "true"}).content.decode()
    assert "quiet-host" not in flagged_only and "ws-01" in flagged_only


def test_a_bad_filter_is_a_400_that_names_it(alice_client):
    response = alice_client.get("/stories/", {"kind": "planet"})
    assert response.status_code == 400 and "Unknown kind" in response.content.decode()
    assert alice_client.get("/stories/", {"severity": "HIGH"}).status_code == 400


def test_another_customers_story_is_not_found(client, alice, acme, attack):
    globex = factories.make_customer(name="Globex")
    alert(globex, 0, [INITIAL])
    theirs = Story.objects.get(customer=globex)
    UserAccess.objects.create(user=alice).customers.set([acme])
    client.force_login(get_user_model().objects.get(pk=alice.pk))
    assert client.get(f"/stories/{theirs.pk}/").status_code == 404
    assert "Globex" not in client.get("/stories/").content.decode()


def test_the_outsider_is_refused(charlie_client, attack):
    assert charlie_client.get("/stories/").status_code == 403
    assert charlie_client.get(f"/stories/{Story.objects.first().pk}/").status_code == 403


def test_the_flag_reads_as_a_sentence_in_the_threats_history(alice_client, acme):
    from tests.test_stories import analysed

    analysed(acme, 0, [INITIAL])
    second = analysed(acme, 10, [EXECUTION])
    body = alice_client.get(f"/threats/{second.pk}/").content.decode()
    assert "attack story flagged: host db-7 reached Initial Access → Execution" in body


def test_a_tactic_whose_alert_is_gone_or_unnamed_shows_without_a_link(alice_client, acme, attack):
    story = Story.objects.get(entity_kind="host")
    story.tactics[0]["threat"] = ""
    story.save()
    body = alice_client.get(f"/stories/{story.pk}/").content.decode()
    assert '<span class="tactic"><span class="tactic-id">TA0002</span>' in body


def test_a_grouped_members_page_shows_its_group_heads_story(alice_client, acme, attack):
    from threats.choices import AnalysisStatus
    from threats.models import ThreatGroup

    head = attack[0]
    group = ThreatGroup.objects.create(customer=acme, source="generic", key="k", title="g", head=head, member_count=2,
                                       first_seen=head.occurred_at, last_seen=head.occurred_at)
    member = alert(acme, 1, [], stitch=False, analysis_status=AnalysisStatus.GROUPED, group=group)
    body = alice_client.get(f"/threats/{member.pk}/").content.decode()
    assert "Attack story: host <code>ws-01</code>" in body and "this alert's group head is in it" in body


def test_a_threats_page_shows_the_steps_and_the_story_page_every_alert(alice_client, acme, attack):
    quiet = alert(acme, 40, [EXECUTION], title="Execution seen again")  # reaches nothing new
    body = alice_client.get(f"/threats/{attack[0].pk}/").content.decode()
    assert "Execution seen again" not in body and "all 4 on the" in body
    story = Story.objects.get(entity_kind="host")
    assert f'data-threat-id="{quiet.pk}"' in alice_client.get(f"/stories/{story.pk}/").content.decode()

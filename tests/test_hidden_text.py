"""Text that hides itself (bidirectional overrides, zero-width and other invisible characters,
controls) is shown as a visible marker in every view and as a \\uXXXX escape in JSON.

The helper is tested against tests/fixtures/hidden_text.json, the table static/js/text.js is tested
against in a real browser (tests/browser/test_hidden_text.py). The pages, the admin and the API are
tested with a threat whose every text field carries hidden characters: the raw characters must not
appear anywhere in the answer.
"""

import json
import unicodedata
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.safestring import SafeData, mark_safe

from agents.models import AgentRun
from tests import factories
from threats import hidden_text, services
from threats.models import Threat, ThreatGroup

TABLE = json.loads((Path(__file__).parent / "fixtures" / "hidden_text.json").read_text())
# A right-to-left override, a zero-width space, an escape and a tag character (ASCII smuggling).
HIDDEN = ["\u202e", "\u200b", "\x1b", "\U000e0041"]
POISON = "".join(HIDDEN)
MARKERS = ["⟨U+202E⟩", "⟨U+200B⟩", "⟨U+001B⟩", "⟨U+E0041⟩"]
SPAN = '<span class="hidden-char" title="invisible or control character, shown escaped">⟨U+202E⟩</span>'


def in_class(char):
    return any(first <= ord(char) <= last for first, last in hidden_text.HIDDEN_RANGES)


# --- The helper -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", TABLE, ids=[case["name"] for case in TABLE])
def test_it_shows_each_character_as_the_shared_table_says(case):
    assert [list(piece) for piece in hidden_text.pieces(case["input"])] == case["pieces"]


def test_every_control_format_separator_and_surrogate_code_point_is_in_the_class():
    missing = [f"U+{code:04X}" for code in range(0x110000) if code not in (0x09, 0x0A)
               and unicodedata.category(chr(code)) in ("Cc", "Cf", "Zl", "Zp", "Cs") and not in_class(chr(code))]

    assert missing == []


def test_the_class_holds_no_visible_letter_digit_symbol_or_space():
    categories = {unicodedata.category(chr(code)) for first, last in hidden_text.HIDDEN_RANGES
                  for code in range(first, last + 1)}
    fillers = [chr(code) for first, last in hidden_text.HIDDEN_RANGES for code in range(first, last + 1)
               if unicodedata.category(chr(code)) == "Lo"]

    # Mn: variation selectors, the grapheme joiner, Mongolian and Khmer invisibles; Lo: Hangul fillers.
    assert categories <= {"Cc", "Cf", "Zl", "Zp", "Cs", "Cn", "Mn", "Lo"}
    assert [unicodedata.name(c) for c in fillers] == [
        "HANGUL CHOSEONG FILLER", "HANGUL JUNGSEONG FILLER", "HANGUL FILLER", "HALFWIDTH HANGUL FILLER"]


def test_it_escapes_html_and_puts_each_marker_in_a_styled_span():
    shown = hidden_text.reveal_html('<b title="x">invoice\u202efdp.exe</b>')

    assert isinstance(shown, SafeData)
    assert shown == f"&lt;b title=&quot;x&quot;&gt;invoice{SPAN}fdp.exe&lt;/b&gt;"


def test_it_adds_only_plain_markers_to_html_that_is_already_safe():
    shown = hidden_text.reveal_html(mark_safe('<a title="a\u202eb">c\u200bd</a>'))

    assert shown == '<a title="a⟨U+202E⟩b">c⟨U+200B⟩d</a>' and isinstance(shown, SafeData)


def test_its_plain_text_form_holds_no_markup():
    assert hidden_text.reveal_text('"a\u202e<b>"') == '"a⟨U+202E⟩<b>"'


def test_it_takes_odd_input_without_failing():
    assert hidden_text.reveal_text(None) == ""
    assert hidden_text.reveal_text(3.5) == "3.5"
    assert hidden_text.reveal_text(True) == "True"
    # A surrogate pair written as two code points is two lone surrogates to Python.
    assert hidden_text.reveal_text("\ud83d\ude00") == "⟨U+D83D⟩⟨U+DE00⟩"
    assert hidden_text.reveal_text("\U0001F600") == "\U0001F600"


def test_a_million_hidden_characters_in_a_row_are_one_marker():
    assert hidden_text.pieces("a" + "\u200b" * 1_000_000 + "b") == [
        ("text", "a"), ("mark", "⟨U+200B ×1000000⟩"), ("text", "b")]


def test_beyond_a_thousand_markers_the_rest_of_the_value_shows_replacement_characters():
    value = "a\u200b" * 100_000

    found = hidden_text.pieces(value)
    html = hidden_text.reveal_html(value)

    assert [kind for kind, _ in found].count("mark") == hidden_text.MAX_MARKERS
    assert found[-1] == ("text", "a\ufffd" * (100_000 - hidden_text.MAX_MARKERS))
    assert "\u200b" not in html
    assert len(html) < 100 * hidden_text.MAX_MARKERS + 3 * len(value)  # bounded, whatever the value


# --- JSON ---------------------------------------------------------------------------------------------


def test_json_writes_every_character_of_the_class_as_an_escape_and_reads_back_the_same():
    for first, last in hidden_text.HIDDEN_RANGES:
        for code in range(first, last + 1):
            value = f"a{chr(code)}b"
            text = json.dumps({"v": value}, cls=hidden_text.JSONEncoder)
            assert chr(code) not in text, f"U+{code:04X}"
            assert json.loads(text) == {"v": value}, f"U+{code:04X}"


def test_json_keeps_ordinary_text_readable_and_escapes_emoji_joiners_too():
    text = json.dumps({"name": "Müller → 東京", "who": "\U0001F469\u200d\U0001F4BB", "del": "\x7f\x85"},
                      cls=hidden_text.JSONEncoder)

    assert text == '{"name": "Müller → 東京", "who": "\U0001F469\\u200d\U0001F4BB", "del": "\\u007f\\u0085"}'


def test_json_writes_characters_outside_the_bmp_as_surrogate_pairs():
    text = json.dumps(["\U000e0041"], cls=hidden_text.JSONEncoder)

    assert text == '["\\udb40\\udc41"]' and json.loads(text) == ["\U000e0041"]


# --- Pages, admin and API with a threat whose every text field hides characters -------------------------


def poisoned(value, keys=False):
    """`value` with hidden characters inside every string (and inside dict keys if `keys`)."""
    if isinstance(value, str):
        return f"{value[:1]}{POISON}{value[1:]}"
    if isinstance(value, list):
        return [poisoned(item, keys) for item in value]
    if isinstance(value, dict):
        return {(poisoned(k) if keys else k): poisoned(v, keys) for k, v in value.items()}
    return value


@pytest.fixture
def hiding(alice):
    """An analysed threat whose title, customer, observables, raw alert, verdict, agent results,
    notes and triage reason all carry hidden characters."""
    customer = factories.make_customer(name=f"Acme{POISON} Corp")
    threat = factories.make_threat(
        customer=customer, title=f"Invoice{POISON}fdp.exe opened",
        observables={"src_ip": "192.0.2.66", "user_agent": f"Mozilla{POISON}/5.0", f"user{POISON}": "j.doe"},
        raw={"alert": {"name": f"rule{POISON}", f"key{POISON}": [f"v{POISON}"]}})
    fields = ("executive_summary", "risk_factors", "mitre", "false_positive", "response_plan", "timeline",
              "review_reasons", "adversarial", "signal", "analysis_error", "source_ref", "rule")
    values = {name: getattr(threat, name) for name in fields}
    Threat.objects.filter(pk=threat.pk).update(
        requires_human_review=True, mitre_hints=poisoned(["T1204"]), source=poisoned("generic"),
        **{name: poisoned("x" if value == "" else value) for name, value in values.items()})
    for run in AgentRun.objects.filter(threat=threat):
        for name in ("summary", "findings", "recommendations", "evidence", "risk", "error"):
            value = getattr(run, name)
            setattr(run, name, poisoned("x" if value == "" else value))
        run.save()
    services.add_note(alice, threat.pk, f"Called{POISON} the user\r\nno answer")
    services.triage(alice, threat.pk, status="closed", disposition="false_positive", reason=f"Known{POISON} tool")
    now = timezone.now()
    ThreatGroup.objects.create(customer=customer, source="generic", key=f"k{POISON}", title=f"Group{POISON}",
                               head=threat, member_count=2, first_seen=now, last_seen=now, users=[f"u{POISON}"])
    threat.refresh_from_db()
    return threat


@pytest.fixture
def root_client(client, db):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw-root"))
    return client


def assert_shown_escaped(html, at_least=1):
    for char, marker in zip(HIDDEN, MARKERS, strict=True):
        assert char not in html, f"a raw U+{ord(char):04X} reached the page"
        assert html.count(marker) >= at_least, marker


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/threats/", "/threats/{id}/"])
def test_every_page_shows_hidden_characters_as_markers(alice_client, hiding, path):
    response = alice_client.get(path.format(id=hiding.pk))

    assert response.status_code == 200
    assert_shown_escaped(response.content.decode())


@pytest.mark.django_db
def test_the_detail_page_marks_every_section_of_the_threat(alice_client, hiding):
    html = alice_client.get(f"/threats/{hiding.pk}/").content.decode()

    assert "<title>Invoice⟨U+202E⟩⟨U+200B⟩⟨U+001B⟩⟨U+E0041⟩fdp.exe opened · SOC" in html  # no markup in <title>
    assert f'<span class="threat-title">Invoice{SPAN}' in html
    for section in ('class="facts observables"', '<pre class="raw">', 'class="summary"', 'class="findings"',
                    'class="timeline"', 'id="notes-list"', 'id="history"', "requires review</span>",
                    'id="adv-title"', 'id="plan-title"', 'id="fp-title"', 'id="risk-title"', 'id="mitre-title"'):
        assert section in html, section
        start = html.index(section)
        assert SPAN in html[start:start + 20_000], section
    assert "the user<br>no answer" in html  # a CRLF line break stays a line break


@pytest.mark.django_db
@pytest.mark.parametrize("path", [
    "/admin/threats/threat/", "/admin/threats/threat/{id}/change/", "/admin/threats/threatgroup/",
    "/admin/threats/threatgroup/{group}/change/", "/admin/threats/threatevent/",
    "/admin/threats/threatevent/{event}/change/",
])
def test_the_admin_shows_hidden_characters_as_markers(root_client, hiding, path):
    group, event = ThreatGroup.objects.get(head=hiding), hiding.events.order_by("seq").first()

    response = root_client.get(path.format(id=hiding.pk, group=group.pk, event=event.pk))

    assert response.status_code == 200
    html = response.content.decode()
    assert_shown_escaped(html)
    assert "css/admin.css" in html  # the marker style


@pytest.mark.django_db
def test_the_admin_filters_and_read_only_json_show_markers(root_client, hiding):
    factories.make_threat(analyse=False)  # a second customer, so that "By customer" is offered
    changelist = root_client.get("/admin/threats/threat/").content.decode()
    change = root_client.get(f"/admin/threats/threat/{hiding.pk}/change/").content.decode()

    filters = changelist[changelist.index('id="changelist-filter"'):]
    assert f"g{SPAN}" in filters  # values from the data: "By source"
    assert "Acme⟨U+202E⟩" in filters  # related objects: their __str__, plain markers
    raw = change[change.index('class="form-row field-raw'):]
    assert f"rule{SPAN}" in raw[:5000] and f"key{SPAN}" in raw[:5000]


@pytest.mark.django_db
def test_the_api_writes_hidden_characters_as_escapes_and_reads_back_byte_exact(alice_client, hiding):
    response = alice_client.get(f"/api/threats/{hiding.pk}")

    text = response.content.decode()
    assert response.status_code == 200
    for char in HIDDEN:
        assert char not in text
    assert "\\u202e\\u200b\\u001b\\udb40\\udc41" in text
    data = json.loads(text)
    assert data["title"] == hiding.title and data["raw"] == hiding.raw and data["observables"] == hiding.observables
    assert data["notes"][0]["body"] == f"Called{POISON} the user\r\nno answer"


@pytest.mark.django_db
def test_the_api_keeps_ordinary_text_readable(alice_client, customer):
    threat = factories.make_threat(customer=customer, title="Anmeldung von Müller → 東京")

    for path in (f"/api/threats/{threat.pk}", "/api/threats"):
        text = alice_client.get(path).content.decode()
        assert "Anmeldung von Müller → 東京" in text, path


@pytest.mark.django_db
def test_the_list_endpoint_escapes_hidden_characters_too(alice_client, hiding):
    text = alice_client.get("/api/threats").content.decode()

    assert "\u202e" not in text and "Invoice\\u202e\\u200b\\u001b\\udb40\\udc41fdp.exe" in text

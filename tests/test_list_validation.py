"""List filters are validated alike in the API and on the threats page (issue 23 item 7): enums
ignore case, nonsense is a 400 naming the parameter, an oversized query string is 414, and a NUL
character is refused — never answered with the unfiltered list."""

import pytest

from tests import factories
from threats.choices import Severity
from threats.middleware import MAX_QUERY_STRING
from threats.models import Threat

pytestmark = pytest.mark.django_db


@pytest.fixture
def two(customer):
    critical = factories.make_threat(customer=customer, analyse=False, title="critical one")
    low = factories.make_threat(customer=customer, analyse=False, title="low one")
    Threat.objects.filter(pk=critical.pk).update(severity=Severity.CRITICAL)
    Threat.objects.filter(pk=low.pk).update(severity=Severity.LOW, status="acknowledged")
    return critical, low


def listed(response):
    assert response.status_code == 200, response.content
    return {item["title"] for item in response.json()["items"]}


@pytest.mark.parametrize("params,expected", [
    ({"severity": "critical"}, {"critical one"}),
    ({"severity": "Critical"}, {"critical one"}),
    ({"status": "ACKNOWLEDGED"}, {"low one"}),
    ({"threat_type": "BOT_TRAFFIC"}, {"critical one", "low one"}),
])
def test_the_api_enum_filters_ignore_case(alice_client, two, params, expected):
    assert listed(alice_client.get("/api/threats", params)) == expected


def test_the_page_enum_filters_ignore_case(alice_client, two):
    response = alice_client.get("/threats/", {"severity": "critical"})
    html = response.content.decode()
    assert "critical one" in html and "low one" not in html
    # The form and the live rows' filter (list.js) get the stored case.
    assert response.context["active_filters"] == {"severity": "CRITICAL"}
    assert 'value="CRITICAL" selected' in html


@pytest.mark.parametrize("params,field", [
    ({"severity": "urgent"}, "severity"),
    ({"status": "done"}, "status"),
    ({"limit": "-1"}, "limit"),
    ({"limit": "lots"}, "limit"),
    ({"requires_review": "maybe"}, "requires_review"),
    ({"review": "maybe"}, "review"),  # not an API parameter: a misspelt filter is not ignored
    ({"severty": "HIGH"}, "severty"),
])
def test_the_api_answers_nonsense_with_400_naming_the_parameter(alice_client, two, params, field):
    response = alice_client.get("/api/threats", params)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["field"] == field and isinstance(body["detail"], str) and "items" not in body


def test_an_unknown_api_parameter_lists_the_known_ones(alice_client, two):
    body = alice_client.get("/api/threats", {"review": "yes"}).json()
    assert body["detail"] == "Unknown parameter 'review'." and "requires_review" in body["valid"]


@pytest.mark.parametrize("params,words", [
    ({"review": "maybe"}, "Requires review is yes or no, not &#x27;maybe&#x27;."),
    ({"limit": "-1"}, "Unknown parameter &#x27;limit&#x27;"),
    ({"severity": "urgent"}, "Unknown severity &#x27;URGENT&#x27;."),
    ({"q": "192.0.2.10\x00"}, "The q filter cannot contain a NUL character."),
])
def test_the_page_refuses_nonsense_with_400_and_no_rows(alice_client, two, params, words):
    response = alice_client.get("/threats/", params)
    assert response.status_code == 400
    html = response.content.decode()
    assert words in html
    assert "critical one" not in html and "low one" not in html


def test_a_nul_in_the_api_search_is_400_never_the_unfiltered_list(alice_client, two):
    response = alice_client.get("/api/threats", {"q": "\x00"})
    assert response.status_code == 400 and response.json()["field"] == "q"


@pytest.mark.parametrize("path", ["/api/threats", "/threats/"])
def test_a_query_string_over_the_limit_is_414(alice_client, two, path):
    response = alice_client.get(path, {"q": "a" * (16 * 1024)})
    assert response.status_code == 414
    assert "URI too long" in response.content.decode()


def test_a_query_string_at_the_limit_is_read(alice_client, two):
    q = "a" * (MAX_QUERY_STRING - len("q="))
    response = alice_client.get("/api/threats", {"q": q})
    assert response.status_code == 400 and response.json()["field"] == "q"  # too long for a search: said so


def test_the_414_comes_before_the_login(client, db):
    assert client.get("/api/threats", {"q": "a" * (MAX_QUERY_STRING + 1)}).status_code == 414

"""Customer scoping of every admin model (docs/security.md "Multi-tenancy"): a staff user scoped to
Globex lists, filters, opens and writes only Globex's rows, reads shared rows without changing
them, never creates a record another customer's analysis would use, and cannot touch users, roles
or the customer list. Acme is the other tenant throughout."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from agents.models import AgentRun
from tests import factories
from threats import apikeys
from threats.models import APIKey, ContextItem, Customer, InfraEvent, UserAccess

pytestmark = pytest.mark.django_db
ADMIN = "/admin/threats/"


@pytest.fixture
def tenants(db):
    acme, globex = factories.make_customer(name="Acme"), factories.make_customer(name="Globex")
    now = timezone.now()
    return {
        "acme": acme, "globex": globex,
        "acme_item": ContextItem.objects.create(customer=acme, kind="business", title="Acme pentest window",
                                                valid_from=now - timedelta(days=1)),
        "globex_item": ContextItem.objects.create(customer=globex, kind="news", title="Globex product launch",
                                                  valid_from=now - timedelta(days=1)),
        "shared_item": ContextItem.objects.create(customer=None, kind="advisory", title="Campaign against everyone",
                                                  valid_from=now - timedelta(days=1)),
        "acme_infra": factories.make_infra_event(customer=acme, description="Acme release 9"),
        "shared_infra": factories.make_infra_event(customer=None, description="CDN outage for all"),
    }


def _staff(name, role, customers=None):
    user = get_user_model().objects.create_user(username=name, password="pw-" + name, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    if customers is not None:
        UserAccess.objects.create(user=user).customers.set(customers)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def oscar(tenants):
    """An analyst of Globex only, with staff status (admin triage)."""
    return _staff("oscar", "analyst", customers=[tenants["globex"]])


@pytest.fixture
def globex_admin(tenants):
    """A customer-scoped user with the admin role: keys, customers, users (as far as scoping allows)."""
    return _staff("gadmin", "admin", customers=[tenants["globex"]])


def _filter_choices(html, title):
    """The option labels of one changelist filter ("By customer")."""
    section = html.split(f"By {title}", 1)[1].split("</details>", 1)[0]
    return re.findall(r'<a href="\?[^"]*"[^>]*>([^<]+)</a>', section)


def _context_form(customer, title):
    start = timezone.now() - timedelta(hours=1)
    return {"customer": customer.pk if customer else "", "kind": "business", "title": title, "body": "",
            "threat_types": "[]", "keywords": "[]", "valid_from_0": start.strftime("%Y-%m-%d"),
            "valid_from_1": start.strftime("%H:%M:%S"), "valid_until_0": "", "valid_until_1": ""}


def _infra_form(customer, description):
    now = timezone.now() - timedelta(minutes=5)
    return {"customer": customer.pk if customer else "", "kind": "deployment", "service": "api",
            "description": description, "started_at_0": now.strftime("%Y-%m-%d"),
            "started_at_1": now.strftime("%H:%M:%S"), "ended_at_0": "", "ended_at_1": ""}


# --- Lists and filters --------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["contextitem", "infraevent", "customer", "threat", "threatgroup", "apikey"])
def test_a_scoped_user_never_sees_another_customer_in_a_list_or_its_filters(tenants, globex_admin, model):
    factories.make_threat(customer=tenants["acme"], analyse=False, title="Acme's own alert")
    apikeys.issue("acme shipper", ["ingest"], customer=tenants["acme"])
    response = globex_admin.get(f"{ADMIN}{model}/")

    assert response.status_code == 200
    html = response.content.decode()
    for leak in ("Acme", "acme"):
        assert leak not in html, f"{model} list shows {leak}"
    if "By customer" in html:
        assert "Globex" in _filter_choices(html, "customer")


def test_shared_records_are_listed_and_other_customers_records_are_not(tenants, oscar):
    html = oscar.get(f"{ADMIN}contextitem/").content.decode()
    assert "Globex product launch" in html and "Campaign against everyone" in html
    assert "Acme pentest window" not in html
    html = oscar.get(f"{ADMIN}infraevent/").content.decode()
    assert "CDN outage for all" in html and "Acme release 9" not in html


def test_another_customers_record_does_not_exist_for_a_scoped_user(tenants, oscar):
    for url in (f"{ADMIN}contextitem/{tenants['acme_item'].pk}/change/",
                f"{ADMIN}infraevent/{tenants['acme_infra'].pk}/change/",
                f"{ADMIN}customer/{tenants['acme'].pk}/change/"):
        response = oscar.get(url)
        assert response.status_code == 302 and response["Location"] == "/admin/", url  # "does not exist"


def test_the_threat_assignee_filter_names_only_colleagues(tenants, oscar):
    _staff("acme-analyst", "analyst", customers=[tenants["acme"]])
    _staff("globex-analyst", "analyst", customers=[tenants["globex"]])
    html = oscar.get(f"{ADMIN}threat/").content.decode()
    assert {"globex-analyst", "oscar"} <= set(_filter_choices(html, "assignee"))
    assert "acme-analyst" not in html


# --- Writes ----------------------------------------------------------------------------------------------


def test_the_add_form_offers_only_the_users_customers_and_no_shared_choice(tenants, oscar):
    form = oscar.get(f"{ADMIN}contextitem/add/").context["adminform"].form
    field = form.fields["customer"]
    assert list(field.queryset) == [tenants["globex"]]
    assert field.required  # empty would mean "every customer"


@pytest.mark.parametrize("target", ["acme", "shared"])
def test_a_scoped_analyst_cannot_create_a_record_for_another_customer_or_for_everyone(tenants, oscar, target):
    customer = tenants["acme"] if target == "acme" else None
    for model, form in (("contextitem", _context_form(customer, "Forged approval")),
                        ("infraevent", _infra_form(customer, "Forged release"))):
        response = oscar.post(f"{ADMIN}{model}/add/", form)
        assert response.status_code == 200, model  # the form again, with the error
        assert response.context["adminform"].form.errors["customer"], model
    assert not ContextItem.objects.filter(title="Forged approval").exists()
    assert not InfraEvent.objects.filter(description="Forged release").exists()


def test_a_scoped_analyst_creates_records_for_its_own_customer(tenants, oscar):
    response = oscar.post(f"{ADMIN}contextitem/add/", _context_form(tenants["globex"], "Globex red team"))
    assert response.status_code == 302
    assert ContextItem.objects.get(title="Globex red team").customer == tenants["globex"]


def test_a_scoped_analyst_cannot_move_its_record_to_everyone_or_to_another_customer(tenants, oscar):
    item = tenants["globex_item"]
    for customer in (None, tenants["acme"]):
        form = _context_form(customer, "Moved")
        oscar.post(f"{ADMIN}contextitem/{item.pk}/change/", form)
        item.refresh_from_db()
        assert item.customer == tenants["globex"] and item.title == "Globex product launch"


def test_shared_records_are_read_only_to_a_scoped_analyst(tenants, oscar):
    item = tenants["shared_item"]
    page = oscar.get(f"{ADMIN}contextitem/{item.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()  # view only
    response = oscar.post(f"{ADMIN}contextitem/{item.pk}/change/", _context_form(tenants["globex"], "Hijacked"))
    assert response.status_code == 403
    assert oscar.post(f"{ADMIN}contextitem/{item.pk}/delete/", {"post": "yes"}).status_code == 403
    item.refresh_from_db()
    assert item.title == "Campaign against everyone" and item.customer is None


def test_the_bulk_delete_action_refuses_shared_records(tenants, globex_admin):
    shared = tenants["shared_infra"]
    response = globex_admin.post(f"{ADMIN}infraevent/", {"action": "delete_selected", "post": "yes",
                                                         "_selected_action": [shared.pk]})
    assert response.status_code == 403
    assert InfraEvent.objects.filter(pk=shared.pk).exists()


def test_an_unscoped_staff_user_still_writes_shared_records(tenants):
    staff = _staff("provider", "analyst")
    response = staff.post(f"{ADMIN}contextitem/add/", _context_form(None, "Advisory for all"))
    assert response.status_code == 302
    assert ContextItem.objects.get(title="Advisory for all").customer is None


def test_the_next_analysis_uses_only_records_the_analyst_could_write(tenants, oscar):
    """The finding of issue 18: a business item forged for another customer explained its alert away."""
    for customer in (tenants["acme"], None, tenants["globex"]):
        form = _context_form(customer, f"Approved scan for {customer or 'everyone'}")
        form.update(threat_types='["bot_traffic"]')
        oscar.post(f"{ADMIN}contextitem/add/", form)
    acme_threat = factories.make_threat(customer=tenants["acme"])
    globex_threat = factories.make_threat(customer=tenants["globex"])

    def used(threat):
        return {ContextItem.objects.get(pk=pk).title for pk in AgentRun.objects.get(threat=threat, kind="context").data["items"]}

    assert "Approved scan for Globex" in used(globex_threat)  # what oscar may write is used for Globex
    assert not {t for t in used(acme_threat) if t.startswith("Approved scan")}
    assert not {t for t in used(globex_threat) if t.startswith("Approved scan for e")}


# --- Keys, customers, users and roles -------------------------------------------------------------------------


def test_a_scoped_admin_issues_keys_only_for_its_customers(tenants, globex_admin):
    for customer in (None, tenants["acme"]):
        response = globex_admin.post(f"{ADMIN}apikey/add/", {"name": "escalate", "scopes": ["read"], "source": "",
                                                             "customer": customer.pk if customer else ""})
        assert response.status_code == 200 and response.context["adminform"].form.errors["customer"]
    assert not APIKey.objects.filter(name="escalate").exists()
    response = globex_admin.post(f"{ADMIN}apikey/add/", {"name": "globex shipper", "scopes": ["ingest"], "source": "",
                                                         "customer": tenants["globex"].pk})
    assert response.status_code == 302 and APIKey.objects.get(name="globex shipper").customer == tenants["globex"]


def test_a_scoped_admin_cannot_revoke_another_customers_key(tenants, globex_admin):
    key, _ = apikeys.issue("acme shipper", ["ingest"], customer=tenants["acme"])
    globex_admin.post(f"{ADMIN}apikey/", {"action": "revoke_keys", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked_at is None


def test_a_scoped_admin_neither_adds_nor_deletes_customers(tenants, globex_admin):
    assert globex_admin.get(f"{ADMIN}customer/add/").status_code == 403
    assert globex_admin.post(f"{ADMIN}customer/{tenants['globex'].pk}/delete/", {"post": "yes"}).status_code == 403
    assert Customer.objects.count() == 2


@pytest.mark.parametrize("url", ["/admin/auth/user/", "/admin/auth/group/", "/admin/auth/user/add/"])
def test_a_scoped_admin_cannot_manage_users_or_roles(tenants, globex_admin, url):
    assert globex_admin.get(url).status_code == 403


def test_a_scoped_admin_cannot_widen_its_own_scope(tenants, globex_admin):
    me = get_user_model().objects.get(username="gadmin")
    response = globex_admin.post(f"/admin/auth/user/{me.pk}/change/", {
        "username": "gadmin", "is_active": "on", "is_staff": "on", "is_superuser": "on",
        "soc_access-TOTAL_FORMS": "0", "soc_access-INITIAL_FORMS": "1"})
    assert response.status_code == 403
    me.refresh_from_db()
    assert not me.is_superuser and list(me.soc_access.customers.all()) == [tenants["globex"]]

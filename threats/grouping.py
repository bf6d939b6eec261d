"""The grouping rules of alert ingestion (docs/grouping.md).

- **Duplicates.** An alert joins a recent group with the same key unless it brings something new (a
  tactic, a user, a higher severity); only the group's head is analysed, members share its verdict.
  The key is the format's rule + entity, except that reconnaissance from one external address is
  keyed by that address alone: a scanner is one group across destinations and signatures.
- **Campaigns.** Alerts of one customer naming the same person's account (or, for activity, the
  same attacking address or host) within INGEST_CAMPAIGN_WINDOW_SECONDS are one Campaign, across
  hosts, rules and formats; each is still analysed. Every key a campaign's alerts named finds it
  (CampaignLink). A group's members are in their head's campaign.
- **Building blocks ride on their parent.** A building block whose parent is known is a member of
  the parent's group; a parent arriving later heads its group and adopts its stored building blocks
  (with their duplicates). Building blocks and other alerts never share a key, so a parent never
  joins its own building block's group.

threats/ingest.py plans each chunk through one `Grouper`, in memory, inside the chunk's transaction,
then writes it: `save_before` ahead of the threats' insert, `save_after` behind it. `identity` is
what the system treats as one (the evaluation reads it).
"""

import ipaddress
import re
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Exists, F, Max, Min, OuterRef, Subquery
from django.utils import timezone

from . import services
from .choices import AnalysisStatus
from .importers.common import KEY_MAX, SEVERITY_RANK, severity_max
from .models import Campaign, CampaignLink, Threat, ThreatGroup

CANDIDATES = 20  # recent groups (campaigns) with the same key that an alert may join
RECON = frozenset({"network_scan", "vulnerability_scan", "recon_probe"})
# Posture and information, not activity: they link nothing into a campaign.
NOT_ACTIVITY = {"informational", "vulnerability"}
# Routine on their own (a logon, an allowed sudo, a policy event): they join a campaign an attack
# started on the same source or host, but start none by their address or host.
LINKS_ONLY = {"login_success", "privileged_command", "policy_violation", "account_changed", "integrity_change"}
# What an outside address tries against a host without landing: it is the host's attacker, not its
# story. Not a flood: its sources are many reflectors or forged, and the target is what it is about.
ATTEMPTS = frozenset({"network_scan", "vulnerability_scan", "recon_probe", "login_failure", "brute_force",
                      "password_spraying", "credential_stuffing", "web_attack", "exploit_attempt", "automation",
                      "rate_abuse", "anonymising_proxy", "reputation_match", "phishing"})
GUESSING = frozenset({"login_failure", "brute_force", "password_spraying", "credential_stuffing"})
SCAN_PREFIX, BLOCK_PREFIX = "scan|", "bb|"
MEDIUM_RANK = SEVERITY_RANK["MEDIUM"]
# Addresses of the customer's own networks: a sweep from one of them is an internal host's
# behaviour (discovery, an inventory scanner), judged per rule and target like any other alert.
INTERNAL_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "0.0.0.0/8", "::1/128", "::/128", "fc00::/7", "fe80::/10"))

# Account names that do not stand for one person (docs/grouping.md, "Campaigns", says why each).
PLACEHOLDERS = frozenset({"", "-", "--", "?", "*", "n/a", "na", "none", "null", "nil", "unknown", "(unknown)",
                          "undefined", "empty"})
SYSTEM_ACCOUNTS = frozenset({
    # Windows: the operating system's own principals, and the built-in accounts every host has.
    "system", "local system", "localsystem", "local service", "localservice", "network service", "networkservice",
    "anonymous logon", "anonymous", "trustedinstaller", "iusr", "defaultaccount", "wdagutilityaccount",
    "administrator", "guest", "krbtgt",
    # Network appliances and cloud images: the default administrator of every device.
    "admin",
    # Unix: the superuser and the system accounts every host has.
    "root", "daemon", "bin", "sys", "nobody", "nfsnobody", "www-data", "apache", "nginx", "sshd", "mail", "postfix",
    "systemd-network", "systemd-resolve", "systemd-timesync", "messagebus", "polkitd", "syslog", "_apt",
})
SERVICE_DOMAINS = frozenset({"nt authority", "nt service", "iis apppool", "font driver host", "window manager",
                             "nt virtual machine"})
SESSION_ACCOUNTS = re.compile(r"^(dwm|umfd)-\d+$")  # Desktop Window Manager / font driver, one per session


# --- The rules, alert by alert -----------------------------------------------------------------------


def is_building_block(alert):
    return alert.signal.get("kind") == "building_block"


def ancestors(alert):
    """Ids of the alerts this one was built on (Elastic `kibana.alert.ancestors` of type signal)."""
    return [ref for ref in alert.signal.get("ancestors") or [] if isinstance(ref, str) and ref]


def behaviours(alert):
    return {b.get("name") for b in alert.signal.get("behaviours") or [] if isinstance(b, dict)}


def is_external(address):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return not any(ip in network for network in INTERNAL_NETWORKS if network.version == ip.version)


def is_scan(alert):
    """Reconnaissance and nothing else (an informational classtype aside) from an external address."""
    named = behaviours(alert)
    return bool(named & RECON) and named <= RECON | {"informational"} and is_external(
        alert.observables.get("src_ip", ""))


def group_key(alert):
    """The duplicate-group key: building blocks apart, scanners by address, else rule + entity."""
    if is_building_block(alert):
        return f"{BLOCK_PREFIX}{alert.group_key}"[:KEY_MAX]
    if is_scan(alert):
        return f"{SCAN_PREFIX}{alert.observables['src_ip']}"
    return alert.group_key


def person(name):
    """The account name as one person's (lower case, without its NetBIOS domain), or "" when the
    name stands for no single person: a placeholder, a machine, a service or a per-host built-in."""
    text = str(name).strip().casefold()[:200]
    if text.startswith("cn="):  # an LDAP distinguished name: its first relative name
        text = text[3:].split(",", 1)[0]
    domain, backslash, account = text.rpartition("\\")
    if backslash and domain.strip() in SERVICE_DOMAINS:
        return ""
    text = (account if backslash else text).strip()
    if text in PLACEHOLDERS or text in SYSTEM_ACCOUNTS or text.endswith("$") or SESSION_ACCOUNTS.match(text):
        return ""
    return text


def campaign_user(alert):
    """(person, name as written) of the first account the alert names that is a person's: the
    observables' user, else the signal's target account, else the account acting (sudo to root by
    a person is that person's doing). In a membership change (a group and the member added to it)
    the group's name is not taken for a user."""
    account = alert.signal.get("account") or {}
    group = str(account.get("group") or "").strip().casefold() if account.get("target") else None
    for written in (alert.observables.get("user"), account.get("target"), account.get("actor")):
        if isinstance(written, str) and written.strip().casefold() != group and person(written):
            return person(written), written.strip()
    return "", ""


def campaign_keys(alert):
    """[(key, title)] that link an alert to a campaign, the strongest first: the person it names; and,
    for an alert that shows activity (not posture or information), the external address attacking, or
    else the internal host it happened on. It joins a campaign any of them names (a brute force keyed
    by its source, then the login that names the user from that source), else starts one by the first."""
    keys = []
    name, written = campaign_user(alert)
    if name:
        keys.append((f"user:{name}"[:KEY_MAX], f"Activity of user {written}"[:200]))
    if not is_activity(alert):
        return keys
    addresses = [str(alert.observables.get(name) or "") for name in ("src_ip", "dst_ip")]
    remote = next((a for a in addresses if is_external(a)), "")  # the attacker, or where a host calls out to
    local = str(alert.observables.get("host") or "").strip().casefold() or next(
        (a for a in addresses if a and not is_external(a)), "")
    outbound = alert.signal.get("direction") == "outbound" or bool(remote) and remote != addresses[0]
    # An outsider's attempts make a host their target, not part of its story: two scanners of one
    # host are two matters. The host links once something landed on it, or when it is the actor.
    shown = behaviours(alert)
    on_host = not remote or outbound or bool(shown - ATTEMPTS - NOT_ACTIVITY - LINKS_ONLY) or guessed_in(shown)
    linked = [(f"source:{remote}"[:KEY_MAX], f"Activity with {remote}"[:200])] if remote else []
    linked += [(f"host:{local}"[:KEY_MAX], f"Activity on host {local}"[:200])] if local and on_host else []
    if outbound:
        linked.reverse()  # one of ours reaching out (a beacon, a scan of the internet): the host is the actor
    return keys + linked


def guessed_in(shown):
    """Password guessing that ended in a logon: the outsider landed on the host, whose next events
    (a new account, a cron job) are the attacker's story."""
    return "login_success" in shown and bool(shown & GUESSING)


def starts_campaign(alert, keys):
    """A person's activity always may; an address or a host starts one only with activity beyond routine."""
    return keys[0][0].startswith("user:") or beyond_routine(alert)


def is_activity(alert):
    """What the alert shows is activity, not posture or information. An alert whose behaviour no
    field names, that its source rated MEDIUM or more, is activity of some kind all the same."""
    shown = behaviours(alert)
    return bool(shown - NOT_ACTIVITY) or not shown and (
        SEVERITY_RANK.get(alert.severity_hint, 0) >= MEDIUM_RANK or bool(alert.observables.get("command_line")))


def beyond_routine(alert):
    shown = behaviours(alert)
    return bool(shown - NOT_ACTIVITY - LINKS_ONLY) or not shown and is_activity(alert)


def linking_keys(alert, keys):
    """The keys by which later alerts find the campaign this alert is in: all of them for activity
    beyond routine; for a routine logon only its person (the hosts a user logged on to are not
    thereby part of the user's story: the next SYSTEM service start there is not)."""
    return keys if beyond_routine(alert) else [k for k in keys if k[0].startswith("user:")]


def identity(threat):
    """What the system treats as one: the campaign, else the duplicate group, else the threat."""
    if threat.campaign_id:
        return f"campaign:{threat.campaign_id}"
    if threat.group_id:
        return f"group:{threat.group_id}"
    return f"threat:{threat.pk}"


# --- Planning a chunk ------------------------------------------------------------------------------


@dataclass
class Placement:
    """Where one new alert goes. Planning may still move it (a later parent adopting it)."""

    threat_id: object
    customer_id: int
    alert: object
    group: ThreatGroup | None = None
    head: bool = True
    campaign: Campaign | None = None

    @property
    def analysis_status(self):
        return AnalysisStatus.QUEUED if self.head else AnalysisStatus.GROUPED

    def fields(self):
        """The Threat fields grouping decides."""
        return {"group": self.group, "campaign": self.campaign, "analysis_status": self.analysis_status}


class Grouper:
    """The grouping of one ingest chunk of one format. `load` reads what the chunk's alerts may
    join (recent groups and campaigns, stored parents and building blocks) in a few queries;
    `place` decides each alert in memory; `save_before` / `save_after` write the result."""

    def __init__(self, source, window_seconds, campaign_window_seconds):
        self.source = source
        self.window = timedelta(seconds=window_seconds)
        self.campaign_window = timedelta(seconds=campaign_window_seconds)
        self.groups, self.campaigns = {}, {}  # (customer id, key) -> newest first
        self.campaign_by_pk, self.group_by_pk = {}, {}
        self.linked = set()  # (id(campaign), key) known to find that campaign
        self.stored_blocks, self.stored_parents = {}, {}  # (customer id, source_ref) -> row / parent's group id
        self.placed, self.parents = {}, {}  # (customer id, source_ref) -> Placement
        self._pending()

    def _pending(self):
        """What the next save writes."""
        self.new_groups, self.new_campaigns, self.new_links, self.touched = [], [], [], {}
        self.moves, self.dissolved, self.moved, self.emptied, self.placements = [], [], [], [], []

    # --- Reading -----------------------------------------------------------------------------------

    def load(self, mapped):
        """`mapped`: [(alert, customer)] of the chunk, before any `place`."""
        if not mapped:
            return
        customers = {customer.pk for _, customer in mapped}
        if self.window:
            self._load_groups(mapped, customers)
            self._load_lineage(mapped, customers)
        if self.campaign_window:
            self._load_campaigns(mapped, customers)
        self._load_group_campaigns()

    def _load_groups(self, mapped, customers):
        moments = [alert.occurred_at for alert, _ in mapped]
        found = ThreatGroup.objects.filter(
            source=self.source, customer_id__in=customers, key__in={group_key(alert) for alert, _ in mapped},
            first_seen__gte=min(moments) - self.window, first_seen__lte=max(moments) + self.window,
        ).annotate(head_campaign_id=F("head__campaign_id")).order_by("-id")
        for group in found:
            recent = self.groups.setdefault((group.customer_id, group.key), [])
            if len(recent) < CANDIDATES:
                recent.append(self._known_group(group))

    def _load_lineage(self, mapped, customers):
        """Stored building blocks the chunk's alerts name as ancestors, and stored parents (ingested
        within the window) that name the chunk's building blocks."""
        named = {ref for alert, _ in mapped for ref in ancestors(alert)}
        blocks = Threat.objects.filter(source=self.source, customer_id__in=customers, source_ref__in=named,
                                       signal__kind="building_block")
        rows = list(blocks.values("pk", "customer_id", "source_ref", "group_id", "campaign_id")) if named else []
        wanted = {(c.pk, alert.source_ref) for alert, c in mapped if is_building_block(alert)}
        # The partial index threat_with_ancestors (migration 0012, PostgreSQL) serves this exclude().
        parents = Threat.objects.filter(source=self.source, customer_id__in=customers, group__isnull=False,
                                        received_at__gte=timezone.now() - self.window).exclude(
            signal__ancestors=[]).order_by()
        found = list(parents.values_list("customer_id", "group_id", "signal__ancestors")) if wanted else []
        self._read_groups({row["group_id"] for row in rows} | {group_id for _, group_id, _ in found})
        for row in rows:
            self.stored_blocks[row["customer_id"], row["source_ref"]] = row
        for customer_id, group_id, refs in found:
            for ref in refs if isinstance(refs, list) else []:
                if (customer_id, ref) in wanted:
                    self.stored_parents.setdefault((customer_id, ref), group_id)

    def _read_groups(self, ids):
        ids = {pk for pk in ids if pk is not None and pk not in self.group_by_pk}
        for group in ThreatGroup.objects.filter(pk__in=ids).annotate(head_campaign_id=F("head__campaign_id")):
            self._known_group(group)

    def _known_group(self, group):
        """One object per stored group, whichever query found it first."""
        return self.group_by_pk.setdefault(group.pk, group)

    def _load_campaigns(self, mapped, customers):
        keys = {key for alert, _ in mapped for key, _title in campaign_keys(alert)}
        if not keys:
            return
        moments = [alert.occurred_at for alert, _ in mapped]
        found = CampaignLink.objects.filter(
            customer_id__in=customers, key__in=keys, campaign__first_seen__gte=min(moments) - self.campaign_window,
            campaign__first_seen__lte=max(moments) + self.campaign_window).select_related("campaign").order_by(
            "-campaign_id")
        for link in found:
            recent = self.campaigns.setdefault((link.customer_id, link.key), [])
            if len(recent) < CANDIDATES:
                campaign = self.campaign_by_pk.setdefault(link.campaign_id, link.campaign)
                recent.append(campaign)
                self.linked.add((id(campaign), link.key))

    def _load_group_campaigns(self):
        """Every stored group's campaign (its head's), as objects: its new members join it."""
        if not self.campaign_window:
            for group in self.group_by_pk.values():
                group.campaign = None
            return
        wanted = {g.head_campaign_id for g in self.group_by_pk.values()} | {
            row["campaign_id"] for row in self.stored_blocks.values()}
        wanted -= {None, *self.campaign_by_pk}
        for campaign in Campaign.objects.filter(pk__in=wanted):
            self.campaign_by_pk[campaign.pk] = campaign
        for group in self.group_by_pk.values():
            group.campaign = self.campaign_by_pk.get(group.head_campaign_id)

    # --- Deciding ----------------------------------------------------------------------------------

    def place(self, alert, customer, threat_id):
        """The Placement of one new alert (in chunk order)."""
        placement = Placement(threat_id, customer.pk, alert)
        if self.window:
            self._choose_group(placement)
        if placement.head:
            placement.campaign = self._campaign(alert, customer)
            if placement.group is not None:
                placement.group.campaign = placement.campaign
        else:
            placement.campaign = placement.group.campaign
        if placement.group is not None:
            self._adopt(placement)
        self.placed[customer.pk, alert.source_ref] = placement
        for ref in ancestors(alert):
            self.parents.setdefault((customer.pk, ref), placement)
        self.placements.append(placement)
        return placement

    def _choose_group(self, placement):
        alert, customer_id = placement.alert, placement.customer_id
        parent = self._parent_group(placement) if is_building_block(alert) else None
        if parent is not None:
            return self._join(placement, parent)
        key = group_key(alert)
        for group in self.groups.get((customer_id, key), []):
            if self._fits(group, placement, key):
                return self._join(placement, group)
        user = alert.user.casefold()
        group = ThreatGroup(
            customer_id=customer_id, source=self.source, key=key, title=alert.title[:200], member_count=1,
            first_seen=alert.occurred_at, last_seen=alert.occurred_at, worst_severity_hint=alert.severity_hint,
            tactics=list(alert.tactics), users=[user] if user else [], head_id=placement.threat_id,
        )
        group.campaign = None  # set with the head's campaign (`place`)
        self.new_groups.append(group)
        self.groups.setdefault((customer_id, key), []).insert(0, group)
        placement.group = group

    def _parent_group(self, placement):
        """The group of this building block's parent: planned in this chunk, or stored."""
        key = (placement.customer_id, placement.alert.source_ref)
        parent = self.parents.get(key)
        group = parent.group if parent is not None else self.group_by_pk.get(self.stored_parents.get(key))
        return group if group is not None and group.head_id is not None else None

    def _fits(self, group, placement, key):
        """Same key and window, a head to analyse it, never a group holding one of the alert's own
        building blocks; and, but for a scan (a scan stays a scan whatever its signature's rating),
        nothing new: no new tactic, no new user, no higher severity."""
        alert = placement.alert
        if group.head_id is None or abs(alert.occurred_at - group.first_seen) > self.window:
            return False
        if any(self._group_of(placement.customer_id, ref) is group for ref in ancestors(alert)):
            return False
        if key.startswith(SCAN_PREFIX):
            return True
        return (set(alert.tactics) <= set(group.tactics)
                and (not alert.user or alert.user.casefold() in group.users)
                and SEVERITY_RANK.get(alert.severity_hint, 0) <= SEVERITY_RANK.get(group.worst_severity_hint, 0))

    def _join(self, placement, group):
        alert = placement.alert
        placement.group, placement.head = group, False
        group.member_count += 1
        group.first_seen = min(group.first_seen, alert.occurred_at)
        group.last_seen = max(group.last_seen, alert.occurred_at)
        group.worst_severity_hint = severity_max(group.worst_severity_hint, alert.severity_hint)
        self._touch(group)

    def _touch(self, group):
        if group.pk is not None:
            self.touched[group.pk] = group

    def _campaign(self, alert, customer):
        """The campaign of a new group head (or ungrouped alert): by the person, attacker or host it names."""
        keys = campaign_keys(alert) if self.campaign_window else []
        if not keys:
            return None
        for key, _title in keys:
            for campaign in self.campaigns.get((customer.pk, key), []):
                if abs(alert.occurred_at - campaign.first_seen) <= self.campaign_window:
                    campaign.first_seen = min(campaign.first_seen, alert.occurred_at)
                    return self._link(campaign, customer, linking_keys(alert, keys))
        if not starts_campaign(alert, keys):
            return None
        key, title = keys[0]
        campaign = Campaign(customer=customer, key=key, title=title, threat_count=0,
                            first_seen=alert.occurred_at, last_seen=alert.occurred_at)
        self.new_campaigns.append(campaign)
        return self._link(campaign, customer, [keys[0], *linking_keys(alert, keys)])

    def _link(self, campaign, customer, keys):
        """Every key of an alert in the campaign finds it from now on (the spray's next user, the host
        the attacker's login landed on)."""
        for key, _title in keys:
            if (id(campaign), key) not in self.linked:
                self.linked.add((id(campaign), key))
                self.new_links.append((campaign, key))
                self.campaigns.setdefault((customer.pk, key), []).insert(0, campaign)
        return campaign

    # --- Building blocks adopted by a parent that came after them -------------------------------------

    def _group_of(self, customer_id, ref):
        """The group an ancestor is in now (a planned or a stored threat), or None."""
        placed = self.placed.get((customer_id, ref))
        if placed is not None:
            return placed.group
        row = self.stored_blocks.get((customer_id, ref))
        return self.group_by_pk.get(row["group_id"]) if row else None

    def _adopt(self, placement):
        """Each building block the new alert names, with the duplicates grouped with it, becomes a
        member of the alert's group - unless it already rides on a parent."""
        for ref in ancestors(placement.alert):
            key = (placement.customer_id, ref)
            placed, row = self.placed.get(key), self.stored_blocks.get(key)
            if placed is not None and is_building_block(placed.alert):
                self._adopt_group(placement, placed.group)
            elif row is not None and row["group_id"] is None and not row.get("adopted"):
                row["adopted"] = True
                self._adopt_stored(placement, row)
            elif row is not None:
                self._adopt_group(placement, self.group_by_pk.get(row["group_id"]))

    def _adopt_group(self, placement, block_group):
        target = placement.group
        if block_group is None or block_group is target or not block_group.key.startswith(BLOCK_PREFIX):
            return  # gone, or already riding on a parent
        self._take_campaign(placement, block_group.campaign)
        for other in self.placed.values():
            if other.group is block_group:
                other.group, other.head, other.campaign = target, False, target.campaign
        self._merge_counts(target, block_group, block_group.member_count)
        recent = self.groups.get((block_group.customer_id, block_group.key), [])
        if block_group in recent:
            recent.remove(block_group)
        if block_group.pk is None:
            self.new_groups.remove(block_group)
            return
        self.group_by_pk[block_group.pk] = target  # its building blocks now ride on the parent
        self.touched.pop(block_group.pk, None)
        self.dissolved.append(block_group)
        self.moves.append((target, [block_group.pk], []))
        self.emptied.append(block_group.campaign)

    def _adopt_stored(self, placement, row):
        """A stored building block outside any group (stored while grouping was off)."""
        self._take_campaign(placement, self.campaign_by_pk.get(row["campaign_id"]))
        placement.group.member_count += 1
        self._touch(placement.group)
        self.moves.append((placement.group, [], [row["pk"]]))
        self.emptied.append(self.campaign_by_pk.get(row["campaign_id"]))

    def _take_campaign(self, placement, campaign):
        """A parent heading its group that names no person itself is in its building blocks' campaign."""
        if placement.head and placement.campaign is None and campaign is not None:
            placement.campaign = placement.group.campaign = campaign

    def _merge_counts(self, target, group, count):
        target.member_count += count
        target.first_seen = min(target.first_seen, group.first_seen)
        target.last_seen = max(target.last_seen, group.last_seen)
        target.worst_severity_hint = severity_max(target.worst_severity_hint, group.worst_severity_hint)
        self._touch(target)

    # --- Writing -----------------------------------------------------------------------------------

    def save_before(self):
        """New campaigns and groups, then stored building blocks moved to their parent's group (and
        their emptied groups and campaigns deleted): every threat write before the threats' insert,
        which takes the event-log lock (a writer never writes threats after taking it)."""
        in_use = {id(p.campaign) for p in self.placements}  # a campaign its building blocks left is not created
        Campaign.objects.bulk_create([c for c in self.new_campaigns if id(c) in in_use])
        ThreatGroup.objects.bulk_create(self.new_groups)
        for target, group_ids, threat_ids in self.moves:
            self.moved += services.do_join_group(target, target.campaign, group_ids, threat_ids)
        if self.dissolved:
            ThreatGroup.objects.filter(pk__in=[g.pk for g in self.dissolved]).delete()
        emptied = [c.pk for c in self.emptied if c is not None and id(c) not in in_use]
        Campaign.objects.filter(pk__in=emptied).exclude(Exists(Threat.objects.filter(campaign=OuterRef("pk")))).delete()
        CampaignLink.objects.bulk_create([
            CampaignLink(campaign_id=campaign.pk, customer_id=campaign.customer_id, key=key)
            for campaign, key in self.new_links if id(campaign) in in_use], ignore_conflicts=True)

    def save_after(self, actor):
        """After the threats' insert: the moved threats' events, the touched groups' counts, and
        every campaign involved counted again from its threats (exact whatever moved where)."""
        services.record_group_moves(self.moved, actor)
        for group in self.touched.values():
            ThreatGroup.objects.filter(pk=group.pk).update(
                member_count=group.member_count, first_seen=group.first_seen, last_seen=group.last_seen,
                worst_severity_hint=group.worst_severity_hint)
        involved = [p.campaign for p in self.placements] + [t.campaign for t, _, _ in self.moves] + [*self.emptied]
        recount_campaigns({c.pk for c in involved if c is not None and c.pk is not None})
        self._pending()


def recount_campaigns(ids):
    """threat_count, first_seen and last_seen of these campaigns from their threats, in one statement."""
    if not ids:
        return
    threats = Threat.objects.filter(campaign=OuterRef("pk")).order_by().values("campaign")
    Campaign.objects.filter(pk__in=ids).filter(Exists(threats)).update(
        threat_count=Subquery(threats.annotate(n=Count("pk")).values("n")),
        first_seen=Subquery(threats.annotate(at=Min("occurred_at")).values("at")),
        last_seen=Subquery(threats.annotate(at=Max("occurred_at")).values("at")),
    )

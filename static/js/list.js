// Threat list: rows update live; on the first page, threats that start to match the filters appear
// in time order. Selection and bulk triage (one API call, one event per threat).
(function () {
  "use strict";
  var root = document.getElementById("threat-list");
  if (!root) return;
  var live = window.SocLive, rows = window.SocRows, triage = window.SocTriage, reveal = window.SocText.fill, config = live.config;
  var tbody = document.getElementById("rows");
  var filters = JSON.parse(document.getElementById("active-filters").textContent);
  var firstPage = root.dataset.firstPage === "true";
  var selectable = !!document.getElementById("bulk");
  var LIVE_ROW_LIMIT = 200;
  var hasOlderPage = root.dataset.hasOlder === "true";

  // The same filters as the server's (paging._filter), applied to an event's summary.
  function matches(t) {
    var inherited = !t.severity && t.group_head ? t.group_head.severity : null;  // paging._severity_filter
    if (filters.severity && t.severity !== filters.severity && inherited !== filters.severity) return false;
    if (filters.threat_type && t.threat_type !== filters.threat_type) return false;
    if (filters.status && t.status !== filters.status) return false;
    if (filters.customer && t.customer_slug !== filters.customer) return false;
    if (filters.assignee === "none" && t.assignee) return false;
    if (filters.assignee === "me" && t.assignee !== config.username) return false;
    if (filters.assignee && ["me", "none"].indexOf(filters.assignee) === -1 && t.assignee !== filters.assignee) return false;
    if (filters.review === "yes" && !t.requires_human_review) return false;
    if (filters.review === "no" && t.requires_human_review) return false;
    if (filters.suppressed === "yes" && !t.suppressed) return false;
    if (filters.suppressed === "no" && t.suppressed) return false;
    if (filters.campaign && String(t.campaign) !== String(filters.campaign)) return false;
    if (filters.group && String(t.group_id) !== String(filters.group)) return false;
    // An event does not say which stories its threat is in: the rows shown stay, none is added.
    if (filters.story && !tbody.querySelector('tr.threat-row[data-id="' + String(t.id).replace(/[^0-9a-f-]/g, "") + '"]')) return false;
    for (var i = 0; i < PIVOTS.length; i++) {
      if (filters[PIVOTS[i]] && !hasPivot(t, PIVOTS[i], filters[PIVOTS[i]])) return false;
    }
    if (filters.q) {
      var q = filters.q.toLowerCase();
      var inText = (t.title || "").toLowerCase().indexOf(q) !== -1 || (t.executive_summary || "").toLowerCase().indexOf(q) !== -1;
      if (!inText && !PIVOTS.some(function (kind) { return hasPivot(t, kind, filters.q); })) return false;
    }
    return true;
  }

  // Pivots (threats/pivots.py): an exact value; addresses, hashes and domains in any case.
  var PIVOTS = ["ip", "user", "host", "hash", "domain", "rule"];
  var ANY_CASE = { ip: true, hash: true, domain: true };

  function hasPivot(t, kind, wanted) {
    var want = ANY_CASE[kind] ? wanted.trim().toLowerCase() : wanted.trim();
    return ((t.pivots || {})[kind] || []).some(function (value) {
      return (ANY_CASE[kind] ? value.toLowerCase() : value) === want;
    });
  }

  // A matching threat belongs on this page if it is newer than the page's oldest row (or no older
  // page exists): an old threat that starts to match (a note, a status change) is on a later page.
  function belongsHere(t) {
    var shown = tbody.querySelectorAll("tr.threat-row");
    if (!hasOlderPage || !shown.length) return true;
    return new Date(t.received_at).getTime() >= new Date(shown[shown.length - 1].dataset.received).getTime();
  }

  function onEvent(message) {
    var fits = matches(message.threat);
    var create = firstPage && fits && belongsHere(message.threat);
    var row = rows.upsert(tbody, message, { create: create, selectable: selectable, limit: LIVE_ROW_LIMIT });
    if (row && !fits) row.remove();  // it no longer answers the filters: gone, and so is its selection
    updateCount();
  }

  // --- selection and bulk actions ----------------------------------------------------------

  function selectedIds() {
    return Array.prototype.map.call(tbody.querySelectorAll("input.select:checked"), function (box) { return box.value; });
  }

  function updateCount() {
    var count = document.getElementById("bulk-count");
    if (count) count.textContent = selectedIds().length + " selected";
  }

  function value(id) { return document.getElementById(id).value; }

  function bulkBody(action) {
    switch (action) {
      case "acknowledge": return { status: "acknowledged" };
      case "assign-me": return { assignee: config.username };
      case "assign": return { assignee: value("bulk-assignee") || null };
      case "status": return { status: value("bulk-status") };
      case "close": return { status: value("bulk-close-status"), disposition: value("bulk-disposition") || null,
                             reason: value("bulk-reason") };
    }
    return null;
  }

  function runBulk(action) {
    var ids = selectedIds();
    var line = document.getElementById("bulk-status-line");
    if (!ids.length) { line.textContent = "Select threats first."; return; }
    if (action === "acknowledge") {  // only the new ones: acknowledging twice would be a no-op change
      ids = ids.filter(function (id) {
        var row = tbody.querySelector('tr.threat-row[data-id="' + id + '"]');
        return row && row.dataset.status === "new";
      });
      if (!ids.length) { line.textContent = "None of the selected threats is new."; return; }
    }
    line.textContent = "Working…";
    triage.bulk(ids, bulkBody(action)).then(function (res) {
      if (!res.ok) { reveal(line, "Refused: " + triage.describeError(res)); return; }
      var text = "Updated " + res.data.updated.length + ".";
      if (res.data.failed.length) {
        text += " Not changed: " + res.data.failed.map(function (f) { return f.detail; })
          .filter(function (d, i, all) { return all.indexOf(d) === i; }).join("; ");
      }
      reveal(line, text);
    });
  }

  if (selectable) {
    document.getElementById("select-all").addEventListener("change", function (e) {
      tbody.querySelectorAll("input.select").forEach(function (box) { box.checked = e.target.checked; });
      updateCount();
    });
    tbody.addEventListener("change", function (e) { if (e.target.matches("input.select")) updateCount(); });
    document.querySelectorAll("#bulk [data-bulk]").forEach(function (button) {
      button.addEventListener("click", function () { runBulk(button.dataset.bulk); });
    });
  }
  rows.tickSla(tbody, Date.now());
  window.setInterval(function () { rows.tickSla(tbody, Date.now()); }, 1000);
  live.connect({ seq: parseInt(root.dataset.seq, 10) || 0, onEvent: onEvent });
})();

// Dashboard: metric cards, trigger buttons and the live feed. Untrusted text goes in with textContent.
(function () {
  "use strict";
  var root = document.getElementById("dashboard");
  if (!root) return;
  var feed = document.getElementById("feed");
  var FEED_LIMIT = 50;
  var refreshTimer = null;
  var labels = JSON.parse(document.getElementById("labels").textContent);

  function cookie(name) {
    var match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : "";
  }

  function text(id, value) {
    var el = document.getElementById(id);
    if (el) el.textContent = value;
  }

  function showAnalytics(a) {
    text("m-total", a.total_threats);
    text("m-customers", a.customers_affected);
    text("m-processing", a.average_processing_ms + " ms");
    text("m-review", a.requires_review);
    Object.keys(a.open_by_severity).forEach(function (s) { text("m-open-" + s, a.open_by_severity[s]); });
  }

  function refreshAnalytics() {
    fetch(root.dataset.analyticsUrl, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (a) { if (a) showAnalytics(a); });
  }

  // Counters other than the total need a server aggregate; ask at most once every 5 s, not per event.
  function scheduleRefresh() {
    if (refreshTimer) return;
    refreshTimer = window.setTimeout(function () { refreshTimer = null; refreshAnalytics(); }, 5000);
  }

  function cell(row, value, className) {
    var td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = value === null || value === undefined ? "" : value;
    row.appendChild(td);
    return td;
  }

  function render(row, t) {
    row.textContent = "";
    var when = cell(row, "");
    var time = document.createElement("time");
    time.dateTime = t.received_at;
    time.textContent = window.SocLive.localTime(t.received_at);
    when.appendChild(time);
    var sev = cell(row, "");
    var badge = document.createElement("span");
    badge.className = "sev sev-" + (t.severity || "pending").toLowerCase();
    badge.textContent = t.severity || "…";
    sev.appendChild(badge);
    cell(row, labels.types[t.threat_type] || t.threat_type.replace(/_/g, " "));
    cell(row, t.customer);
    var title = cell(row, "");
    var link = document.createElement("a");
    link.href = root.dataset.detailUrl.replace("00000000-0000-0000-0000-000000000000", t.id);
    link.textContent = t.title;
    title.appendChild(link);
    cell(row, t.risk_score);
    var status = cell(row, labels.statuses[t.status] || t.status);
    if (t.requires_human_review) {
      var chip = document.createElement("span");
      chip.className = "chip";
      chip.textContent = "review";
      status.appendChild(document.createTextNode(" "));
      status.appendChild(chip);
    }
    cell(row, t.analysis_status);
  }

  function upsert(t, isNew) {
    var row = feed.querySelector('tr[data-id="' + t.id + '"]');
    if (!row && !isNew) return;
    if (!row) {
      var empty = feed.querySelector("tr.empty");
      if (empty) empty.remove();
      row = document.createElement("tr");
      row.dataset.id = t.id;
      feed.insertBefore(row, feed.firstChild);
      while (feed.children.length > FEED_LIMIT) feed.removeChild(feed.lastChild);
    }
    render(row, t);
  }

  function onEvent(message) {
    if (message.type === "threat.created") {
      var total = document.getElementById("m-total");
      if (total && /^\d+$/.test(total.textContent)) total.textContent = String(parseInt(total.textContent, 10) + 1);
    }
    upsert(message.threat, message.type === "threat.created");
    scheduleRefresh();
  }

  function trigger(button) {
    var body = {};
    if (button.dataset.threatType) body.threat_type = button.dataset.threatType;
    if (button.dataset.scenario) body.scenario = button.dataset.scenario;
    var status = document.getElementById("trigger-status");
    fetch(root.dataset.triggerUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": cookie("csrftoken") },
      body: JSON.stringify(body)
    }).then(function (r) { return r.json().then(function (data) { return { ok: r.ok, data: data }; }); })
      .then(function (res) {
        status.textContent = res.ok ? "Queued: " + res.data.title : "Refused: " + JSON.stringify(res.data.detail);
      })
      .catch(function () { status.textContent = "Could not reach the server."; });
  }

  document.querySelectorAll("button.trigger").forEach(function (button) {
    button.addEventListener("click", function () { trigger(button); });
  });
  refreshAnalytics();
  window.SocLive.connect({ seq: parseInt(root.dataset.seq, 10) || 0, onEvent: onEvent });
})();

// Overview: metric cards, charts, SLA tables, live feed, activity and trigger buttons, all kept
// current from WebSocket events (metrics.js) without re-reading the threat store.
(function () {
  "use strict";
  var root = document.getElementById("dashboard");
  if (!root) return;
  var live = window.SocLive, rows = window.SocRows, reveal = window.SocText.fill, config = live.config;
  var FEED_LIMIT = 25, ACTIVITY_LIMIT = 30, BUFFER_LIMIT = 2000, RECONCILE_DELAY_MS = 2000;
  // Retention (MAX_STORED_THREATS) deletes old threats without events: a visible page takes a fresh
  // snapshot this often so its totals follow. One aggregate query per tab every few minutes.
  var RETENTION_RESYNC_MS = 5 * 60 * 1000;
  var feed = document.getElementById("feed");
  var activity = document.getElementById("activity");
  var metrics = new window.SocMetrics(JSON.parse(document.getElementById("analytics").textContent));
  var recent = [];  // applied events, to re-apply on top of an older snapshot
  var renderPending = false, reconcileTimer = null;

  // --- rendering ---------------------------------------------------------------------------

  function render() {
    renderPending = false;
    var view = metrics.view();
    Object.keys(view.cards).forEach(function (key) {
      var el = root.querySelector('[data-metric="' + key + '"]');
      if (el && el.textContent !== view.cards[key]) el.textContent = view.cards[key];
    });
    var breached = root.querySelector('[data-card="breached_open"]');
    if (breached) breached.classList.toggle("alert", view.cards.breached_open !== "0");
    bars(document.getElementById("chart-type"), view.byType, rows.typeLabel, "bar-type");
    bars(document.getElementById("chart-severity"), view.bySeverity, null, null);
    slaTable(document.getElementById("sla-severity"), view.slaBySeverity, true);
    slaTable(document.getElementById("sla-customer"), view.slaByCustomer, false);
  }

  function scheduleRender() {
    if (renderPending) return;
    renderPending = true;
    window.requestAnimationFrame(render);
  }

  // Horizontal bars drawn as SVG rects (no chart library, no inline style: the CSP forbids it).
  function bars(chart, counts, labelOf, fillClass) {
    if (!chart) return;
    var keys = Object.keys(counts);
    var top = Math.max.apply(null, keys.map(function (k) { return counts[k]; }).concat([1]));
    keys.forEach(function (key) {
      var row = chart.querySelector('.bar-row[data-key="' + CSS.escape(key) + '"]');
      if (!row) row = chart.appendChild(barRow(key, labelOf ? labelOf(key) : key, fillClass));
      row.querySelector("rect").setAttribute("width", String(Math.round(1000 * counts[key] / top) / 10));
      row.querySelector(".bar-count").textContent = String(counts[key]);
    });
  }

  function barRow(key, label, fillClass) {
    var svgNs = "http://www.w3.org/2000/svg";
    var row = document.createElement("div");
    row.className = "bar-row";
    row.dataset.key = key;
    var name = document.createElement("span");
    name.className = "bar-label";
    reveal(name, label);
    var svg = document.createElementNS(svgNs, "svg");
    svg.setAttribute("class", "bar-track");
    svg.setAttribute("viewBox", "0 0 100 10");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("aria-hidden", "true");
    var rect = document.createElementNS(svgNs, "rect");
    rect.setAttribute("class", "bar-fill " + (fillClass || "sev-fill-" + key.toLowerCase()));
    rect.setAttribute("height", "10");
    svg.appendChild(rect);
    var count = document.createElement("span");
    count.className = "bar-count";
    row.appendChild(name);
    row.appendChild(svg);
    row.appendChild(count);
    return row;
  }

  var SLA_FIELDS = ["acknowledged", "mtta", "within_sla", "closed", "mttr", "breached_open"];

  function slaTable(tbody, items, bySeverity) {
    if (!tbody) return;
    if (items.length) { var empty = tbody.querySelector("tr.empty"); if (empty) empty.remove(); }
    items.forEach(function (item, index) {
      var tr = tbody.querySelector('tr[data-key="' + CSS.escape(item.key) + '"]');
      if (!tr) {
        tr = document.createElement("tr");
        tr.dataset.key = item.key;
        var name = document.createElement("td");
        if (bySeverity) {
          var badge = document.createElement("span");
          badge.className = "sev sev-" + item.key.toLowerCase();
          reveal(badge, item.label);
          name.appendChild(badge);
        } else {
          reveal(name, item.label);
        }
        tr.appendChild(name);
        SLA_FIELDS.forEach(function () { var td = document.createElement("td"); td.className = "num"; tr.appendChild(td); });
      }
      if (tbody.children[index] !== tr) tbody.insertBefore(tr, tbody.children[index] || null);
      SLA_FIELDS.forEach(function (field, i) {
        var td = tr.children[i + 1];
        var text = String(item[field]);
        if (td.textContent !== text) td.textContent = text;
      });
      tr.lastElementChild.classList.toggle("breached-count", item.breached_open > 0);
    });
  }

  // --- events ------------------------------------------------------------------------------

  function onEvent(message) {
    recent.push(message);
    if (recent.length > BUFFER_LIMIT) recent.shift();
    var result = metrics.apply(message);
    if (result.reconcile) scheduleReconcile();
    if (result.changed) scheduleRender();
    rows.upsert(feed, message, { create: message.type === "threat.created", limit: FEED_LIMIT });
    addActivity(message);
  }

  function addActivity(message) {
    var empty = activity.querySelector("li.empty");
    if (empty) empty.remove();
    activity.insertBefore(rows.activityItem(message, false), activity.firstChild);
    while (activity.children.length > ACTIVITY_LIMIT) activity.lastElementChild.remove();
  }

  // A fresh snapshot, for what events cannot say (see metrics.js). Exact at its latest_seq:
  // events after it are applied on top, including ones this page had already applied.
  function scheduleReconcile() {
    if (reconcileTimer) return;
    reconcileTimer = window.setTimeout(function () {
      live.api("GET", config.analyticsUrl).then(function (res) {
        reconcileTimer = null;
        if (!res.ok) return;
        var applied = metrics.seq;
        metrics.reset(res.data);
        recent.forEach(function (m) { if (m.seq > res.data.latest_seq && m.seq <= applied) metrics.apply(m); });
        scheduleRender();
      });
    }, RECONCILE_DELAY_MS);
  }

  function tick() {
    var now = Date.now();
    var result = metrics.tick(now);
    if (result.reconcile) scheduleReconcile();
    if (result.changed) scheduleRender();
    rows.tickSla(feed, now);
  }

  // --- trigger buttons ---------------------------------------------------------------------

  function trigger(button) {
    var body = {};
    if (button.dataset.threatType) body.threat_type = button.dataset.threatType;
    if (button.dataset.scenario) body.scenario = button.dataset.scenario;
    var status = document.getElementById("trigger-status");
    button.disabled = true;
    live.api("POST", config.triggerUrl, body).then(function (res) {
      button.disabled = false;
      reveal(status, res.ok ? "Queued: " + res.data.title : "Refused: " + describeError(res.data));
    });
  }

  function describeError(data) {
    return typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
  }

  document.querySelectorAll("button.trigger").forEach(function (button) {
    button.addEventListener("click", function () { trigger(button); });
  });
  render();
  tick();
  window.setInterval(tick, 1000);
  window.setInterval(function () { if (document.visibilityState === "visible") scheduleReconcile(); }, RETENTION_RESYNC_MS);
  live.connect({ seq: parseInt(root.dataset.seq, 10) || 0, onEvent: onEvent });
})();

// The overview's figures, kept current from WebSocket events alone.
//
// The page starts from /api/analytics, exact at `latest_seq`; every later event is applied once
// (events at or below the snapshot's seq are already in it). Status changes carry their "from"
// and "to", so counts, MTTA/MTTR sums and SLA breaches move exactly. Two rare transitions
// cannot be undone from an event (a reopened threat's old resolution time, a threat moved back
// to "new"), and neither can retention deleting old threats (no event at all): those ask for a
// fresh snapshot (dashboard.js, also every few minutes).
(function () {
  "use strict";
  var rows = window.SocRows;
  var config = window.SocLive.config;

  function group(data, name) {
    data = data || {};
    return {
      name: name || data.name || "",
      acknowledged: data.acknowledged || 0,
      ackSum: (data.mtta_seconds || 0) * (data.acknowledged || 0),
      closed: data.closed || 0,
      closeSum: (data.mttr_seconds || 0) * (data.closed || 0),
      within: data.within_sla || 0,
      breached: data.breached_open || 0
    };
  }

  function Metrics(snapshot) { this.reset(snapshot); }

  Metrics.prototype.reset = function (s) {
    this.seq = s.latest_seq;
    this.total = s.total_threats;
    this.review = s.requires_review;
    this.processingSum = s.processing_ms_sum;
    this.analyzedCount = s.analyzed_count;
    this.byType = Object.assign({}, s.by_type);
    this.bySeverity = Object.assign({}, s.by_severity);
    this.byStatus = Object.assign({}, s.by_status);
    this.openBySeverity = Object.assign({}, s.open_by_severity);
    this.customers = new Set(s.customer_slugs);
    this.overall = group(s.sla);
    this.severityGroups = {};
    this.customerGroups = {};
    var self = this;
    config.severities.forEach(function (sev) { self.severityGroups[sev] = group(s.sla.by_severity[sev], sev); });
    Object.keys(s.sla.by_customer).forEach(function (slug) { self.customerGroups[slug] = group(s.sla.by_customer[slug]); });
    this.watch = new Map();
    s.sla.watch.forEach(function (w) { self.watch.set(w[0], { severity: w[1], customer: w[2], due: new Date(w[3]).getTime() }); });
    this.watchUntil = s.sla.watch_until ? new Date(s.sla.watch_until).getTime() : null;
  };

  function bump(map, key, delta) { map[key] = (map[key] || 0) + delta; }

  Metrics.prototype.groupsOf = function (t) {
    if (!this.customerGroups[t.customer_slug]) this.customerGroups[t.customer_slug] = group(null, t.customer);
    var found = [this.overall, this.customerGroups[t.customer_slug]];
    if (t.severity && this.severityGroups[t.severity]) found.push(this.severityGroups[t.severity]);
    return found;
  };

  // Apply one event; returns {changed, reconcile}. Events already in the snapshot are skipped.
  Metrics.prototype.apply = function (message) {
    var result = { changed: false, reconcile: false };
    if (message.seq <= this.seq) return result;
    this.seq = message.seq;
    var t = message.threat;
    var at = new Date(message.at).getTime();
    if (message.type === "threat.created") {
      this.total += 1;
      bump(this.byType, t.threat_type, 1);
      bump(this.byStatus, t.status, 1);
      this.customers.add(t.customer_slug);
      this.groupsOf(t);
      result.changed = true;
    } else if (message.type === "threat.analyzed") {
      this.onAnalyzed(t, at);
      result.changed = true;
    } else if (message.type === "threat.updated" && message.changes && message.changes.status) {
      result.reconcile = this.statusChanged(t, message.changes.status.from, message.changes.status.to, at);
      result.changed = true;
    }
    return result;
  };

  Metrics.prototype.onAnalyzed = function (t, at) {
    var open = !rows.isClosed(t.status);
    if (t.processing_ms !== null && t.processing_ms !== undefined) {
      this.processingSum += t.processing_ms;
      this.analyzedCount += 1;
    }
    if (!t.severity) return;
    bump(this.bySeverity, t.severity, 1);
    if (open) bump(this.openBySeverity, t.severity, 1);
    if (open && t.requires_human_review) this.review += 1;
    if (t.status !== "new") return;  // already acknowledged: no SLA clock to watch
    var due = rows.dueAt(t.received_at, t.severity);
    if (due > at) this.watch.set(t.id, { severity: t.severity, customer: t.customer_slug, due: due });
    else this.groupsOf(t).forEach(function (g) { g.breached += 1; });
  };

  Metrics.prototype.statusChanged = function (t, from, to, at) {
    var wasOpen = !rows.isClosed(from), isOpen = !rows.isClosed(to);
    var groups = this.groupsOf(t);
    var received = new Date(t.received_at).getTime();
    bump(this.byStatus, from, -1);
    bump(this.byStatus, to, 1);
    if (from === "new" && to !== "new") {  // the acknowledgement: services stamp it with this change
      var due = rows.dueAt(t.received_at, t.severity);
      groups.forEach(function (g) {
        g.acknowledged += 1;
        g.ackSum += (at - received) / 1000;
        if (due !== null && at <= due) g.within += 1;
      });
      if (this.watch.has(t.id)) this.watch.delete(t.id);
      else if (due !== null && due <= at) groups.forEach(function (g) { g.breached -= 1; });
    }
    if (wasOpen && !isOpen) {
      groups.forEach(function (g) { g.closed += 1; g.closeSum += (at - received) / 1000; });
      if (t.severity) bump(this.openBySeverity, t.severity, -1);
      if (t.severity && t.requires_human_review) this.review -= 1;
    } else if (!wasOpen && isOpen) {
      if (t.severity) bump(this.openBySeverity, t.severity, 1);
      if (t.severity && t.requires_human_review) this.review += 1;
      return true;  // its old resolution time is still in MTTR
    }
    return to === "new" && from !== "new";  // acknowledged before: the SLA figures need the server
  };

  // Deadlines that passed: returns {changed, reconcile}.
  Metrics.prototype.tick = function (now) {
    var result = { changed: false, reconcile: this.watchUntil !== null && now >= this.watchUntil };
    var self = this;
    this.watch.forEach(function (w, id) {
      if (w.due > now) return;
      self.watch.delete(id);
      var groups = [self.overall, self.severityGroups[w.severity]];
      if (self.customerGroups[w.customer]) groups.push(self.customerGroups[w.customer]);
      groups.forEach(function (g) { if (g) g.breached += 1; });
      result.changed = true;
    });
    return result;
  };

  function mean(sum, count) { return count ? sum / count : null; }
  function percent(part, whole) { return whole ? Math.round(100 * part / whole) + "%" : "–"; }
  function ms(value) { return String(Math.round(value * 10) / 10) + " ms"; }

  function groupRow(key, g) {
    return { key: key, label: g.name || key, acknowledged: g.acknowledged, mtta: rows.duration(mean(g.ackSum, g.acknowledged)),
             within_sla: percent(g.within, g.acknowledged), closed: g.closed,
             mttr: rows.duration(mean(g.closeSum, g.closed)), breached_open: g.breached };
  }

  // What the overview shows, formatted as the server formats it (views._cards, views._sla_row).
  Metrics.prototype.view = function () {
    var self = this;
    var cards = {
      total_threats: String(this.total),
      customers_affected: String(this.customers.size),
      average_processing_ms: ms(mean(this.processingSum, this.analyzedCount) || 0),
      requires_review: String(this.review),
      mtta: rows.duration(mean(this.overall.ackSum, this.overall.acknowledged)),
      mttr: rows.duration(mean(this.overall.closeSum, this.overall.closed)),
      breached_open: String(this.overall.breached),
      within_sla: percent(this.overall.within, this.overall.acknowledged)
    };
    config.severities.forEach(function (sev) { cards["open:" + sev] = String(self.openBySeverity[sev] || 0); });
    var customers = Object.keys(this.customerGroups).map(function (slug) { return groupRow(slug, self.customerGroups[slug]); });
    customers.sort(function (a, b) { return a.label.toLowerCase() < b.label.toLowerCase() ? -1 : a.label.toLowerCase() > b.label.toLowerCase() ? 1 : 0; });
    return {
      cards: cards,
      byType: this.byType,
      bySeverity: this.bySeverity,
      slaBySeverity: config.severities.map(function (sev) { return groupRow(sev, self.severityGroups[sev]); }),
      slaByCustomer: customers
    };
  };

  window.SocMetrics = Metrics;
})();

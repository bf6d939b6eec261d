// Threat detail: triage buttons, close form and notes (through the API); every event about this
// threat re-reads this page and swaps the parts marked data-swap, so another analyst's change, a
// note or the agents' results appear without a reload and without losing a half-typed note.
(function () {
  "use strict";
  var root = document.getElementById("detail");
  if (!root) return;
  var live = window.SocLive, rows = window.SocRows, triage = window.SocTriage, reveal = window.SocText.fill, config = live.config;
  var threatId = root.dataset.threatId;
  var shownSeq = parseInt(root.dataset.seq, 10) || 0;
  var refreshing = false, again = false;

  // --- live updates ------------------------------------------------------------------------

  function onEvent(message) {
    // A grouped member shows its group head's verdict: the head's events re-read this page too.
    if (message.threat && root.dataset.headId && message.threat.id === root.dataset.headId) { refresh(); return; }
    if (!message.threat || message.threat.id !== threatId) return;
    setAnalysisStatus(message.threat.analysis_status);
    syncTriage(message.threat);
    refresh();
  }

  // Agent progress while the analysis runs (ephemeral `threat.progress` messages): each agent's
  // badge says running / done in N ms / failed until threat.analyzed brings the stored results.
  var PROGRESS = { running: "running…", succeeded: "done", failed: "failed" };
  function onProgress(message) {
    if (message.threat !== threatId || !PROGRESS[message.state]) return;
    var card = Array.prototype.find.call(root.querySelectorAll("article.agent"), function (el) {
      return el.dataset.kind === message.agent;
    });
    var badge = card && card.querySelector(".agent-state");
    if (!badge || root.dataset.analysis === "completed") return;
    var text = PROGRESS[message.state];
    if (message.state === "succeeded" && typeof message.duration_ms === "number") {
      text += " in " + Math.round(message.duration_ms) + " ms";
    }
    badge.textContent = text;
    badge.className = "agent-state state-" + message.state;
    card.dataset.progress = message.state;
  }

  function setAnalysisStatus(status) {
    var el = document.getElementById("analysis-status");
    if (!el) return;
    el.textContent = config.analysis[status] || status;
    el.className = "analysis-" + status;
    root.dataset.analysis = status;
  }

  // One refresh at a time; events during a refresh cause one more. Older pages never replace newer.
  function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch(window.location.pathname, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) { if (html) swap(new DOMParser().parseFromString(html, "text/html")); })
      .catch(function () { /* the next event or reconnect tries again */ })
      .then(function () {
        refreshing = false;
        if (again) { again = false; refresh(); }
      });
  }

  // The fetched page is our own server-rendered, escaped HTML; its parts replace ours.
  function swap(page) {
    var fresh = page.getElementById("detail");
    var seq = fresh ? parseInt(fresh.dataset.seq, 10) : 0;
    if (!fresh || seq < shownSeq) return;
    shownSeq = seq;
    root.dataset.seq = String(seq);
    root.dataset.analysis = fresh.dataset.analysis;
    document.querySelectorAll("[data-swap]").forEach(function (part) {
      var replacement = part.id && page.getElementById(part.id);
      if (!replacement) return;
      var node = document.importNode(replacement, true);
      live.localizeTimes(node);
      part.replaceWith(node);
    });
    tickClock();
  }

  // --- SLA clock ---------------------------------------------------------------------------

  function tickClock() {
    var clock = document.getElementById("sla-clock");
    if (!clock) return;
    var due = new Date(clock.dataset.due).getTime();
    var now = Date.now();
    var text, css;
    if (clock.dataset.acknowledged) {
      var ack = new Date(clock.dataset.acknowledged).getTime();
      var tta = rows.duration((ack - new Date(clock.dataset.received).getTime()) / 1000);
      text = ack <= due ? "Met: acknowledged after " + tta : "Breached: acknowledged after " + tta;
      css = ack <= due ? "sla-met" : "sla-late";
    } else if (due > now) {
      text = clockText(due - now) + " left to acknowledge";
      css = due - now < 5 * 60000 ? "sla-running sla-soon" : "sla-running";
    } else {
      text = "Breached " + clockText(now - due) + " ago";
      css = "sla-breached";
    }
    clock.textContent = text;
    clock.className = "sla " + css;
  }

  function clockText(ms) {
    var s = Math.floor(ms / 1000);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    function two(n) { return String(n).padStart(2, "0"); }
    return (h ? h + ":" + two(m) : String(m)) + ":" + two(sec);
  }

  // --- triage ------------------------------------------------------------------------------

  // Each form answers next to itself: the buttons in #triage-message, the close form in
  // #close-message, the note form in #note-message. The panel's data-version is the triage version
  // this page's changes are based on: it moves with our own saves and after a conflict, never with
  // another analyst's event, so their change cannot be overwritten unseen (a 409 says who did what).
  var panel = document.getElementById("triage");

  function result(el, text, kind) {
    if (!el) return;
    reveal(el, text);
    el.className = "form-result " + kind;
  }

  function syncTriage(t) {
    if (!panel) return;
    panel.dataset.status = t.status;
    panel.dataset.assignee = t.assignee || "";
    panel.querySelector('[data-action="acknowledge"]').disabled = t.status !== "new";
    var status = document.getElementById("status-choice");
    if (document.activeElement !== status) status.value = t.status;  // a closed status shows (disabled)
    var assignee = document.getElementById("assignee-choice");
    if (document.activeElement !== assignee) assignee.value = t.assignee || "";
  }

  function send(body, where, done) {
    result(where, "Saving…", "muted");
    return triage.patch(threatId, body, panel.dataset.version).then(function (res) {
      if (res.ok) {
        panel.dataset.version = String(res.data.version);
        syncTriage(res.data);
        result(where, "Saved.", "ok");
        if (done) done();
      } else if (res.status === 409 && res.data.current) {
        panel.dataset.version = String(res.data.current.version);
        syncTriage(res.data.current);
        refresh();  // the facts above show the other analyst's change
        result(where, triage.describeConflict(res.data), "error");
      } else {
        result(where, triage.describeError(res), "error");
      }
    });
  }

  function action(name) {
    var where = document.getElementById("triage-message");
    // Acknowledging a threat nobody has takes it: the server decides (services._taken_on_acknowledgement).
    if (name === "acknowledge") return send({ status: "acknowledged" }, where);
    if (name === "assign-me") return send({ assignee: config.username }, where);
    if (name === "assign") return send({ assignee: document.getElementById("assignee-choice").value || null }, where);
    if (name === "status") return send({ status: document.getElementById("status-choice").value }, where);
  }

  if (panel) {
    panel.querySelectorAll("[data-action]").forEach(function (button) {
      button.addEventListener("click", function () { action(button.dataset.action); });
    });
    var closeForm = document.getElementById("close-form");
    closeForm.addEventListener("submit", function (e) {
      e.preventDefault();
      var form = new FormData(closeForm);
      send({ status: form.get("status"), disposition: form.get("disposition"), reason: form.get("reason") },
           document.getElementById("close-message"), function () { closeForm.reset(); });
    });
  }

  var noteForm = document.getElementById("note-form");
  if (noteForm) {
    noteForm.addEventListener("submit", function (e) {
      e.preventDefault();
      var body = document.getElementById("note-body");
      var where = document.getElementById("note-message");
      if (!body.value.trim()) { result(where, "Not added: the note is empty.", "error"); return; }
      result(where, "Adding…", "muted");
      triage.note(threatId, body.value).then(function (res) {
        if (res.ok) { body.value = ""; result(where, "Note added.", "ok"); }
        else result(where, "Not added: " + triage.describeError(res), "error");
      });
    });
  }

  tickClock();
  window.setInterval(tickClock, 1000);
  live.connect({ seq: shownSeq, onEvent: onEvent, watch: threatId, onProgress: onProgress });
})();

// My queue (docs/queue.md): keyboard navigation as in mail clients — j/k move, a acknowledges,
// c closes with a disposition, Enter opens — through the same triage calls as the other pages
// (triage.js), with their optimistic concurrency: each row keeps the version it was rendered or
// last saved at, and a 409 says who changed what. Live events update or remove rows; the order
// itself is the server's, ranked at one moment ("rank again" reloads it).
(function () {
  "use strict";
  var root = document.getElementById("queue");
  if (!root) return;
  var live = window.SocLive, rows = window.SocRows, triage = window.SocTriage, reveal = window.SocText.fill;
  var tbody = document.getElementById("queue-rows");
  var message = document.getElementById("queue-message");
  var closeForm = document.getElementById("queue-close");
  var canTriage = root.dataset.canTriage === "true";
  var current = null;
  var unranked = 0;

  function all() { return Array.prototype.slice.call(tbody.querySelectorAll("tr.threat-row")); }

  function say(text, kind) {
    reveal(message, text);
    message.className = kind || "muted";
  }

  function select(row) {
    if (current) { current.classList.remove("current"); current.removeAttribute("aria-current"); }
    current = row || null;
    if (!current) return;
    current.classList.add("current");
    current.setAttribute("aria-current", "true");
    current.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    var list = all();
    if (!list.length) return;
    var at = list.indexOf(current);
    select(list[at === -1 ? 0 : Math.min(list.length - 1, Math.max(0, at + step))]);
  }

  function titleOf(row) { return row.querySelector("td.title a").textContent; }

  // A row after a triage answer or an event: status, assignee and SLA data; gone once closed.
  function update(row, t) {
    if (rows.isClosed(t.status)) { remove(row); return; }
    row.dataset.status = t.status;
    if (t.acknowledged_at !== undefined) row.dataset.acknowledged = t.acknowledged_at || "";
    row.querySelector("td.status").textContent = live.config.statuses[t.status] || t.status;
    reveal(row.querySelector("td.assignee"), t.assignee || "–");
    rows.tickSla(tbody, Date.now());
  }

  function remove(row) {
    if (row === current) {
      var list = all(), at = list.indexOf(row);
      select(list[at + 1] || list[at - 1]);
    }
    row.remove();
  }

  function saved(row, res, done) {
    if (res.ok) {
      row.dataset.version = String(res.data.version);
      update(row, res.data);
      if (done) done();
      return true;
    }
    if (res.status === 409 && res.data.current) {
      row.dataset.version = String(res.data.current.version);
      update(row, res.data.current);
      say(triage.describeConflict(res.data), "error");
    } else {
      say(triage.describeError(res), "error");
    }
    return false;
  }

  function acknowledge(row) {
    if (row.dataset.status !== "new") { say("Already acknowledged: " + titleOf(row) + ".", "muted"); return; }
    say("Acknowledging…");
    triage.patch(row.dataset.id, { status: "acknowledged" }, row.dataset.version).then(function (res) {
      saved(row, res, function () { say("Acknowledged: " + titleOf(row) + ".", "ok"); });
    });
  }

  function openClose(row) {
    closeForm.hidden = false;
    closeForm.dataset.id = row.dataset.id;
    reveal(document.getElementById("queue-close-title"), titleOf(row));
    closeForm.elements.disposition.focus();
  }

  function hideClose() {
    closeForm.hidden = true;
    closeForm.reset();
  }

  function submitClose(event) {
    event.preventDefault();
    var row = tbody.querySelector('tr.threat-row[data-id="' + closeForm.dataset.id + '"]');
    if (!row) { hideClose(); return; }
    var title = titleOf(row);
    var body = { status: "closed", disposition: closeForm.elements.disposition.value || null,
                 reason: closeForm.elements.reason.value };
    say("Closing…");
    triage.patch(row.dataset.id, body, row.dataset.version).then(function (res) {
      if (saved(row, res, function () { say("Closed: " + title + ".", "ok"); })) hideClose();
    });
  }

  function typing(target) { return target.closest && target.closest("input, select, textarea, [contenteditable]"); }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape" && closeForm && !closeForm.hidden) { hideClose(); return; }
    if (typing(event.target)) return;
    var handled = true;
    if (event.key === "j") move(1);
    else if (event.key === "k") move(-1);
    else if (event.key === "Enter" && current) window.location.href = current.querySelector("td.title a").href;
    else if (event.key === "a" && current && canTriage) acknowledge(current);
    else if (event.key === "c" && current && canTriage) openClose(current);
    else handled = false;
    if (handled) event.preventDefault();
  }

  function onEvent(message) {
    var row = tbody.querySelector('tr.threat-row[data-id="' + message.threat.id + '"]');
    if (row) {
      update(row, message.threat);
      if (message.type === "threat.sla_warning") row.classList.add("warned");  // the notice names it too
      return;
    }
    if (message.type === "threat.created" || message.type === "threat.analyzed") {
      unranked += 1;  // not placed live: its rank depends on a moment the page did not rank at
      document.getElementById("queue-stale").textContent = " (" + unranked + " new or re-analysed since)";
    }
  }

  document.addEventListener("keydown", onKey);
  if (closeForm) {
    closeForm.addEventListener("submit", submitClose);
    closeForm.querySelector("[data-cancel]").addEventListener("click", hideClose);
  }
  tbody.addEventListener("click", function (event) {
    var row = event.target.closest("tr.threat-row");
    if (row && !event.target.closest("a")) select(row);
  });
  select(all()[0]);
  rows.tickSla(tbody, Date.now());
  window.setInterval(function () { rows.tickSla(tbody, Date.now()); }, 1000);
  live.connect({ seq: parseInt(root.dataset.seq, 10) || 0, onEvent: onEvent });
})();

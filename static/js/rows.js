// Threat rows, SLA cells and event sentences built in the browser. They say exactly what the
// server-rendered ones say (templates/threats/_threat_row.html, views.describe_event): a browser
// test compares a live row with the same row after a reload. Untrusted text goes in as text nodes,
// hidden characters as the same markers the server writes (text.js).
(function () {
  "use strict";
  var config = window.SocLive.config, reveal = window.SocText.fill;

  // 4m 12s, 3h 05m, 2d 04h (views.duration writes the same).
  function duration(seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) return "–";
    var s = Math.max(0, Math.floor(seconds));
    var days = Math.floor(s / 86400), hours = Math.floor((s % 86400) / 3600);
    var minutes = Math.floor((s % 3600) / 60), secs = s % 60;
    function two(n) { return String(n).padStart(2, "0"); }
    if (days) return days + "d " + two(hours) + "h";
    if (hours) return hours + "h " + two(minutes) + "m";
    if (minutes) return minutes + "m " + two(secs) + "s";
    return secs + "s";
  }

  function isClosed(status) { return config.closed.indexOf(status) !== -1; }

  function dueAt(receivedIso, severity) {
    var minutes = config.slaMinutes[severity];
    if (!minutes || !receivedIso) return null;
    return new Date(receivedIso).getTime() + minutes * 60000;
  }

  // The SLA cell: acknowledge within the severity's minutes (views._sla_cell).
  function slaCell(state, now) {
    var due = dueAt(state.received, state.severity);
    if (due === null) return { text: "", css: "" };
    if (state.acknowledged) {
      var ack = new Date(state.acknowledged).getTime();
      var tta = (ack - new Date(state.received).getTime()) / 1000;
      return { text: "TTA " + duration(tta), css: ack > due ? "sla-late" : "sla-met" };
    }
    if (isClosed(state.status)) return { text: "", css: "" };
    if (due > now) return { text: "due in " + duration((due - now) / 1000), css: "sla-running" };
    return { text: "breached " + duration((now - due) / 1000), css: "sla-breached" };
  }

  function rowState(row) {
    return { received: row.dataset.received, severity: row.dataset.severity, status: row.dataset.status,
             acknowledged: row.dataset.acknowledged };
  }

  function tickSla(root, now) {
    (root || document).querySelectorAll("tr.threat-row").forEach(function (row) {
      var cell = row.querySelector("td.sla");
      if (!cell) return;
      var sla = slaCell(rowState(row), now || Date.now());
      if (cell.textContent !== sla.text) cell.textContent = sla.text;
      cell.className = "sla" + (sla.css ? " " + sla.css : "");
      row.classList.toggle("breached", sla.css === "sla-breached");
    });
  }

  function detailUrl(id) { return config.detailUrl.replace("00000000-0000-0000-0000-000000000000", id); }

  function cell(row, value, className) {
    var td = document.createElement("td");
    if (className) td.className = className;
    reveal(td, value === null || value === undefined ? "" : String(value));
    row.appendChild(td);
    return td;
  }

  function typeLabel(type) { return config.types[type] || String(type).replace(/_/g, " "); }

  // Fill `row` (a <tr>) from an event's threat summary; `acknowledged` is the ack time, if known.
  function renderRow(row, t, acknowledged, selectable) {
    var checked = row.querySelector("input.select");
    checked = checked ? checked.checked : false;
    row.textContent = "";
    row.className = "threat-row";
    row.dataset.id = t.id;
    row.dataset.received = t.received_at;
    row.dataset.severity = t.severity || "";
    row.dataset.status = t.status;
    row.dataset.acknowledged = acknowledged || "";
    if (selectable) {
      var pick = cell(row, "", "pick");
      var box = document.createElement("input");
      box.type = "checkbox";
      box.className = "select";
      box.value = t.id;
      box.checked = checked;
      box.setAttribute("aria-label", "Select this threat");
      pick.appendChild(box);
    }
    var when = cell(row, "");
    var time = document.createElement("time");
    time.className = "short";
    time.dateTime = t.received_at;
    window.SocLive.localizeTime(time);
    when.appendChild(time);
    var sev = cell(row, "");
    var badge = document.createElement("span");
    // A grouped member shows its group head's verdict, marked (templates/threats/_threat_row.html).
    var head = !t.severity && t.group_head ? t.group_head : null;
    var severity = head ? head.severity : t.severity;
    badge.className = "sev sev-" + (severity || "pending").toLowerCase();
    badge.textContent = severity || "…";
    sev.appendChild(badge);
    if (head) {
      var mark = document.createElement("span");
      mark.className = "inherited";
      mark.title = "The verdict of its group head, analysed once for the group";
      mark.textContent = "group";
      sev.appendChild(document.createTextNode(" "));
      sev.appendChild(mark);
    }
    cell(row, typeLabel(t.threat_type));
    cell(row, t.customer);
    var title = cell(row, "", "title");
    var link = document.createElement("a");
    link.href = detailUrl(t.id);
    reveal(link, t.title);
    title.appendChild(link);
    cell(row, head && (t.risk_score === null || t.risk_score === undefined) ? head.risk_score : t.risk_score, "num");
    var status = cell(row, config.statuses[t.status] || t.status);
    if (t.requires_human_review) {
      var chip = document.createElement("span");
      chip.className = "chip";
      chip.textContent = "review";
      status.appendChild(document.createTextNode(" "));
      status.appendChild(chip);
    }
    cell(row, t.assignee || "–");
    cell(row, "", "sla");
    cell(row, config.analysis[t.analysis_status] || t.analysis_status);
    var sla = slaCell(rowState(row), Date.now());
    var slaTd = row.querySelector("td.sla");
    slaTd.textContent = sla.text;
    slaTd.className = "sla" + (sla.css ? " " + sla.css : "");
    row.classList.toggle("breached", sla.css === "sla-breached");
    return row;
  }

  // The acknowledgement time an event reveals: the update that moves a threat out of "new".
  function acknowledgedBy(message, previous) {
    if (previous) return previous;
    var change = message.changes && message.changes.status;
    if (message.type === "threat.updated" && change && change.from === "new" && change.to !== "new") return message.at;
    return "";
  }

  // Insert or update the row of `message.threat` in `tbody`; `create` says whether a missing row is added.
  function upsert(tbody, message, options) {
    var t = message.threat;
    var row = tbody.querySelector('tr.threat-row[data-id="' + t.id + '"]');
    if (!row && !options.create) return null;
    var isNew = !row;
    if (isNew) {
      var empty = tbody.querySelector("tr.empty");
      if (empty) empty.remove();
      row = document.createElement("tr");
      placeByTime(tbody, row, t.received_at);
    }
    renderRow(row, t, acknowledgedBy(message, row.dataset.acknowledged), options.selectable);
    if (options.limit) while (tbody.querySelectorAll("tr.threat-row").length > options.limit) tbody.lastElementChild.remove();
    return row;
  }

  function placeByTime(tbody, row, receivedIso) {
    var when = new Date(receivedIso).getTime();
    var rows = tbody.querySelectorAll("tr.threat-row");
    for (var i = 0; i < rows.length; i++) {
      if (new Date(rows[i].dataset.received).getTime() < when) { tbody.insertBefore(row, rows[i]); return; }
    }
    tbody.appendChild(row);
  }

  function label(name, value) {
    if (value === null || value === undefined || value === "") return "–";
    var labels = name === "status" ? config.statuses : name === "disposition" ? config.dispositions : {};
    return String(labels[value] || value);
  }

  // One event as a sentence (views.describe_event says the same).
  function describe(message) {
    var t = message.threat || {};
    switch (message.type) {
      case "threat.created": return "created";
      case "threat.analyzed":
        return "analysed: " + (t.severity || "–") + ", risk " + (t.risk_score === null || t.risk_score === undefined ? "–" : t.risk_score);
      case "threat.analysis_failed": return "analysis failed";
      case "threat.note_added": return "added a note";
      case "threat.sla_warning": return "SLA nearly breached: " + ((message.sla || {}).minutes_left === undefined ? "–" : message.sla.minutes_left) + " min left";
      case "story.flagged":
        var story = message.story || {};
        return "attack story flagged: " + (story.entity_kind || "") + " " + (story.entity || "") + " reached " +
          (story.tactics || []).map(function (tactic) { return tactic.name; }).join(" → ");
      case "threat.updated":
        var changes = message.changes || {};
        var parts = Object.keys(changes).filter(function (name) { return name !== "disposition_reason"; })
          .map(function (name) {
            return name.replace(/_/g, " ") + ": " + label(name, changes[name].from) + " → " + label(name, changes[name].to);
          });
        if (changes.disposition_reason && changes.disposition_reason.to) parts.push("reason: " + changes.disposition_reason.to);
        return parts.join("; ") || "updated";
      default: return message.type;
    }
  }

  // An <li> of the activity feed or of a threat's history (templates/threats/_activity_item.html).
  function activityItem(message, hideTitle) {
    var li = document.createElement("li");
    li.dataset.seq = message.seq;
    li.className = "event-" + message.type.replace(/[^a-z0-9_-]+/g, "");  // as Django's slugify
    var time = document.createElement("time");
    time.dateTime = message.at;
    if (!hideTitle) time.className = "short";  // the overview's feed; a threat's history shows full times
    window.SocLive.localizeTime(time);
    var actor = document.createElement("span");
    actor.className = "actor";
    reveal(actor, message.actor);
    var what = document.createElement("span");
    what.className = "what";
    reveal(what, describe(message));
    [time, actor, what].forEach(function (el) { li.appendChild(el); li.appendChild(document.createTextNode(" ")); });
    li.lastChild.remove();
    if (!hideTitle && message.threat && message.threat.id) {
      var link = document.createElement("a");
      link.href = detailUrl(message.threat.id);
      reveal(link, message.threat.title);
      li.appendChild(document.createTextNode(" "));
      li.appendChild(link);
    }
    return li;
  }

  window.SocRows = { duration: duration, slaCell: slaCell, tickSla: tickSla, renderRow: renderRow, upsert: upsert,
                     describe: describe, activityItem: activityItem, detailUrl: detailUrl, isClosed: isClosed,
                     dueAt: dueAt, typeLabel: typeLabel };
})();

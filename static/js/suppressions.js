// Suppressions (docs/suppressions.md): the "Suppress similar…" form of a closed false positive
// (preview, then save; true positives need a second confirmation) and the suppressions page
// (revoke, live notice of changes). Every value the server or a user wrote goes in as text.
(function () {
  "use strict";
  var live = window.SocLive;
  var LEVELS = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNRATED"];

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function say(node, text, kind) {
    node.textContent = text;
    node.className = "form-result " + (kind || "");
  }

  function describeError(res) {
    var data = res.data || {};
    if (Array.isArray(data.detail)) {
      return data.detail.map(function (e) { return (e.loc || []).slice(-1)[0] + ": " + e.msg; }).join("; ");
    }
    return typeof data.detail === "string" ? data.detail : "The server refused the request.";
  }

  // --- The form on a threat's page --------------------------------------------------------------
  // Delegated from the document: the form may arrive later, when closing the threat as a false
  // positive brings it in with the page's refresh (detail.js swaps #suppress-slot).

  function byId(id) { return document.getElementById(id); }

  function proposal() {
    var form = byId("suppress-form"), prefill = JSON.parse(byId("suppress-proposal").textContent);
    var body = { customer: prefill.customer, rule: prefill.rule, days: parseInt(form.elements.days.value, 10) };
    form.querySelectorAll('input[name="entity"]').forEach(function (box) {
      if (box.checked) body[box.value] = prefill.entities[box.value];
    });
    return body;
  }

  function showPreview(data, days) {
    var rows = byId("suppress-by-severity"), total = byId("suppress-total");
    rows.textContent = "";
    LEVELS.forEach(function (level) {
      var tr = el("tr"), count = el("td", String(data.by_severity[level] || 0), "num");
      count.dataset.severity = level;
      tr.appendChild(el("td", level.toLowerCase()));
      tr.appendChild(count);
      rows.appendChild(tr);
    });
    total.textContent = "It would have hidden " + data.total + " threat" + (data.total === 1 ? "" : "s") +
      " of the last " + days + " days.";
    total.dataset.total = data.total;
    showTruePositives(data.true_positives);
    var admin = byId("suppress-admin");
    admin.hidden = !data.needs_admin;
    admin.textContent = data.needs_admin ? "More than " + data.admin_threshold +
      " threats: only an admin may save this suppression." : "";
    byId("suppress-result").hidden = false;
  }

  function showTruePositives(found) {
    var box = byId("suppress-tp"), list = byId("suppress-tp-list");
    list.textContent = "";
    byId("suppress-confirm").checked = false;
    box.hidden = !found.length;
    byId("suppress-tp-count").textContent = "Warning: it would have hidden " + found.length +
      " threat" + (found.length === 1 ? "" : "s") + " closed as true positive.";
    found.forEach(function (t) {
      var item = el("li"), link = el("a", t.title);
      link.href = live.config.detailUrl.replace("00000000-0000-0000-0000-000000000000", t.id);
      item.appendChild(link);
      item.appendChild(el("span", " · " + (t.severity || "unrated").toLowerCase() +
        (t.closed_at ? " · closed " + live.localTime(t.closed_at) : ""), "muted"));
      list.appendChild(item);
    });
  }

  function preview() {
    var form = byId("suppress-form"), message = byId("suppress-message"), body = proposal();
    say(message, "Replaying it over the stored threats…", "muted");
    live.api("POST", byId("suppress").dataset.previewUrl, body).then(function (res) {
      if (!res.ok) { byId("suppress-result").hidden = true; say(message, describeError(res), "error"); return; }
      form.dataset.shown = JSON.stringify(body);  // what the numbers on screen belong to
      showPreview(res.data, body.days);
      say(message, "", "");
    });
  }

  // Changing what it matches makes the numbers on screen wrong: preview again before saving.
  function changed(target) {
    if (["confirm_true_positives", "reason", "expires"].indexOf(target.name) !== -1) return;
    byId("suppress-result").hidden = true;
    delete byId("suppress-form").dataset.shown;
  }

  function save() {
    var form = byId("suppress-form"), message = byId("suppress-message"), section = byId("suppress");
    var body = proposal(), confirm = byId("suppress-confirm");
    if (form.dataset.shown !== JSON.stringify(body)) { say(message, "Preview it first.", "error"); return; }
    if (!byId("suppress-tp").hidden && !confirm.checked) {
      say(message, "Confirm the true positives it would hide first.", "error");
      return;
    }
    var expires = form.elements.expires.value;
    Object.assign(body, { reason: form.elements.reason.value, confirm_true_positives: confirm.checked,
                          from_threat: section.dataset.threatId,
                          expires_at: expires ? new Date(expires + "T23:59:59").toISOString() : null });
    live.api("POST", section.dataset.saveUrl, body).then(function (res) {
      if (!res.ok) { say(message, describeError(res), "error"); return; }
      say(message, "Saved suppression #" + res.data.id + " (expires " + live.localTime(res.data.expires_at) + "). ", "ok");
      var link = el("a", "All suppressions");
      link.href = section.dataset.listUrl;
      message.appendChild(link);
      byId("suppress-save").disabled = true;
    });
  }

  function proposeForm() {
    document.addEventListener("click", function (event) {
      if (event.target.id === "suppress-preview") preview();
    });
    document.addEventListener("change", function (event) {
      if (event.target.closest && event.target.closest("#suppress-form")) changed(event.target);
    });
    document.addEventListener("submit", function (event) {
      if (event.target.id !== "suppress-form") return;
      event.preventDefault();
      save();
    });
  }

  // --- The suppressions page ---------------------------------------------------------------------

  function listPage(root) {
    var message = document.getElementById("suppressions-message");
    root.addEventListener("click", function (event) {
      var button = event.target.closest("[data-revoke]");
      if (!button) return;
      button.disabled = true;
      live.api("DELETE", "/api/suppressions/" + encodeURIComponent(button.dataset.revoke), {}).then(function (res) {
        if (!res.ok) { button.disabled = false; say(message, describeError(res), "error"); return; }
        var row = button.closest("tr");
        row.dataset.state = res.data.state;
        row.querySelector(".state").textContent = res.data.state + (res.data.revoked_by ? " by " + res.data.revoked_by : "");
        button.remove();
        say(message, "Revoked suppression #" + res.data.id + ": its alerts are analysed again from now on.", "ok");
      });
    });
    live.connect({ seq: parseInt(root.dataset.seq, 10) || 0, onEvent: function () {}, onSuppression: function (m) {
      var s = m.suppression || {};
      say(message, "Suppression #" + s.id + " (" + s.rule + ", " + s.customer + ") was " +
        m.type.split(".")[1] + (s.author && m.type === "suppression.created" ? " by " + s.author : "") +
        ". Reload to see the list as it is now.", "muted");
    } });
  }

  if (document.getElementById("suppress-slot")) proposeForm();
  var root = document.getElementById("suppressions");
  if (root) listPage(root);
})();

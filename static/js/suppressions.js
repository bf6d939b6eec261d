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

  function proposeForm(section) {
    var form = document.getElementById("suppress-form");
    var message = document.getElementById("suppress-message");
    var result = document.getElementById("suppress-result");
    var confirm = document.getElementById("suppress-confirm");
    var shown = null;  // the proposal the numbers on screen belong to (JSON)
    var prefill = JSON.parse(document.getElementById("suppress-proposal").textContent);

    function proposal() {
      var body = { customer: prefill.customer, rule: prefill.rule, days: parseInt(form.elements.days.value, 10) };
      form.querySelectorAll('input[name="entity"]').forEach(function (box) {
        if (box.checked) body[box.value] = prefill.entities[box.value];
      });
      return body;
    }

    function showPreview(data) {
      var rows = document.getElementById("suppress-by-severity");
      rows.textContent = "";
      LEVELS.forEach(function (level) {
        var tr = el("tr");
        tr.appendChild(el("td", level.toLowerCase()));
        var count = el("td", String(data.by_severity[level] || 0), "num");
        count.dataset.severity = level;
        tr.appendChild(count);
        rows.appendChild(tr);
      });
      document.getElementById("suppress-total").textContent = "It would have hidden " + data.total +
        " threat" + (data.total === 1 ? "" : "s") + " of the last " + form.elements.days.value + " days.";
      document.getElementById("suppress-total").dataset.total = data.total;
      showTruePositives(data.true_positives);
      var admin = document.getElementById("suppress-admin");
      admin.hidden = !data.needs_admin;
      admin.textContent = data.needs_admin ? "More than " + data.admin_threshold +
        " threats: only an admin may save this suppression." : "";
      result.hidden = false;
    }

    function showTruePositives(found) {
      var box = document.getElementById("suppress-tp"), list = document.getElementById("suppress-tp-list");
      list.textContent = "";
      confirm.checked = false;
      box.hidden = !found.length;
      document.getElementById("suppress-tp-count").textContent = "Warning: it would have hidden " + found.length +
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

    document.getElementById("suppress-preview").addEventListener("click", function () {
      var body = proposal();
      say(message, "Replaying it over the stored threats…", "muted");
      live.api("POST", section.dataset.previewUrl, body).then(function (res) {
        if (!res.ok) { result.hidden = true; say(message, describeError(res), "error"); return; }
        shown = JSON.stringify(body);
        showPreview(res.data);
        say(message, "", "");
      });
    });

    // Changing what it matches makes the numbers on screen wrong: preview again before saving.
    form.addEventListener("change", function (event) {
      if (event.target === confirm || event.target.name === "reason" || event.target.name === "expires") return;
      result.hidden = true;
      shown = null;
    });

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var body = proposal();
      if (shown !== JSON.stringify(body)) { say(message, "Preview it first.", "error"); return; }
      var tps = !document.getElementById("suppress-tp").hidden;
      if (tps && !confirm.checked) { say(message, "Confirm the true positives it would hide first.", "error"); return; }
      var expires = form.elements.expires.value;
      Object.assign(body, { reason: form.elements.reason.value, confirm_true_positives: confirm.checked,
                            from_threat: section.dataset.threatId,
                            expires_at: expires ? new Date(expires + "T23:59:59").toISOString() : null });
      live.api("POST", section.dataset.saveUrl, body).then(function (res) {
        if (!res.ok) { say(message, describeError(res), "error"); return; }
        message.textContent = "";
        message.className = "form-result ok";
        message.appendChild(document.createTextNode("Saved suppression #" + res.data.id + " (expires " +
          live.localTime(res.data.expires_at) + "). "));
        var link = el("a", "All suppressions");
        link.href = section.dataset.listUrl;
        message.appendChild(link);
        document.getElementById("suppress-save").disabled = true;
      });
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

  var section = document.getElementById("suppress");
  if (section) proposeForm(section);
  var root = document.getElementById("suppressions");
  if (root) listPage(root);
})();

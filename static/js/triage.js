// Triage calls shared by the threat list (bulk) and the detail page. Every change goes through the
// JSON API, hence through services (an event each); the pages learn the result from that event.
(function () {
  "use strict";
  var live = window.SocLive, config = live.config;

  function threatUrl(id) { return config.apiThreats + "/" + encodeURIComponent(id); }

  // With `version` (the ETag the page was rendered with) the server refuses the change with 409
  // when another analyst changed the threat since: no silent overwrite (docs/api.md).
  function patch(id, body, version) {
    return live.api("PATCH", threatUrl(id), body, version ? { "If-Match": '"' + version + '"' } : undefined);
  }

  function note(id, body) { return live.api("POST", threatUrl(id) + "/notes", { body: body }); }

  function bulk(ids, body) { return live.api("POST", config.bulkUrl, Object.assign({ ids: ids }, body)); }

  // What a 422 names by its field, in the words of the form (never the raw field name).
  var LABELS = { body: "Note", reason: "Reason", status: "Status", disposition: "Disposition",
                 assignee: "Assignee", ids: "Selection", version: "Version" };

  // A readable sentence from an API error: the service's own words ({detail, field}: the detail
  // already says what is wrong), or a 422 list with each field's label.
  function describeError(res) {
    var data = res.data || {};
    if (Array.isArray(data.detail)) {
      return data.detail.map(function (e) {
        var name = (e.loc || []).slice(-1)[0];
        return (LABELS[name] ? LABELS[name] + ": " : "") + e.msg;
      }).join("; ");
    }
    return typeof data.detail === "string" ? data.detail : "The server refused the request.";
  }

  // A 409's answer in words: who changed what since the version this page sent.
  function describeConflict(data) {
    var changes = (data.changes || []).map(function (c) {
      return c.actor + " changed it (" + window.SocRows.describe({ type: "threat.updated", changes: c.changes }) + ")";
    });
    var who = changes.length ? changes.join("; then ") : "Another analyst changed it";
    return "Not saved: " + who + " after you opened this page. Their change is shown above; " +
      "send yours again if it still applies.";
  }

  window.SocTriage = { patch: patch, note: note, bulk: bulk, describeError: describeError,
                       describeConflict: describeConflict };
})();

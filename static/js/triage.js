// Triage calls shared by the threat list (bulk) and the detail page. Every change goes through the
// JSON API, hence through services (an event each); the pages learn the result from that event.
(function () {
  "use strict";
  var live = window.SocLive, config = live.config;

  function threatUrl(id) { return config.apiThreats + "/" + encodeURIComponent(id); }

  function patch(id, body) { return live.api("PATCH", threatUrl(id), body); }

  function note(id, body) { return live.api("POST", threatUrl(id) + "/notes", { body: body }); }

  function bulk(ids, body) { return live.api("POST", config.bulkUrl, Object.assign({ ids: ids }, body)); }

  // A readable sentence from an API error ({detail, field} or a 422 list).
  function describeError(res) {
    var data = res.data || {};
    if (Array.isArray(data.detail)) {
      return data.detail.map(function (e) { return (e.loc || []).slice(-1).join("") + ": " + e.msg; }).join("; ");
    }
    var text = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || "Request failed.");
    return data.field ? data.field + ": " + text : text;
  }

  window.SocTriage = { patch: patch, note: note, bulk: bulk, describeError: describeError };
})();

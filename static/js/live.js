// The live connection to /ws (protocol: README "WebSocket protocol").
// Reconnects with exponential backoff and full jitter, resuming from the last seq it saw, so the
// page receives every event once and in order across disconnects.
(function () {
  "use strict";

  function setBadge(state) {
    var badge = document.getElementById("connection");
    if (!badge) return;
    badge.textContent = state;
    badge.dataset.state = state;
    badge.className = "badge badge-" + state;
  }

  function connect(options) {
    var lastSeq = options.seq || 0;
    var attempt = 0;
    var socket = null;

    function url() {
      var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      return scheme + "//" + window.location.host + "/ws?after=" + lastSeq;
    }

    function open() {
      setBadge(attempt === 0 ? "connecting" : "reconnecting");
      socket = new WebSocket(url());
      socket.onopen = function () { attempt = 0; setBadge("connected"); };
      socket.onmessage = function (frame) {
        var message;
        try { message = JSON.parse(frame.data); } catch (e) { return; }
        if (message.type === "resync") { window.location.reload(); return; }
        if (typeof message.seq !== "number" || !message.threat) return;  // hello, resumed, pong
        if (message.seq <= lastSeq) return;
        lastSeq = message.seq;
        options.onEvent(message);
      };
      socket.onclose = function () {
        setBadge("reconnecting");
        attempt += 1;
        var cap = Math.min(30000, 500 * Math.pow(2, attempt));
        window.setTimeout(open, Math.random() * cap);
      };
    }

    window.addEventListener("offline", function () { setBadge("offline"); });
    open();
    return { lastSeq: function () { return lastSeq; } };
  }

  // Times are stored and rendered in UTC; show them in the analyst's zone, naming the zone.
  function localTime(iso, precise) {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    var options = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" };
    if (precise) options.fractionalSecondDigits = 3;
    return new Date(iso).toLocaleString(undefined, options) + " " + zone;
  }

  function localizeTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach(function (t) {
      if (t.dateTime) t.textContent = localTime(t.dateTime, t.classList.contains("precise"));
    });
  }

  localizeTimes(document);
  window.SocLive = { connect: connect, localTime: localTime };
})();

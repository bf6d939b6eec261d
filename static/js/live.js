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

  window.SocLive = { connect: connect };
})();

// The live connection to /ws (protocol: docs/websocket.md), local times, and API calls.
// Reconnects with exponential backoff and full jitter, resuming from the last seq it saw
// (/ws?after=N), so a page receives every event once and in order across disconnects.
(function () {
  "use strict";
  var HEARTBEAT_MS = 25000;      // a ping makes the server re-join the group and send anything missed
  var PONG_TIMEOUT_MS = 10000;   // no pong in time: the socket is dead even if TCP has not noticed
  var MAX_BACKOFF_MS = 10000;
  var OFFLINE_AFTER_MS = 30000;  // "reconnecting" turns into "offline" after this long without a socket
  var TOO_MANY_SOCKETS_ATTEMPT = 5;  // backoff as after 5 failures: up to MAX_BACKOFF_MS

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
    var heartbeat = null;
    var pongTimer = null;
    var retryTimer = null;
    var downSince = null;

    function url() {
      var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      return scheme + "//" + window.location.host + "/ws?after=" + lastSeq;
    }

    function offline() {
      return !navigator.onLine || (downSince !== null && Date.now() - downSince > OFFLINE_AFTER_MS);
    }

    function open() {
      retryTimer = null;
      setBadge(attempt === 0 ? "connecting" : offline() ? "offline" : "reconnecting");
      socket = new WebSocket(url());
      socket.onopen = function () {
        attempt = 0;
        downSince = null;
        setBadge("connected");
        startHeartbeat(socket);
        // Agent progress of one threat (the detail page): asked again on every (re)connect.
        if (options.watch) socket.send(JSON.stringify({ type: "watch", threat: options.watch }));
      };
      socket.onmessage = function (frame) {
        var message;
        try { message = JSON.parse(frame.data); } catch (e) { return; }
        if (message.type === "pong") { window.clearTimeout(pongTimer); return; }
        if (message.type === "resync") { (options.onResync || reload)(); return; }
        if (message.type === "threat.progress") { if (options.onProgress) options.onProgress(message); return; }
        // Ephemeral, like progress: a suppression was created, revoked or expired (docs/suppressions.md).
        if (/^suppression\./.test(message.type)) { if (options.onSuppression) options.onSuppression(message); return; }
        if (typeof message.seq !== "number" || !message.threat) return;  // hello, resumed
        if (message.seq <= lastSeq) return;
        lastSeq = message.seq;
        if (message.type === "threat.sla_warning") showSlaNotice(message);
        if (message.type === "story.flagged") showStoryNotice(message);
        options.onEvent(message);
      };
      socket.onclose = function (event) {
        // Close codes (docs/security.md). 4001: the session ended (logout, expiry, password change,
        // deactivation, role or scope change): reloading leads to the login page instead of retrying
        // a socket the server will keep refusing. 4013: the server's channel layer was unavailable,
        // retried like any drop. 4029: this user has too many sockets open (other tabs): retried at
        // the slowest pace, so closing a tab lets this one in.
        if (event && event.code === 4001) { window.location.reload(); return; }
        window.clearInterval(heartbeat);
        window.clearTimeout(pongTimer);
        if (downSince === null) downSince = Date.now();
        setBadge(offline() ? "offline" : "reconnecting");
        attempt += 1;
        if (event && event.code === 4029) attempt = Math.max(attempt, TOO_MANY_SOCKETS_ATTEMPT);
        var cap = Math.min(MAX_BACKOFF_MS, 500 * Math.pow(2, attempt));
        retryTimer = window.setTimeout(open, Math.random() * cap);
      };
    }

    function startHeartbeat(current) {
      window.clearInterval(heartbeat);
      heartbeat = window.setInterval(function () {
        if (current.readyState !== WebSocket.OPEN) return;
        current.send(JSON.stringify({ type: "ping" }));
        window.clearTimeout(pongTimer);
        pongTimer = window.setTimeout(function () { current.close(); }, PONG_TIMEOUT_MS);
      }, HEARTBEAT_MS);
    }

    window.addEventListener("offline", function () { setBadge("offline"); });
    window.addEventListener("online", function () {
      if (socket && socket.readyState === WebSocket.OPEN) {
        setBadge("connected");
        socket.send(JSON.stringify({ type: "ping" }));  // the server answers with anything the push missed
      } else if (retryTimer !== null) {
        window.clearTimeout(retryTimer);
        open();
      }
    });
    open();
    return { lastSeq: function () { return lastSeq; } };
  }

  function reload() { window.location.reload(); }

  // A threat about to breach its SLA (threat.sla_warning, docs/queue.md): a notice in the corner of
  // every page, never in the way (no focus taken, no dialog), until dismissed; the newest few only.
  var MAX_NOTICES = 4;

  function noticeArea() {
    var area = document.getElementById("notices");
    if (!area) {
      area = document.createElement("div");
      area.id = "notices";
      area.className = "notices";
      area.setAttribute("role", "status");
      area.setAttribute("aria-live", "polite");
      document.body.appendChild(area);
    }
    return area;
  }

  function showSlaNotice(message) {
    var t = message.threat, sla = message.sla || {}, area = noticeArea();
    var notice = document.createElement("div");
    notice.className = "notice notice-sla";
    notice.dataset.id = t.id;
    var text = document.createElement("span");
    var fill = window.SocText ? window.SocText.fill : function (el, value) { el.textContent = value; };
    fill(text, "SLA nearly breached: " + (t.severity || "") + " " + t.title + " (" + t.customer + "), " +
         sla.minutes_left + " min left of " + sla.minutes + ". ");
    var open = document.createElement("a");
    open.href = (window.SocLive.config.detailUrl || "").replace("00000000-0000-0000-0000-000000000000",
                                                                encodeURIComponent(t.id));
    open.textContent = "Open";
    var dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "link dismiss";
    dismiss.setAttribute("aria-label", "Dismiss this notice");
    dismiss.textContent = "×";
    dismiss.addEventListener("click", function () { notice.remove(); });
    [text, open, dismiss].forEach(function (el) { notice.appendChild(el); });
    area.insertBefore(notice, area.firstChild);
    while (area.children.length > MAX_NOTICES) area.lastElementChild.remove();
  }

  // An entity's attack story reached a later ATT&CK stage (story.flagged, docs/stories.md): a
  // notice like the SLA one, linking the story page (its URL comes with the event, built by the server).
  function showStoryNotice(message) {
    var story = message.story || {}, area = noticeArea();
    var notice = document.createElement("div");
    notice.className = "notice notice-story";
    notice.dataset.story = story.id;
    var text = document.createElement("span");
    var fill = window.SocText ? window.SocText.fill : function (el, value) { el.textContent = value; };
    var path = (story.tactics || []).map(function (t) { return t.name; }).join(" → ");
    fill(text, "Attack story flagged: " + (story.severity || "") + " " + story.entity_kind + " " + story.entity +
         " (" + message.threat.customer + ") reached " + path + ". ");
    var open = document.createElement("a");
    open.href = /^\/stories\/\d+\/$/.test(story.url || "") ? story.url : "#";
    open.textContent = "Open story";
    var dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "link dismiss";
    dismiss.setAttribute("aria-label", "Dismiss this notice");
    dismiss.textContent = "×";
    dismiss.addEventListener("click", function () { notice.remove(); });
    [text, open, dismiss].forEach(function (el) { notice.appendChild(el); });
    area.insertBefore(notice, area.firstChild);
    while (area.children.length > MAX_NOTICES) area.lastElementChild.remove();
  }

  // Times are stored and rendered in UTC; show them in the analyst's zone, naming the zone.
  var ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

  // style "precise" adds milliseconds; "short" (table cells) drops the year and the zone, which the
  // top bar names, and keeps the full time in the tooltip.
  // One format on every page, the server's order: 2026-11-20 13:02:34 Europe/Berlin (short: the
  // date without the year), in the analyst's zone, whatever the browser's locale.
  var PARTS = new Intl.DateTimeFormat("en-CA", { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
                                                  minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  function localTime(iso, style) {
    var date = new Date(iso);
    if (isNaN(date.getTime())) return iso;
    var p = {};
    PARTS.formatToParts(date).forEach(function (part) { p[part.type] = part.value; });
    var clock = p.hour + ":" + p.minute + ":" + p.second;
    if (style === "precise") clock += "." + String(date.getMilliseconds()).padStart(3, "0");
    if (style === "short") return p.month + "-" + p.day + " " + clock;
    return p.year + "-" + p.month + "-" + p.day + " " + clock + " " + ZONE;
  }

  function localizeTime(t) {
    var style = t.classList.contains("precise") ? "precise" : t.classList.contains("short") ? "short" : "";
    t.textContent = localTime(t.dateTime, style);
    if (style === "short") t.title = localTime(t.dateTime);
  }

  function localizeTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach(function (t) {
      if (t.dateTime) localizeTime(t);
    });
  }

  function showZone() {
    var el = document.getElementById("zone");
    if (!el) return;
    var minutes = -new Date().getTimezoneOffset();
    var sign = minutes < 0 ? "-" : "+";
    var abs = Math.abs(minutes);
    var offset = "UTC" + sign + String(Math.floor(abs / 60)).padStart(2, "0") + ":" + String(abs % 60).padStart(2, "0");
    el.textContent = "Times: " + ZONE + " (" + offset + ")";
  }

  function cookie(name) {
    var match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : "";
  }

  // JSON API call with the session and the CSRF token; resolves to {ok, status, data}.
  function api(method, url, body, headers) {
    var init = { method: method, credentials: "same-origin",
                 headers: Object.assign({ "Accept": "application/json" }, headers || {}) };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRFToken"] = cookie("csrftoken");
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { ok: response.ok, status: response.status, data: data };
      });
    }, function () {
      return { ok: false, status: 0, data: { detail: "Could not reach the server." } };
    });
  }

  function config() {
    var el = document.getElementById("page-config");
    return el ? JSON.parse(el.textContent) : {};
  }

  localizeTimes(document);
  showZone();
  window.SocLive = { connect: connect, localTime: localTime, localizeTime: localizeTime, localizeTimes: localizeTimes, api: api,
                     config: config(), zone: ZONE };
})();

// Threat detail page: reload when an event about this threat arrives (analysis finished, triage).
(function () {
  "use strict";
  var root = document.getElementById("detail");
  if (!root) return;
  var threatId = root.dataset.threatId;
  window.SocLive.connect({
    seq: parseInt(root.dataset.seq, 10) || 0,
    onEvent: function (message) {
      if (message.threat && message.threat.id === threatId) window.location.reload();
    }
  });
})();

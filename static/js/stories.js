// The story pages (docs/stories.md): live like every page (the connection badge, notices), and a
// story page says when it changed since it was drawn — one of its alerts was triaged or re-analysed,
// or it was flagged — with a link to draw it again; the page itself is the server's rendering.
(function () {
  "use strict";
  var root = document.getElementById("story") || document.getElementById("stories");
  if (!root || !window.SocLive) return;
  var storyId = root.dataset.storyId;
  var shown = Array.prototype.map.call(root.querySelectorAll("li.moment"), function (li) { return li.dataset.threatId; });

  function concernsThisStory(message) {
    if (!storyId) return false;
    if (message.type === "story.flagged") return String((message.story || {}).id) === storyId;
    return shown.indexOf(message.threat.id) !== -1;
  }

  function onEvent(message) {
    var stale = document.getElementById("story-stale");
    if (stale && concernsThisStory(message)) stale.hidden = false;
  }

  window.SocLive.connect({ seq: parseInt(root.dataset.seq, 10) || 0, onEvent: onEvent });
})();

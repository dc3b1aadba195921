// Berth's web page: a page whose body has data-live="N" (tasks are running) fetches itself
// every N seconds and swaps in its new <main>, until the new page is no longer live.
(function () {
  "use strict";
  var live = Number(document.body.getAttribute("data-live"));
  if (!live) return;
  var every = Math.max(1, live) * 1000;
  function poll() {
    fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) {
        if (!r.ok) throw new Error(String(r.status));
        return r.text();
      })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.querySelector("main");
        if (fresh) document.querySelector("main").replaceWith(document.adoptNode(fresh));
        if (doc.body.getAttribute("data-live")) setTimeout(poll, every);
        else document.body.removeAttribute("data-live");
      })
      .catch(function () {
        setTimeout(poll, every * 3);
      });
  }
  setTimeout(poll, every);
})();

// The composer (/run): show the start time or the cron field only for the "when" chosen.
// Everything else (type fields, the live preview) is htmx.
(function () {
  "use strict";

  function showWhen(form) {
    var chosen = form.querySelector("input[name=when]:checked");
    var value = chosen ? chosen.value : "now";
    form.querySelectorAll("[data-when]").forEach(function (part) {
      part.classList.toggle("d-none", part.getAttribute("data-when") !== value);
    });
  }

  function start() {
    var form = document.getElementById("composer");
    if (!form) {
      return;
    }
    showWhen(form);
    form.addEventListener("change", function (event) {
      if (event.target && event.target.name === "when") {
        showWhen(form);
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

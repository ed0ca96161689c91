/* Playback of a terminal recording (asciinema-player); transcript matches seek the player. */
(function () {
  "use strict";
  const box = document.getElementById("player");
  if (!box || typeof AsciinemaPlayer === "undefined") return;
  const player = AsciinemaPlayer.create(box.dataset.src, box, {
    fit: "width",
    idleTimeLimit: 2,
    terminalFontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace",
  });
  document.querySelectorAll("[data-seek]").forEach(function (button) {
    button.addEventListener("click", function () {
      // Just after the event that wrote the line: the player shows events before its position.
      const at = parseFloat(button.dataset.seek) + 0.05;
      Promise.resolve(player.seek(at)).then(function () { player.pause(); });
      box.scrollIntoView({ behavior: "smooth", block: "nearest" });
    });
  });
  window.stewardPlayer = player; // for the end-to-end tests
})();

/* A device's terminal (and the read-only watch page): xterm.js over the server's WebSocket.
   Frames are JSON: see src/steward/server/terminal/sockets.py. Strings come translated in
   the element's data-labels. */
(function () {
  "use strict";
  const box = document.getElementById("terminal");
  if (!box || typeof Terminal === "undefined") return;
  const labels = JSON.parse(box.dataset.labels || "{}");
  const readOnly = box.dataset.readOnly === "true";
  const statusLine = document.getElementById("terminal-status");
  const watchersLine = document.getElementById("terminal-watchers");
  const sessionLine = document.getElementById("terminal-session");
  const closeButton = document.getElementById("terminal-close");
  const INPUT_CHUNK = 8192; // characters per input frame (a long paste is split)

  const term = new Terminal({
    cursorBlink: !readOnly,
    disableStdin: readOnly,
    scrollback: 5000,
    fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace",
    fontSize: 14,
  });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.loadAddon(new WebLinksAddon.WebLinksAddon());
  term.open(box);
  fit.fit();

  function say(text, kind) {
    statusLine.textContent = text;
    statusLine.className = "fw-semibold" + (kind ? " text-" + kind : "");
  }

  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  let url = scheme + "//" + location.host + box.dataset.socket;
  if (!readOnly) url += "?cols=" + term.cols + "&rows=" + term.rows;
  const socket = new WebSocket(url);
  let ended = false;
  let lastError = "";

  function send(frame) {
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  }

  socket.addEventListener("open", function () { say(labels.opening || ""); });
  socket.addEventListener("message", function (event) {
    let frame;
    try { frame = JSON.parse(event.data); } catch (e) { return; }
    switch (frame.type) {
      case "session":
        sessionLine.textContent = frame.session_id;
        break;
      case "opened":
        say(readOnly ? labels.watching : labels.connected, "success");
        if (readOnly && frame.cols && frame.rows) term.resize(frame.cols, frame.rows);
        if (!readOnly) term.focus();
        break;
      case "output":
        term.write(frame.data);
        break;
      case "resize":
        if (readOnly) term.resize(frame.cols, frame.rows);
        break;
      case "watchers":
        watchersLine.textContent = frame.watchers.length ? frame.watchers.join(", ") : labels.nobody;
        watchersLine.dataset.count = String(frame.watchers.length);
        break;
      case "notice":
        say(labels[frame.code] || frame.code, "warning");
        break;
      case "error":
        lastError = frame.code;
        if (frame.code === "read_only") say(labels.read_only, "warning");
        else say(labels[frame.code] || frame.message || frame.code, "danger");
        break;
      case "exit": {
        ended = true;
        const key = frame.reason === "recording_failed" ? "recording_failed_close" : frame.reason;
        say((labels[key] || labels.ended) + (frame.error ? " (" + frame.error + ")" : ""),
            frame.reason === "exited" || frame.reason === "user" ? "secondary" : "danger");
        break;
      }
    }
  });
  socket.addEventListener("close", function (event) {
    if (closeButton) closeButton.disabled = true;
    term.options.disableStdin = true;
    if (ended) return;
    const reason = event.reason || lastError;
    say(labels[reason] || labels.disconnected, "danger");
  });

  if (!readOnly) {
    term.onData(function (data) {
      for (let i = 0; i < data.length; i += INPUT_CHUNK) {
        send({ type: "input", data: data.slice(i, i + INPUT_CHUNK) });
      }
    });
    term.onResize(function (size) { send({ type: "resize", cols: size.cols, rows: size.rows }); });
    if (closeButton) closeButton.addEventListener("click", function () { send({ type: "close" }); });
  }
  let pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(function () { if (!readOnly) fit.fit(); }, 100);
  });
  window.stewardTerminal = term; // for the end-to-end tests
})();

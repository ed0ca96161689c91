// Live command output: a running command's panel follows GET /api/v1/commands/{id}/stream
// (Server-Sent Events) instead of re-rendering every second. Agent output is untrusted: it is
// only ever inserted as text (createTextNode / textContent), never as HTML.
(function () {
  "use strict";
  if (window.stewardCommandOutput) return; // loaded again by a re-rendered panel
  window.stewardCommandOutput = true;
  if (typeof EventSource === "undefined") return; // the panel keeps polling

  var STREAMS = ["stdout", "stderr"];
  var MAX_RETRIES = 3;
  var sources = new WeakMap(); // panel -> its EventSource

  function stuckToBottom(pre) {
    return pre.scrollHeight - pre.scrollTop - pre.clientHeight < 8;
  }

  function follow(panel) {
    if (!panel.dataset.streamUrl || sources.has(panel) || !panel.isConnected) return;
    var outputs = {};
    var lengths = {};
    STREAMS.forEach(function (name) {
      outputs[name] = panel.querySelector('[data-output="' + name + '"]');
      lengths[name] = 0;
    });
    var source = new EventSource(panel.dataset.streamUrl, { withCredentials: true });
    sources.set(panel, source);
    panel.dataset.streaming = "1"; // the htmx polling of this panel stands down (see below)

    function stop() {
      source.close();
      sources.delete(panel);
      delete panel.dataset.streaming;
    }

    function reload() {
      stop();
      if (panel.isConnected && window.htmx) {
        window.htmx.ajax("GET", panel.dataset.panelUrl, { target: panel, swap: "outerHTML" });
      }
    }

    function markTruncated(name, truncated) {
      var badge = panel.querySelector('[data-truncated="' + name + '"]');
      if (badge && truncated) badge.classList.remove("d-none");
    }

    function show(name, text) {
      var pre = outputs[name];
      if (!pre) return;
      pre.textContent = text || pre.dataset.empty || "";
      lengths[name] = text.length;
      pre.scrollTop = pre.scrollHeight;
    }

    function append(name, offset, data) {
      var pre = outputs[name];
      if (!pre) return true;
      var known = lengths[name];
      if (offset > known) return false; // a gap: start over from a snapshot
      var fresh = data.slice(known - offset);
      if (!fresh) return true;
      var stick = stuckToBottom(pre);
      if (known === 0) pre.textContent = ""; // the "waiting for output" placeholder
      pre.appendChild(document.createTextNode(fresh));
      lengths[name] = known + fresh.length;
      if (stick) pre.scrollTop = pre.scrollHeight;
      return true;
    }

    function parse(event) {
      try {
        return JSON.parse(event.data);
      } catch (error) {
        return null;
      }
    }

    source.addEventListener("snapshot", function (event) {
      // Also sent again after an automatic reconnect: it replaces what is shown.
      var snapshot = parse(event);
      if (!snapshot || !panel.isConnected) return stop();
      STREAMS.forEach(function (name) {
        show(name, snapshot[name] || "");
        markTruncated(name, snapshot[name + "_truncated"]);
      });
    });
    source.addEventListener("output", function (event) {
      var chunk = parse(event);
      if (!panel.isConnected) return stop();
      if (!chunk || STREAMS.indexOf(chunk.stream) < 0) return;
      if (!append(chunk.stream, chunk.offset, String(chunk.data || ""))) return reload();
      markTruncated(chunk.stream, chunk.truncated);
    });
    // The status badge, exit code and final output come from the server's own rendering.
    source.addEventListener("status", function (event) {
      // A status the panel already shows (the ack's "running" may arrive after it rendered)
      // changes nothing; any other one re-renders the panel once.
      try {
        if (JSON.parse(event.data).status === panel.dataset.status) return;
      } catch (error) {
        /* an unreadable event: re-render to be safe */
      }
      reload();
    });
    source.addEventListener("done", reload);
    source.addEventListener("reset", reload);
    source.addEventListener("error", function () {
      // CONNECTING: the browser retries by itself. CLOSED: refused (a busy server answers
      // 503): try again a few times, still without polling; then go back to polling.
      if (source.readyState !== EventSource.CLOSED) return;
      var retries = Number(panel.dataset.streamRetries || "0");
      source.close();
      sources.delete(panel);
      if (retries >= MAX_RETRIES) {
        delete panel.dataset.streaming;
        return;
      }
      panel.dataset.streamRetries = String(retries + 1);
      window.setTimeout(function () { follow(panel); }, 1000 * (retries + 1));
    });
  }

  function scan(root) {
    if (!root || !root.querySelectorAll) return;
    if (root.matches && root.matches(".command-panel[data-stream-url]")) follow(root);
    root.querySelectorAll(".command-panel[data-stream-url]").forEach(follow);
  }

  // While a panel streams, its every-second re-render is not needed.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    // (also while a refused stream waits to be retried)
    if (elt && elt.dataset && elt.dataset.streaming === "1") {
      event.preventDefault();
    }
  });
  // A panel replaced or removed stops its stream.
  document.addEventListener("htmx:beforeCleanupElement", function (event) {
    var source = sources.get(event.target);
    if (source) {
      source.close();
      sources.delete(event.target);
    }
  });
  document.addEventListener("htmx:load", function (event) {
    scan(event.detail && event.detail.elt);
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { scan(document); });
  } else {
    scan(document);
  }
})();

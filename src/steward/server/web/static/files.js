// File pages: chunked, resumable uploads with a progress bar; the CodeMirror editor (save,
// revert); confirmation of destructive forms. No inline scripts: data-* attributes only.
(function () {
  "use strict";

  function csrfToken() {
    var headers = document.body.getAttribute("hx-headers");
    try { return JSON.parse(headers)["X-CSRF-Token"] || ""; } catch (e) { return ""; }
  }

  function call(method, url, body, contentType) {
    var headers = { "X-CSRF-Token": csrfToken(), Accept: "application/json" };
    if (contentType) headers["Content-Type"] = contentType;
    return fetch(url, { method: method, credentials: "same-origin", headers: headers, body: body })
      .then(function (response) {
        return response.text().then(function (text) {
          var data = null;
          try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
          if (!response.ok) {
            var error = new Error((data && data.error && data.error.message) || response.statusText);
            error.status = response.status;
            error.code = data && data.error && data.error.code;
            throw error;
          }
          return data;
        });
      });
  }

  function json(method, url, value) {
    return call(method, url, JSON.stringify(value), "application/json");
  }

  function sha256(file) {
    // SubtleCrypto needs the whole buffer; hashing is done once, before the chunks go.
    return file.arrayBuffer().then(function (buffer) {
      return window.crypto.subtle.digest("SHA-256", buffer);
    }).then(function (digest) {
      return Array.prototype.map.call(new Uint8Array(digest), function (b) {
        return ("0" + b.toString(16)).slice(-2);
      }).join("");
    });
  }

  // ---- uploads --------------------------------------------------------------------------
  function startUpload(box) {
    var input = document.getElementById("upload-file");
    var button = document.getElementById("upload-start");
    var overwrite = document.getElementById("upload-overwrite");
    var progress = document.getElementById("upload-progress");
    var bar = progress.querySelector(".progress-bar");
    var status = document.getElementById("upload-status");
    var chunkBytes = parseInt(box.dataset.chunkBytes, 10) || 1048576;
    var maxBytes = parseInt(box.dataset.maxBytes, 10);

    function show(done, total) {
      var percent = total ? Math.floor((100 * done) / total) : 100;
      bar.style.width = percent + "%";
      bar.textContent = percent + " %";
      progress.setAttribute("aria-valuenow", String(percent));
    }

    function fail(error) {
      status.className = "small mt-1 text-danger";
      status.textContent = box.dataset.labelFailed + " " + error.message;
      button.disabled = false;
    }

    button.addEventListener("click", function () {
      var file = input.files && input.files[0];
      if (!file) return;
      if (!isNaN(maxBytes) && file.size > maxBytes) {
        status.className = "small mt-1 text-danger";
        status.textContent = box.dataset.labelTooLarge;
        return;
      }
      button.disabled = true;
      status.className = "small mt-1";
      status.textContent = "";
      progress.classList.remove("d-none");
      show(0, file.size);
      var separator = box.dataset.separator || "/";
      var path = box.dataset.directory.replace(/[\/\\]+$/, "") + separator + file.name;
      var upload = null;
      var retries = 0;

      function sendFrom(offset) {
        if (offset >= file.size) return finish();
        var end = Math.min(offset + chunkBytes, file.size);
        return call("PUT", box.dataset.uploadUrl + "/" + upload.id + "?offset=" + offset,
                    file.slice(offset, end), "application/octet-stream")
          .then(function (answer) {
            retries = 0;
            show(answer.received, file.size);
            return sendFrom(answer.received);
          }, resume);
      }

      function resume(error) {
        // A dropped connection or a lost chunk: ask how much arrived, go on from there.
        if (retries >= 5 || (error.status && error.status < 500 && error.status !== 409)) throw error;
        retries += 1;
        status.textContent = box.dataset.labelRetrying;
        return new Promise(function (done) { window.setTimeout(done, 500 * retries); })
          .then(function () { return call("GET", box.dataset.uploadUrl + "/" + upload.id); })
          .then(function (answer) { return sendFrom(answer.received); }, resume);
      }

      function finish() {
        return sha256(file).then(function (digest) {
          return json("POST", box.dataset.uploadUrl + "/" + upload.id + "/finish", { sha256: digest });
        }).then(function () {
          show(file.size, file.size);
          status.className = "small mt-1 text-success";
          status.textContent = box.dataset.labelDone;
          window.setTimeout(function () { window.location.reload(); }, 600);
        });
      }

      json("POST", box.dataset.uploadUrl, { path: path, size: file.size, overwrite: overwrite.checked })
        .then(function (created) { upload = created; return sendFrom(0); })
        .catch(fail);
    });
  }

  // ---- editor ---------------------------------------------------------------------------
  function startEditor(box) {
    var textarea = document.getElementById("editor-text");
    var status = document.getElementById("editor-status");
    var readOnly = box.dataset.readOnly === "1";
    var editor = null;
    if (typeof CodeMirror !== "undefined") {
      editor = CodeMirror.fromTextArea(textarea, {
        lineNumbers: true, mode: box.dataset.mode || null, readOnly: readOnly,
        indentUnit: 4, lineWrapping: false,
      });
      editor.setSize(null, "65vh");
      box.codemirror = editor;
    }
    function content() { return editor ? editor.getValue() : textarea.value; }
    function say(text, kind) {
      status.className = "small mt-2 " + (kind || "");
      status.textContent = text;
    }
    var save = document.getElementById("editor-save");
    var revert = document.getElementById("editor-revert");
    if (save) {
      save.addEventListener("click", function () {
        save.disabled = true;
        json("PUT", box.dataset.saveUrl, { path: box.dataset.path, content: content(),
                                          base_sha256: box.dataset.sha256 })
          .then(function (saved) {
            box.dataset.sha256 = saved.sha256;
            say(box.dataset.labelSaved, "text-success");
          })
          .catch(function (error) { say(box.dataset.labelFailed + " " + error.message, "text-danger"); })
          .then(function () { save.disabled = false; });
      });
    }
    if (revert) {
      revert.addEventListener("click", function () {
        if (!window.confirm(revert.dataset.confirm)) return;
        revert.disabled = true;
        json("POST", box.dataset.revertUrl, { path: box.dataset.path })
          .then(function () {
            say(box.dataset.labelReverted, "text-success");
            window.setTimeout(function () { window.location.reload(); }, 400);
          })
          .catch(function (error) {
            say(box.dataset.labelFailed + " " + error.message, "text-danger");
            revert.disabled = false;
          });
      });
    }
  }

  function start() {
    var upload = document.getElementById("upload");
    if (upload) startUpload(upload);
    var editor = document.getElementById("editor");
    if (editor) startEditor(editor);
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

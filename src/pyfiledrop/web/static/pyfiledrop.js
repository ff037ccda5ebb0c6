// pyfiledrop upload page. Settings arrive as JSON in #pfd-config; every string that came from a
// client (file names, server replies) is put into the page as text, never parsed as HTML.
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("pfd-config").textContent);
  var HIDDEN_KEY = "pyfiledrop.hiddenFiles";
  var RESUME_KEY = "pyfiledrop.unfinished";
  var RESUME_ENTRIES = 200;
  var SPEED_WINDOW_MS = 3000;

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function formatBytes(bytes) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var value = Math.max(0, bytes);
    var unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit++;
    }
    var digits = unit === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 2;
    return value.toFixed(digits) + " " + units[unit];
  }

  function formatDuration(seconds) {
    if (!isFinite(seconds) || seconds < 0) return "";
    if (seconds < 10) return seconds.toFixed(1) + " s";
    seconds = Math.ceil(seconds);
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + (seconds % 60) + " s";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function formatDate(iso) {
    var date = new Date(iso);
    return isNaN(date.getTime()) ? "" : date.toLocaleString();
  }

  // Bytes per second over the last few seconds: smooth enough to read, quick to follow changes.
  function SpeedMeter() {
    this.samples = [];
  }
  SpeedMeter.prototype.add = function (bytes) {
    var now = performance.now();
    this.samples.push([now, bytes]);
    while (this.samples.length > 2 && now - this.samples[0][0] > SPEED_WINDOW_MS) {
      this.samples.shift();
    }
  };
  SpeedMeter.prototype.rate = function () {
    if (this.samples.length < 2) return 0;
    var first = this.samples[0];
    var last = this.samples[this.samples.length - 1];
    var seconds = (last[0] - first[0]) / 1000;
    return seconds > 0.2 ? Math.max(0, (last[1] - first[1]) / seconds) : 0;
  };

  function averageText(bytes, seconds) {
    return "in " + formatDuration(seconds) + ", " + formatBytes(bytes / seconds) + "/s on average";
  }

  function errorText(message, xhr) {
    if (message && typeof message === "object" && message.error) return String(message.error);
    if (xhr && xhr.readyState === 4 && xhr.status === 0) {
      return "The connection to the server was lost.";
    }
    if (typeof message === "string" && message && message.length < 300 && message.indexOf("<") < 0) {
      return message;
    }
    if (xhr && xhr.status) return "Server answered " + xhr.status + ".";
    return "Upload failed.";
  }

  // ---- "Uploaded": the owner's files, from the server --------------------------------------

  function readHidden() {
    try {
      var ids = JSON.parse(window.localStorage.getItem(HIDDEN_KEY) || "[]");
      return Array.isArray(ids) ? ids : [];
    } catch (e) {
      return [];
    }
  }

  function writeHidden(ids) {
    try {
      if (ids.length) window.localStorage.setItem(HIDDEN_KEY, JSON.stringify(ids.slice(-5000)));
      else window.localStorage.removeItem(HIDDEN_KEY);
    } catch (e) {
      // Storage disabled: the list simply stays visible.
    }
  }

  var lastFiles = [];

  function downloadLink(record) {
    // Built from the id, not taken from the reply as a URL, so it can only ever point here.
    var link = el("a", "file-name", record.name);
    link.href = "/download/" + encodeURIComponent(record.id);
    link.setAttribute("download", "");
    return link;
  }

  function uploadedEntry(record) {
    var item = el("li", "uploaded-file");
    item.dataset.id = String(record.id);
    var head = el("div", "file-head");
    head.appendChild(config.allowDownloads ? downloadLink(record) : el("span", "file-name", record.name));
    head.appendChild(el("span", "file-size", formatBytes(Number(record.size) || 0)));
    item.appendChild(head);
    var hash = el("div", "file-hash");
    hash.appendChild(el("span", "label", "SHA-256 "));
    hash.appendChild(el("code", "hash", record.sha256));
    item.appendChild(hash);
    var when = formatDate(record.created);
    if (when) item.appendChild(el("div", "muted file-date", when));
    var limits = [];
    if (record.expires) limits.push("Expires " + formatDate(record.expires));
    if (record.max_downloads) {
      limits.push("Downloaded " + (Number(record.downloads) || 0) + " of " + record.max_downloads);
    }
    if (limits.length) item.appendChild(el("div", "muted file-limits", limits.join(" \u00b7 ")));
    var remove = el("button", "link file-delete", "Delete");
    remove.type = "button";
    remove.setAttribute("aria-label", "Delete " + record.name + " from the server");
    remove.addEventListener("click", function () {
      deleteFile(record, remove);
    });
    item.appendChild(remove);
    return item;
  }

  // Two clicks, no dialog: the first asks, the second deletes (the button forgets after a while).
  function deleteFile(record, button) {
    if (button.dataset.confirming !== "yes") {
      button.dataset.confirming = "yes";
      button.textContent = "Really delete?";
      window.setTimeout(function () {
        button.dataset.confirming = "";
        button.textContent = "Delete";
      }, 6000);
      return;
    }
    button.disabled = true;
    fetch("/api/files/" + encodeURIComponent(record.id), {
      method: "DELETE",
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        if (!response.ok && response.status !== 410) {
          throw new Error("the server answered " + response.status);
        }
        announce(record.name + " deleted.");
      })
      .catch(function (err) {
        $("uploaded-status").textContent = "Could not delete " + record.name + ": " + err.message;
      })
      .then(refreshUploaded);
  }

  function lifeText(seconds) {
    if (seconds % 86400 === 0) return seconds / 86400 + (seconds === 86400 ? " day" : " days");
    if (seconds % 3600 === 0) return seconds / 3600 + (seconds === 3600 ? " hour" : " hours");
    return Math.round(seconds / 60) + " min";
  }

  // What the uploader chose for new files (the server may only shorten a life, never extend it).
  function uploadOptions() {
    var options = {};
    var life = $("expires-in").value;
    var limit = $("max-downloads").value;
    if (life) options.expires_in = life;
    if (limit) options.max_downloads = limit;
    return options;
  }

  if (config.expireAfter) {
    Array.prototype.slice.call($("expires-in").options).forEach(function (option) {
      if (option.value && Number(option.value) >= config.expireAfter) option.remove();
    });
    $("expires-in").options[0].textContent =
      "as long as the server keeps them (" + lifeText(config.expireAfter) + ")";
  }

  function renderUploaded() {
    var hidden = readHidden();
    var list = $("uploaded");
    list.replaceChildren();
    var hiddenCount = 0;
    lastFiles.forEach(function (record) {
      if (hidden.indexOf(record.id) >= 0) hiddenCount++;
      else list.appendChild(uploadedEntry(record));
    });
    var shown = lastFiles.length - hiddenCount;
    $("uploaded-status").textContent = shown ? "" : "Nothing uploaded from this browser yet.";
    $("clear").disabled = shown === 0;
    $("uploaded-hidden").hidden = hiddenCount === 0;
    $("uploaded-hidden-text").textContent =
      hiddenCount + (hiddenCount === 1 ? " file is" : " files are") + " hidden in this browser.";
  }

  var refreshing = null;
  var refreshAgain = false;

  function refreshUploaded() {
    if (refreshing) {
      refreshAgain = true;
      return refreshing;
    }
    refreshing = fetch(config.filesUrl, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      cache: "no-store",
    })
      .then(function (response) {
        if (!response.ok) throw new Error("The server answered " + response.status + ".");
        return response.json();
      })
      .then(function (body) {
        lastFiles = Array.isArray(body.files) ? body.files : [];
        renderUploaded();
      })
      .catch(function (err) {
        $("uploaded-status").textContent = "Could not load the list: " + err.message;
      })
      .then(function () {
        refreshing = null;
        if (refreshAgain) {
          refreshAgain = false;
          refreshUploaded();
        }
      });
    return refreshing;
  }

  $("clear").addEventListener("click", function () {
    var hidden = readHidden();
    lastFiles.forEach(function (record) {
      if (hidden.indexOf(record.id) < 0) hidden.push(record.id);
    });
    writeHidden(hidden);
    renderUploaded();
  });

  $("show-hidden").addEventListener("click", function () {
    writeHidden([]);
    renderUploaded();
  });

  // ---- Uploading ---------------------------------------------------------------------------

  var dzOptions = config.dropzone;
  var autoChunks = config.chunkSizeAuto || null;

  // --chunk-size auto: the smallest power of two from min to max keeping the file within
  // `chunks` chunks (the same rule as units.auto_chunk_size); else the server's fixed size.
  function chooseChunkSize(size) {
    if (!autoChunks) return Number(dzOptions.chunkSize);
    var chunk = autoChunks.min;
    while (chunk < autoChunks.max && chunk * autoChunks.chunks < size) chunk *= 2;
    return chunk;
  }

  function fileChunkSize(file) {
    if (!file.pfdChunkSize) file.pfdChunkSize = chooseChunkSize(file.size);
    return file.pfdChunkSize;
  }

  $("limits").textContent =
    "Up to " +
    formatBytes(dzOptions.maxFilesize * 1024 * 1024) +
    " per file, sent in " +
    (autoChunks
      ? "chunks of " +
        formatBytes(autoChunks.min) +
        " to " +
        formatBytes(autoChunks.max) +
        " (chosen per file)"
      : formatBytes(dzOptions.chunkSize) + " chunks") +
    (dzOptions.parallelChunkUploads ? ", " + dzOptions.parallelChunkUploads + " at a time" : "") +
    ".";

  if (!config.allowDownloads) {
    // Nothing to share: say so once, and hide the sharing options.
    $("limits").textContent +=
      " Downloads are off on this server (started without -a / --allow-downloads): files are" +
      " stored but there are no links to share.";
    Array.prototype.forEach.call(document.querySelectorAll("[data-pfd-sharing]"), function (node) {
      node.hidden = true;
    });
  }

  refreshUploaded();

  if (typeof window.Dropzone !== "function") {
    $("loader-error").hidden = false;
    $("dropper").classList.add("disabled");
    return;
  }

  var Dropzone = window.Dropzone;
  Dropzone.autoDiscover = false;

  function part(file, name) {
    return file.previewElement ? file.previewElement.querySelector("[data-pfd-" + name + "]") : null;
  }

  function setPart(file, name, text) {
    var node = part(file, name);
    if (node) node.textContent = text;
  }

  function setState(file, state, text) {
    if (file.previewElement) file.previewElement.dataset.state = state;
    setPart(file, "state", text);
  }

  // Screen readers hear when a file is done or failed, not every progress tick.
  function announce(text) {
    $("announcer").textContent = text;
  }

  // Once a file has failed, the rest of its chunks would only be wasted: Dropzone would keep
  // sending them. Abort those in flight and mark the unsent ones so none is started.
  function stopChunks(file) {
    var upload = file.upload;
    if (!upload || !upload.chunked || !upload.chunks) return;
    for (var i = 0; i < upload.totalChunkCount; i++) {
      var chunk = upload.chunks[i];
      if (chunk === undefined) {
        upload.chunks[i] = { status: Dropzone.CANCELED, progress: 0 };
      } else if (chunk.status === Dropzone.UPLOADING) {
        chunk.status = Dropzone.CANCELED;
        if (chunk.xhr) chunk.xhr.abort();
      }
    }
  }

  function showError(file, message, xhr) {
    stopChunks(file);
    var text = errorText(message, xhr);
    announce(file.name + " failed: " + text);
    if (file.previewElement) {
      file.previewElement.classList.add("dz-error");
      var node = file.previewElement.querySelector("[data-dz-errormessage]");
      if (node) {
        node.textContent = text;
      }
    }
    // Only files the server started receiving can continue; a refused one would fail again.
    var resumable = file.accepted && file.upload && file.upload.chunked && file.size > 0;
    setState(file, "error", resumable ? "Failed (add the file again to continue)" : "Failed");
    setPart(file, "speed", "");
    setPart(file, "eta", "");
  }

  function postFinish(file) {
    var url = config.finishUrl.replace("{uuid}", encodeURIComponent(file.upload.uuid));
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    }).then(function (response) {
      return response
        .json()
        .catch(function () {
          return {};
        })
        .then(function (body) {
          return { status: response.status, ok: response.ok, body: body };
        });
    });
  }

  // Dropzone calls this once every chunk is in. The server may have finished the file on the
  // last chunk already; finish is idempotent and answers the same record either way.
  // (Dropzone calls it with the options as `this`, hence `dz` from the enclosing scope.)
  function chunksUploaded(file, done) {
    setState(file, "finishing", "Finishing\u2026");
    setPart(file, "eta", "");
    var attempt = 0;
    var began = Date.now();
    var retryFor = Number(config.retryFor) * 1000;
    function fail(message) {
      dz._errorProcessing([file], { error: message });
    }
    function tryFinish() {
      attempt++;
      postFinish(file)
        .then(function (result) {
          if (result.ok && result.body && result.body.status === "done" && result.body.file) {
            file.pfdRecord = result.body.file;
            done();
          } else if (retryable(result.status) && Date.now() - began < retryFor) {
            setState(file, "finishing", "Finishing: " + faultText({ status: result.status }) +
              ". Trying again\u2026");
            setTimeout(tryFinish, retryPause(attempt));
          } else {
            fail(
              (result.body && result.body.error) ||
                "Finishing failed: the server answered " + result.status + "."
            );
          }
        })
        .catch(function () {
          if (Date.now() - began < retryFor) {
            setState(file, "finishing", "Finishing: the server cannot be reached. Trying again\u2026");
            setTimeout(tryFinish, retryPause(attempt));
          } else {
            fail("Finishing failed: the server could not be reached.");
          }
        });
    }
    tryFinish();
  }

  // ---- Resuming: adding the same file again (after a reload, a crash or a failure) continues
  // its upload. The server says which chunks it has; only the others are sent.

  function resumeKey(file) {
    return [file.name, file.size, file.lastModified || 0].join("/");
  }

  function readUnfinished() {
    try {
      var entries = JSON.parse(window.localStorage.getItem(RESUME_KEY) || "{}");
      return entries && typeof entries === "object" && !Array.isArray(entries) ? entries : {};
    } catch (e) {
      return {};
    }
  }

  function writeUnfinished(entries) {
    var keys = Object.keys(entries).sort(function (a, b) {
      return entries[b].at - entries[a].at;
    });
    var kept = {};
    keys.slice(0, RESUME_ENTRIES).forEach(function (key) {
      kept[key] = entries[key];
    });
    try {
      window.localStorage.setItem(RESUME_KEY, JSON.stringify(kept));
    } catch (e) {
      // Storage disabled: uploads simply start from the beginning.
    }
  }

  function rememberUpload(file) {
    var entries = readUnfinished();
    entries[resumeKey(file)] = { uuid: file.upload.uuid, at: Date.now() };
    writeUnfinished(entries);
  }

  function forgetUpload(file) {
    var entries = readUnfinished();
    var entry = entries[resumeKey(file)];
    if (entry && entry.uuid === file.upload.uuid) {
      delete entries[resumeKey(file)];
      writeUnfinished(entries);
    }
  }

  function chunkLength(file, index) {
    var chunkSize = fileChunkSize(file);
    return Math.max(0, Math.min(chunkSize, file.size - index * chunkSize));
  }

  // Dropzone's accept hook runs before a file is queued; it may take its time.
  function acceptFile(file, done) {
    var saved = readUnfinished()[resumeKey(file)];
    if (!saved || typeof saved.uuid !== "string" || !file.size) {
      rememberUpload(file);
      done();
      return;
    }
    fetch(config.statusUrl.replace("{uuid}", encodeURIComponent(saved.uuid)), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      cache: "no-store",
    })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (state) {
        var usable =
          state &&
          state.state === "receiving" &&
          state.size === file.size &&
          state.chunk_size === fileChunkSize(file) &&
          Array.isArray(state.received) &&
          state.received.length > 0;
        if (usable) {
          file.upload.uuid = saved.uuid;
          file.pfdHave = {};
          file.pfdSkipped = 0;
          state.received.forEach(function (index) {
            file.pfdHave[index] = true;
            file.pfdSkipped += chunkLength(file, index);
          });
          setState(file, "queued", "Resuming: " + formatBytes(file.pfdSkipped) + " already there");
        }
      })
      .catch(function () {
        // The server could not say: start from the beginning.
      })
      .then(function () {
        rememberUpload(file);
        done();
      });
  }

  // Dropzone's own fields, but with each file's chunk size (its default reads the one option,
  // which the "processing" handler below sets per file only as a file starts).
  function chunkFields(files, xhr, chunk) {
    if (!chunk) return {};
    var size = fileChunkSize(chunk.file);
    return {
      dzuuid: chunk.file.upload.uuid,
      dzchunkindex: chunk.index,
      dztotalfilesize: chunk.file.size,
      dzchunksize: size,
      dztotalchunkcount: chunk.file.upload.totalChunkCount,
      dzchunkbyteoffset: chunk.index * size,
    };
  }

  var previewTemplate = $("preview-template").innerHTML;

  var dz = new Dropzone(
    "#dropper",
    Object.assign({}, dzOptions, {
      previewsContainer: "#previews",
      previewTemplate: previewTemplate,
      createImageThumbnails: false,
      clickable: "#dropper",
      chunksUploaded: chunksUploaded,
      accept: acceptFile,
      params: chunkFields,
      error: showError,
    })
  );

  // A chunk the server already has is marked as sent instead of being sent again. Deferred, so
  // that a long run of such chunks does not grow the stack.
  var sendChunk = dz._uploadData;
  dz._uploadData = function (files, dataBlocks) {
    var file = files[0];
    var block = dataBlocks[0];
    var index = block ? block.chunkIndex : -1;
    var have =
      file.upload.chunked &&
      ((file.pfdHave && file.pfdHave[index]) || (file.pfdArrived && file.pfdArrived[index]));
    if (!have) return sendChunk.call(dz, files, dataBlocks);
    var chunk = file.upload.chunks[block.chunkIndex];
    var length = chunkLength(file, block.chunkIndex);
    var standIn = {
      responseText: '{"status":"duplicate"}',
      getAllResponseHeaders: function () {
        return "";
      },
    };
    chunk.xhr = standIn;
    chunk.total = length;
    chunk.bytesSent = length;
    Promise.resolve().then(function () {
      if (file.status !== Dropzone.UPLOADING || chunk.status !== Dropzone.UPLOADING) return;
      dz._updateFilesUploadProgress(files, standIn);
      file.upload.finishedChunkUpload(chunk, { status: "duplicate" });
    });
  };

  // ---- Riding out faults: a chunk that fails for a reason that passes (the server restarting,
  // a cut connection, a 5xx, 423 while the server still holds the chunk) is sent again after a
  // growing pause, for up to config.retryFor seconds. Before sending it again the page asks the
  // server which chunks it has (GET /upload/<uuid>): a chunk that arrived although its answer
  // was lost is not sent twice, and while the server is still away nothing is sent at all.

  var RETRY_FIRST_PAUSE_MS = 500;
  var RETRY_LONGEST_PAUSE_MS = 15000;

  function retryable(status) {
    return status === 0 || status === 408 || status === 423 || status === 429 || status >= 500;
  }

  // Plain words for what went wrong, shown while the page waits to try again.
  function faultText(xhr, timedOut) {
    var status = xhr ? xhr.status : 0;
    if (timedOut) return "The server took too long to answer";
    if (status === 0) return "The connection to the server was lost";
    if (status === 423) return "The server is still busy with part of this file";
    if (status === 429) return "The server is busy";
    if (status === 502 || status === 503 || status === 504) {
      return "The server is not available (it may be restarting)";
    }
    if (status === 507) return "The server is out of disk space";
    return "The server had a problem (error " + status + ")";
  }

  function retryPause(attempt) {
    return Math.min(RETRY_LONGEST_PAUSE_MS, RETRY_FIRST_PAUSE_MS * Math.pow(2, attempt));
  }

  // One question to the server per file at a time, shared by the chunks that failed together.
  function askReceived(file) {
    if (!file.pfdAsking) {
      var url = config.statusUrl.replace("{uuid}", encodeURIComponent(file.upload.uuid));
      file.pfdAsking = fetch(url, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        cache: "no-store",
      })
        .then(function (response) {
          if (response.status === 404) return { received: [] }; // nothing of it arrived yet
          if (!response.ok) throw new Error("status " + response.status);
          return response.json();
        })
        .then(
          function (state) {
            file.pfdAsking = null;
            return state;
          },
          function (err) {
            file.pfdAsking = null;
            throw err;
          }
        );
    }
    return file.pfdAsking;
  }

  function noteReceived(file, state) {
    if (!state || !Array.isArray(state.received)) return;
    // Kept apart from pfdHave: these chunks did go over the wire, and count as sent bytes.
    file.pfdArrived = file.pfdArrived || {};
    state.received.forEach(function (index) {
      file.pfdArrived[index] = true;
    });
  }

  var giveUp = dz._handleUploadError;
  dz._handleUploadError = function (files, xhr, response) {
    var file = files[0];
    if (file.status !== Dropzone.UPLOADING || !file.upload.chunked) {
      return giveUp.call(dz, files, xhr, response);
    }
    var chunk = dz._getChunk(file, xhr);
    var timedOut = typeof response === "string" && response.indexOf("timedout") >= 0;
    if (!chunk || chunk.status !== Dropzone.UPLOADING || !(timedOut || retryable(xhr.status))) {
      return giveUp.call(dz, files, xhr, response);
    }
    var now = Date.now();
    // Counted per chunk: with chunks in parallel, others may go through while this one fails.
    if (!chunk.pfdFault) {
      chunk.pfdFault = { since: now, attempt: 0 };
      file.pfdFaults = (file.pfdFaults || 0) + 1;
    }
    var fault = chunk.pfdFault;
    file.pfdRetrying = true;
    var reason = faultText(xhr, timedOut);
    if (now - fault.since > Number(config.retryFor) * 1000) {
      var minutes = Math.round((now - fault.since) / 6000) / 10;
      var detail = response && response.error ? " (" + response.error + ")" : "";
      return dz._errorProcessing(
        files,
        { error: reason + detail + "; gave up after trying for " + minutes + " min." },
        xhr
      );
    }
    chunk.progress = 0;
    chunk.bytesSent = 0;
    chunk.xhr = null;
    var pause = retryPause(fault.attempt++);
    setState(file, "retrying", reason + ". Trying again in " + formatDuration(pause / 1000) + "\u2026");
    setPart(file, "speed", "");
    setPart(file, "eta", "");
    window.setTimeout(function resend() {
      if (file.status !== Dropzone.UPLOADING || chunk.status !== Dropzone.UPLOADING) return;
      askReceived(file).then(
        function (state) {
          if (file.status !== Dropzone.UPLOADING || chunk.status !== Dropzone.UPLOADING) return;
          noteReceived(file, state);
          setState(file, "uploading", "Uploading (the server is back)");
          dz._uploadData(files, [chunk.dataBlock]);
        },
        function () {
          // Still away: wait longer, within the same time limit, before asking again.
          var fakeXhr = { status: 0 };
          if (Date.now() - fault.since > Number(config.retryFor) * 1000) {
            dz._errorProcessing(
              files,
              { error: "The server could not be reached; gave up after " +
                Math.round((Date.now() - fault.since) / 1000) + " s." },
              fakeXhr
            );
            return;
          }
          var wait = retryPause(fault.attempt++);
          setState(
            file,
            "retrying",
            "The server cannot be reached. Trying again in " + formatDuration(wait / 1000) + "\u2026"
          );
          window.setTimeout(resend, wait);
        }
      );
    }, pause);
  };

  // A chunk that went through: the row says "Uploading" again, once no chunk of the file is
  // still waiting to be sent again (others going through must not hide a retry's notice).
  var chunkAnswered = dz._finishedUploading;
  dz._finishedUploading = function (files, xhr, e) {
    var file = files[0];
    if (xhr.readyState === 4 && xhr.status >= 200 && xhr.status < 300) {
      var chunk = file.upload && file.upload.chunked ? dz._getChunk(file, xhr) : null;
      if (chunk && chunk.pfdFault) {
        chunk.pfdFault = null;
        file.pfdFaults -= 1;
      }
      if (file.pfdRetrying && !file.pfdFaults) {
        file.pfdRetrying = false;
        if (file.status === Dropzone.UPLOADING) setState(file, "uploading", "Uploading");
      }
    }
    return chunkAnswered.call(dz, files, xhr, e);
  };

  // Keyboard: the drop area is a focusable button that opens the file chooser.
  $("dropper").addEventListener("keydown", function (event) {
    if (event.key === "Enter" || event.key === " " || event.key === "Spacebar") {
      event.preventDefault();
      if (dz.hiddenFileInput) dz.hiddenFileInput.click();
    }
  });

  // ---- Per-file and batch progress -------------------------------------------------------

  var batch = { files: [], meter: new SpeedMeter(), started: 0, finished: 0 };

  // Payload bytes sent so far, from each chunk's progress. (Dropzone's own `bytesSent` counts
  // multipart overhead and is NaN while a chunk has not reported yet.) With `fresh`, only bytes
  // that really went over the wire count: chunks the server had before a resume do not.
  function bytesSent(file, fresh) {
    var upload = file.upload;
    if (!upload) return 0;
    if (!upload.chunked || !upload.chunks) return (file.size * (upload.progress || 0)) / 100;
    var sent = 0;
    upload.chunks.forEach(function (chunk, index) {
      if (!chunk || (fresh && file.pfdHave && file.pfdHave[index])) return;
      var progress = chunk.status === Dropzone.SUCCESS ? 100 : chunk.progress || 0;
      sent += (chunkLength(file, index) * progress) / 100;
    });
    return Math.min(file.size, sent);
  }

  function fileSent(file, fresh) {
    if (file.status === Dropzone.ERROR || file.status === Dropzone.CANCELED) return 0;
    if (file.status === Dropzone.SUCCESS) return file.size - (fresh ? file.pfdSkipped || 0 : 0);
    return bytesSent(file, fresh);
  }

  function updateBatch() {
    var files = batch.files;
    if (!files.length) {
      $("batch").hidden = true;
      return;
    }
    var total = 0;
    var sent = 0;
    var fresh = 0;
    var done = 0;
    var failed = 0;
    var active = false;
    files.forEach(function (file) {
      if (file.status === Dropzone.ERROR || file.status === Dropzone.CANCELED) {
        failed++;
        return;
      }
      total += file.size;
      sent += fileSent(file, false);
      fresh += fileSent(file, true);
      if (file.status === Dropzone.SUCCESS) done++;
      else active = true;
    });
    batch.meter.add(fresh);
    var rate = active ? batch.meter.rate() : 0;
    $("batch").hidden = false;
    $("batch-count").textContent =
      done + " of " + files.length + " done" + (failed ? ", " + failed + " failed" : "");
    $("batch-bytes").textContent = total ? formatBytes(sent) + " of " + formatBytes(total) : "";
    if (active) {
      batch.finished = 0;
      $("batch-speed").textContent = rate ? formatBytes(rate) + "/s" : "";
      $("batch-eta").textContent = rate ? formatDuration((total - sent) / rate) + " left" : "";
    } else {
      if (!batch.finished) batch.finished = performance.now();
      var seconds = batch.started ? (batch.finished - batch.started) / 1000 : 0;
      $("batch-speed").textContent = seconds > 0.05 && fresh ? averageText(fresh, seconds) : "";
      $("batch-eta").textContent = "";
    }
    $("batch-progress").value = total ? (100 * sent) / total : failed ? 0 : 100;
  }

  var ticker = null;
  function startTicker() {
    if (!ticker) ticker = setInterval(updateBatch, 500);
  }
  function stopTicker() {
    if (ticker) clearInterval(ticker);
    ticker = null;
    updateBatch();
  }

  dz.on("addedfile", function (file) {
    file.pfdOptions = uploadOptions(); // every chunk of the file carries the same choice
    file.pfdGroup = $("group-share").checked;
    file.pfdPassword = $("download-password").value;
    // A new batch starts when files are added after the previous one has finished.
    if (!dz.getUploadingFiles().length && !dz.getQueuedFiles().length) {
      batch.files = batch.files.filter(function (f) {
        return f.status === Dropzone.ADDED;
      });
      batch.meter = new SpeedMeter();
      batch.started = 0;
      batch.finished = 0;
    }
    batch.files.push(file);
    file.pfdMeter = new SpeedMeter();
    setPart(file, "size", formatBytes(file.size));
    var bar = file.previewElement && file.previewElement.querySelector("progress");
    if (bar) bar.setAttribute("aria-label", "Upload of " + file.name);
    setState(file, "queued", "Queued");
    startTicker();
    updateBatch();
  });

  // The fields go before the file part, as the server reads them before the bytes.
  dz.on("sending", function (file, xhr, formData) {
    var options = file.pfdOptions || {};
    Object.keys(options).forEach(function (name) {
      formData.append(name, options[name]);
    });
  });

  dz.on("processing", function (file) {
    // Read by Dropzone right after this event, when it cuts this file into chunks.
    dz.options.chunkSize = fileChunkSize(file);
    file.pfdStarted = performance.now();
    if (!batch.started) batch.started = file.pfdStarted;
    setState(file, "uploading", file.pfdSkipped ? "Uploading the rest" : "Uploading");
    startTicker();
  });

  dz.on("uploadprogress", function (file) {
    if (file.status !== Dropzone.UPLOADING) return;
    var sent = bytesSent(file, false);
    file.pfdMeter.add(bytesSent(file, true));
    var rate = file.pfdMeter.rate();
    setPart(file, "speed", rate ? formatBytes(rate) + "/s" : "");
    setPart(file, "eta", rate ? formatDuration((file.size - sent) / rate) + " left" : "");
  });

  // ---- Sharing: the link people can use, a Copy button and a QR code ----------------------

  function shareLink(record) {
    // Built from the id, not taken from the reply as a URL, so it can only ever point here.
    var base = config.publicUrl || window.location.origin;
    return base + config.pageUrl.replace("{id}", encodeURIComponent(record.id));
  }

  function copyText(text, button, field) {
    function copied() {
      button.textContent = "Copied";
      announce("Link copied.");
      window.setTimeout(function () {
        button.textContent = "Copy";
      }, 2000);
    }
    function fallback() {
      // Plain http on another host has no clipboard API: select the link for Ctrl+C instead.
      field.focus();
      field.select();
      var ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (e) {
        ok = false;
      }
      if (ok) copied();
      else button.textContent = "Press Ctrl+C";
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(copied, fallback);
    } else {
      fallback();
    }
  }

  // Drawn on a canvas (the CSP allows no data: images), with the 4-module quiet zone readers need.
  function qrCanvas(text) {
    if (typeof window.qrcode !== "function") return null;
    var qr = window.qrcode(0, "M");
    qr.addData(text);
    qr.make();
    var modules = qr.getModuleCount();
    var cell = 4;
    var size = (modules + 8) * cell;
    var canvas = el("canvas", "qr");
    canvas.width = size;
    canvas.height = size;
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", "QR code of the link");
    var context = canvas.getContext("2d");
    context.fillStyle = "#ffffff";
    context.fillRect(0, 0, size, size);
    context.fillStyle = "#000000";
    for (var row = 0; row < modules; row++) {
      for (var col = 0; col < modules; col++) {
        if (qr.isDark(row, col)) context.fillRect((col + 4) * cell, (row + 4) * cell, cell, cell);
      }
    }
    return canvas;
  }

  function downloadsOff() {
    return el(
      "p",
      "downloads-off",
      "Downloads are off on this server (it was started without -a / --allow-downloads), " +
        "so there is no link to share. The file is stored."
    );
  }

  // The link, Copy, Open and the QR code; `label` names what the link is to.
  function linkBlock(block, link, label) {
    var row = el("div", "share-row");
    var field = el("input", "share-link");
    field.type = "text";
    field.readOnly = true;
    field.value = link;
    field.setAttribute("aria-label", "Link to " + label);
    var copy = el("button", "copy", "Copy");
    copy.type = "button";
    copy.addEventListener("click", function () {
      copyText(link, copy, field);
    });
    var open = el("a", "open-link", "Open");
    open.href = link;
    open.target = "_blank";
    open.rel = "noopener";
    row.appendChild(field);
    row.appendChild(copy);
    row.appendChild(open);
    block.appendChild(row);
    var canvas = qrCanvas(link);
    if (canvas) block.appendChild(canvas);
    return block;
  }

  function postJson(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify(body),
    }).then(function (response) {
      return response
        .json()
        .catch(function () {
          return {};
        })
        .then(function (answer) {
          if (!response.ok) {
            throw new Error(answer.error || "the server answered " + response.status);
          }
          return answer;
        });
    });
  }

  function shareBlock(file, record) {
    var block = el("div", "file-share");
    if (file.name !== record.name) {
      var stored = el("div", "stored-as muted");
      stored.appendChild(document.createTextNode("Stored as "));
      stored.appendChild(el("strong", "stored-name", record.name));
      block.appendChild(stored);
    }
    if (!config.allowDownloads) {
      block.appendChild(downloadsOff());
      return block;
    }
    if (file.pfdGroup) return block; // one link for the whole drop comes when it is done
    var password = file.pfdPassword;
    if (!password) return linkBlock(block, shareLink(record), record.name);
    var waiting = el("p", "muted", "Setting the download password\u2026");
    block.appendChild(waiting);
    postJson("/api/files/" + encodeURIComponent(record.id) + "/password", { password: password })
      .then(function () {
        waiting.textContent = "Protected by the download password.";
        linkBlock(block, shareLink(record), record.name);
      })
      .catch(function (err) {
        waiting.className = "error";
        waiting.textContent =
          "The download password could not be set (" + err.message + "): do not share this link.";
      });
    return block;
  }

  // With "one link for the drop": when the drop is done, its stored files get one share.
  function shareDrop(files) {
    var records = [];
    var first = null;
    files.forEach(function (file) {
      if (file.status === Dropzone.SUCCESS && file.pfdGroup && file.pfdFinal) {
        records.push(file.pfdFinal);
        first = first || file;
      }
    });
    if (!records.length || !config.allowDownloads) return;
    var box = $("share-result");
    var block = el("div", "file-share drop-share");
    var title = el(
      "strong",
      "",
      "One link for " + (records.length === 1 ? "this file" : "these " + records.length + " files")
    );
    block.appendChild(title);
    var waiting = el("p", "muted", "Making the link\u2026");
    block.appendChild(waiting);
    box.prepend(block);
    box.hidden = false;
    var body = Object.assign({}, first.pfdOptions, {
      files: records.map(function (record) {
        return record.id;
      }),
    });
    if (first.pfdPassword) body.password = first.pfdPassword;
    postJson("/api/shares", body)
      .then(function (share) {
        waiting.remove();
        var base = config.publicUrl || window.location.origin;
        var link = base + "/s/" + encodeURIComponent(share.id);
        if (share.password) block.appendChild(el("p", "muted", "Protected by the download password."));
        linkBlock(block, link, records.length + " files");
        announce("One link for " + records.length + " files is ready.");
      })
      .catch(function (err) {
        waiting.className = "error";
        waiting.textContent = "The link could not be made: " + err.message;
      });
  }

  dz.on("success", function (file, response) {
    var record = file.pfdRecord || (response && response.file) || null;
    var progress = file.previewElement && file.previewElement.querySelector("progress");
    if (progress) progress.value = 100;
    var seconds = (performance.now() - (file.pfdStarted || performance.now())) / 1000;
    setState(file, "done", "Done");
    announce(file.name + " uploaded.");
    forgetUpload(file);
    var fresh = file.size - (file.pfdSkipped || 0);
    setPart(file, "speed", seconds > 0.05 && fresh ? averageText(fresh, seconds) : "");
    setPart(file, "eta", record && record.sha256 ? "SHA-256 " + record.sha256 : "");
    file.pfdFinal = record;
    if (record && record.id && file.previewElement) {
      file.previewElement.appendChild(shareBlock(file, record));
    }
    refreshUploaded();
  });

  dz.on("queuecomplete", function () {
    stopTicker();
    // Each drop is shared once, even if more files are added later.
    var unshared = batch.files.filter(function (file) {
      return !file.pfdShared;
    });
    unshared.forEach(function (file) {
      file.pfdShared = true;
    });
    shareDrop(unshared);
  });
})();

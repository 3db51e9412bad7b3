// Marquee dashboard: progressive enhancement only; every page works without it.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf"]');
  var csrf = meta ? meta.content : "";

  function headers(extra) {
    var h = extra || {};
    if (csrf) h["X-CSRF-Token"] = csrf;
    return h;
  }

  // Tag a poster: drag and drop or pick a file, answer shown in place.
  var drop = document.getElementById("drop");
  var result = document.getElementById("result");
  function send(body) {
    result.innerHTML = '<p class="muted">Classifying…</p>';
    fetch("/tag", { method: "POST", body: body, headers: headers({ "X-Fragment": "1" }), credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) { result.innerHTML = html; })
      .catch(function (e) { result.innerHTML = '<p class="bad">Upload failed: ' + e + "</p>"; });
  }
  if (drop && result) {
    var input = drop.querySelector('input[type="file"]');
    ["dragenter", "dragover"].forEach(function (t) {
      drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (t) {
      drop.addEventListener(t, function () { drop.classList.remove("over"); });
    });
    drop.addEventListener("drop", function (e) {
      e.preventDefault();
      if (e.dataTransfer.files.length) {
        var fd = new FormData();
        fd.append("file", e.dataTransfer.files[0]);
        send(fd);
      }
    });
    if (input) {
      input.addEventListener("change", function () {
        if (input.files.length) {
          var fd = new FormData();
          fd.append("file", input.files[0]);
          send(fd);
        }
      });
    }
    document.querySelectorAll("form.sample").forEach(function (form) {
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        var fd = new FormData();
        fd.append("sample", form.querySelector('[name="sample"]').value);
        send(fd);
      });
    });
  }

  // Times: the server writes UTC; show them in the viewer's zone, UTC on hover.
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var d = new Date(el.getAttribute("datetime"));
    if (isNaN(d.getTime())) return;
    el.title = el.textContent;
    el.textContent = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) +
      " " + pad(d.getHours()) + ":" + pad(d.getMinutes());
  });

  // Live feed: new classifications and the status line as they happen.
  var list = document.getElementById("live-list");
  if (list && window.EventSource) {
    var es = new EventSource("/api/v1/events");
    es.addEventListener("poster", function (e) {
      var ev = JSON.parse(e.data);
      var card = document.createElement("a");
      card.className = "card poster";
      card.href = "/posters/" + ev.id;
      var img = document.createElement("img");
      img.src = "/api/v1/posters/" + ev.id + "/thumbnail";
      img.alt = "";
      img.width = 72;
      var body = document.createElement("div");
      var tags = document.createElement("div");
      tags.className = "tags";
      (ev.tags.length ? ev.tags : []).forEach(function (t) {
        var s = document.createElement("span"); s.className = "tag"; s.textContent = t; tags.appendChild(s);
      });
      ev.top3.forEach(function (g) {
        var s = document.createElement("span"); s.className = "tag top";
        s.textContent = g.label + " " + Math.round(g.score * 100) + "%"; tags.appendChild(s);
      });
      var meta = document.createElement("div");
      meta.className = "meta";
      meta.textContent = new Date(ev.ts).toLocaleTimeString() + " · " + ev.source;
      body.appendChild(tags); body.appendChild(meta);
      card.appendChild(img); card.appendChild(body);
      list.insertBefore(card, list.firstChild);
      while (list.children.length > 24) list.removeChild(list.lastChild);
      var empty = document.getElementById("live-empty");
      if (empty) empty.remove();
    });
    es.addEventListener("status", function (e) {
      var s = JSON.parse(e.data);
      Object.keys(s).forEach(function (k) {
        var el = document.querySelector('[data-status="' + k + '"]');
        if (el) el.textContent = s[k];
      });
      var broker = document.querySelector('[data-status="broker"]');
      if (broker) broker.className = s.broker === "connected" ? "ok" : "bad";
    });
  }

  // Model page: retrain with progress, promote / roll back, import a head.
  function api(method, url, body, type) {
    var h = headers(type ? { "Content-Type": type } : {});
    return fetch(url, { method: method, body: body, headers: h, credentials: "same-origin" })
      .then(function (r) {
        return r.text().then(function (t) {
          var data = null;
          try { data = t ? JSON.parse(t) : null; } catch (e) { data = { error: t }; }
          return { ok: r.ok, status: r.status, data: data };
        });
      });
  }
  var retrain = document.getElementById("retrain");
  var retrainCancel = document.getElementById("retrain-cancel");
  var retrainStatus = document.getElementById("retrain-status");
  var retrainProgress = document.getElementById("retrain-progress");
  function showJob(j) {
    if (!retrainStatus) return;
    retrainStatus.dataset.state = j.state;
    var running = j.state === "running";
    if (retrain) retrain.disabled = running;
    if (retrainCancel) retrainCancel.hidden = !running;
    if (retrainProgress) {
      retrainProgress.hidden = !running;
      retrainProgress.max = Math.max(1, j.genres_total);
      retrainProgress.value = j.genres_done;
    }
    if (running) retrainStatus.textContent = "Retraining: " + j.phase + " (" + j.genres_done + " of " + j.genres_total + " genres)…";
    else if (j.state === "failed") retrainStatus.textContent = "Last retrain failed: " + (j.error || "unknown error");
    else if (j.state === "cancelled") retrainStatus.textContent = "Last retrain was cancelled.";
  }
  function pollJob() {
    api("GET", "/api/v1/model/retrain").then(function (r) {
      if (!r.ok) return;
      showJob(r.data);
      if (r.data.state === "running") setTimeout(pollJob, 1000);
      else if (r.data.state === "done") location.reload();
    });
  }
  if (retrainStatus && retrainStatus.dataset.state === "running") pollJob();
  if (retrain) retrain.addEventListener("click", function () {
    retrain.disabled = true;
    api("POST", "/api/v1/model/retrain").then(function (r) {
      if (r.ok) { showJob(r.data); pollJob(); }
      else { retrain.disabled = false; retrainStatus.textContent = (r.data && r.data.error) || ("HTTP " + r.status); }
    });
  });
  if (retrainCancel) retrainCancel.addEventListener("click", function () {
    api("DELETE", "/api/v1/model/retrain").then(pollJob);
  });
  var promoteResult = document.getElementById("promote-result");
  document.querySelectorAll("button.promote").forEach(function (b) {
    b.addEventListener("click", function () {
      var force = b.dataset.force === "1";
      b.disabled = true;
      api("POST", "/api/v1/model/heads/" + b.dataset.head + "/promote", JSON.stringify({ force: force }), "application/json")
        .then(function (r) {
          b.disabled = false;
          if (r.ok) { location.reload(); return; }
          if (promoteResult) { promoteResult.className = "bad"; promoteResult.textContent = (r.data && r.data.error) || ("HTTP " + r.status); }
          if (r.status === 409) {
            var forced = document.querySelector('button.promote[data-force="1"]');
            if (forced) forced.hidden = false;
          }
        });
    });
  });
  var discard = document.getElementById("discard-candidate");
  if (discard) discard.addEventListener("click", function () {
    api("POST", "/api/v1/model/candidate/discard").then(function () { location.reload(); });
  });
  var addGenre = document.getElementById("add-genre");
  if (addGenre) addGenre.addEventListener("submit", function (e) {
    e.preventDefault();
    var label = addGenre.querySelector("input[name=label]").value;
    api("POST", "/api/v1/model/genres", JSON.stringify({ label: label }), "application/json").then(function (r) {
      if (r.ok) { location.reload(); return; }
      if (promoteResult) { promoteResult.className = "bad"; promoteResult.textContent = (r.data && r.data.error) || ("HTTP " + r.status); }
    });
  });
  var headImport = document.getElementById("head-import");
  if (headImport) headImport.addEventListener("submit", function (e) {
    e.preventDefault();
    var file = headImport.querySelector("input[type=file]").files[0];
    if (!file) return;
    file.text().then(function (text) {
      return api("POST", "/api/v1/model/heads/import", text, "application/json");
    }).then(function (r) {
      if (r.ok) { location.reload(); return; }
      if (promoteResult) { promoteResult.className = "bad"; promoteResult.textContent = (r.data && r.data.error) || ("HTTP " + r.status); }
    });
  });
})();

// The little script the pages need: upload with progress, then poll until the result is ready.
// The session cookie is HttpOnly: this script never sees the API key; the browser sends the
// cookie on same-origin requests and the server turns it into the bearer key.
"use strict";

(function () {
  const POLL_MS = 1000;

  function problemText(xhrOrBody, fallback) {
    if (xhrOrBody && typeof xhrOrBody === "object" && xhrOrBody.detail) {
      return (xhrOrBody.code ? xhrOrBody.code + ": " : "") + xhrOrBody.detail;
    }
    return fallback;
  }

  function reportUrl(body) {
    return body.report_url || "/v1/verifications/" + encodeURIComponent(body.id) + "/report";
  }

  // Follows a verification until it is done or failed, telling `say` what happens.
  function follow(body, say, onFailed) {
    if (body.status === "done") {
      say("Done: " + (body.verdict || "") + ". Opening the report…", 1);
      window.location.assign(reportUrl(body));
      return;
    }
    if (body.status === "failed") {
      onFailed(problemText(body.error, "The verification failed."));
      return;
    }
    say("Verifying… (" + body.status + ")", null);
    window.setTimeout(function () {
      fetch("/v1/verifications/" + encodeURIComponent(body.id), {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      })
        .then(function (response) {
          return response.json().then(function (data) {
            if (!response.ok) throw new Error(problemText(data, "HTTP " + response.status));
            return data;
          });
        })
        .then(function (data) { follow(data, say, onFailed); })
        .catch(function (error) { onFailed("Cannot get the result: " + error.message); });
    }, POLL_MS);
  }

  function setUpUpload(form) {
    const panel = document.getElementById("progress-panel");
    const bar = document.getElementById("upload-progress");
    const status = document.getElementById("progress-status");
    const button = document.getElementById("verify-button");
    const input = form.querySelector("input[type=file]");

    function say(text, fraction) {
      panel.hidden = false;
      status.textContent = text;
      if (fraction === null) bar.removeAttribute("value");
      else bar.value = fraction;
    }
    function failed(text) {
      say(text, 0);
      status.classList.add("alert");
      button.disabled = false;
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!input.files || input.files.length === 0) {
        failed("Choose a clip first.");
        return;
      }
      status.classList.remove("alert");
      input.removeAttribute("aria-invalid");
      button.disabled = true;
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/v1/verifications");
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) {
          const done = e.loaded / e.total;
          if (done < 1) say("Uploading… " + Math.round(done * 100) + " %", done);
          else say("Uploaded. Verifying…", null);
        }
      });
      xhr.addEventListener("load", function () {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        if (xhr.status === 401) {
          window.location.assign("/ui/sign-in");
          return;
        }
        if (xhr.status >= 400 || !body) {
          failed(problemText(body, "The upload was refused (HTTP " + xhr.status + ")."));
          return;
        }
        follow(body, say, failed);
      });
      xhr.addEventListener("error", function () { failed("The upload failed: the server could not be reached."); });
      say("Uploading… 0 %", 0);
      xhr.send(new FormData(form));
    });
  }

  // A page about a verification still running: poll, then open its report.
  function setUpPoll(panel) {
    const status = panel.querySelector("[role=status]");
    const id = panel.getAttribute("data-poll").split("/").pop();
    follow(
      { id: id, status: "running", report_url: panel.getAttribute("data-report") },
      function (text) { status.textContent = text; },
      function (text) { status.textContent = text; status.classList.add("alert"); }
    );
  }

  document.addEventListener("DOMContentLoaded", function () {
    const form = document.querySelector("form[data-upload]");
    if (form) setUpUpload(form);
    const poll = document.querySelector("[data-poll]");
    if (poll) setUpPoll(poll);
    // A report still being drawn: look again in a moment.
    const wait = document.querySelector("[data-reload]");
    if (wait) window.setTimeout(function () { window.location.reload(); }, Number(wait.getAttribute("data-reload")));
  });
})();

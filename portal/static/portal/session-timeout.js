// Warns before the idle timeout logs the person out, and lets them stay
// (RGAA 13.1, WCAG 2.2.1). Progressive enhancement: without JavaScript the
// dialog never opens and the server's timeout applies as before.
//
// The server pushes the session's expiry back as requests come (at most every
// minute, and at every HEAD request: portal/accounts/sessions.py; and the
// staff's last-seen time), so "staying" is one light HEAD request to a page of
// the site; data-timeout counts from the session's last save. Other tabs of the same site are
// told through a BroadcastChannel (nothing is stored in the browser).
(function () {
  "use strict";
  var dialog = document.getElementById("session-timeout");
  if (!dialog || typeof dialog.showModal !== "function") return;
  var timeout = parseInt(dialog.getAttribute("data-timeout"), 10) * 1000;
  var warning = parseInt(dialog.getAttribute("data-warning"), 10) * 1000;
  var keepaliveUrl = dialog.getAttribute("data-keepalive-url");
  if (!(timeout > 0) || !keepaliveUrl) return;
  warning = Math.min(warning, timeout / 2);

  var warningPart = dialog.querySelector("[data-session-state=warning]");
  var expiredPart = dialog.querySelector("[data-session-state=expired]");
  var endText = dialog.querySelector("[data-session-end]");
  var extendButton = dialog.querySelector("[data-session-extend]");
  var channel = typeof BroadcastChannel === "function" ? new BroadcastChannel("portal-session") : null;
  var deadline = 0;
  var timers = [];
  var returnFocus = null;

  function clearTimers() {
    timers.forEach(clearTimeout);
    timers = [];
  }

  function show(state) {
    warningPart.hidden = state !== "warning";
    expiredPart.hidden = state !== "expired";
    dialog.setAttribute(
      "aria-labelledby",
      state === "warning" ? "session-timeout-title" : "session-expired-title"
    );
    if (!dialog.open) {
      returnFocus = document.activeElement;
      dialog.showModal();
    }
    var target = dialog.querySelector("[data-session-state=" + state + "] [data-session-focus]");
    if (target) target.focus();
  }

  function hide() {
    if (!dialog.open) return;
    dialog.close();
    if (returnFocus && typeof returnFocus.focus === "function") returnFocus.focus();
    returnFocus = null;
  }

  function warn() {
    var end = new Date(deadline);
    endText.textContent = end.toLocaleTimeString(document.documentElement.lang || "fr", {
      hour: "2-digit",
      minute: "2-digit"
    });
    show("warning");
  }

  function expire() {
    clearTimers();
    show("expired");
  }

  function schedule(newDeadline) {
    deadline = newDeadline;
    clearTimers();
    var now = Date.now();
    if (now >= deadline) return expire();
    timers.push(setTimeout(warn, Math.max(0, deadline - warning - now)));
    timers.push(setTimeout(expire, deadline - now));
    if (now < deadline - warning) hide();
  }

  function extend() {
    if (Date.now() >= deadline) return expire();
    extendButton.disabled = true;
    fetch(keepaliveUrl, {
      method: "HEAD",
      credentials: "same-origin",
      cache: "no-store",
      redirect: "manual"
    })
      .then(function () {
        schedule(Date.now() + timeout);
        if (channel) channel.postMessage({ deadline: deadline });
      })
      .catch(function () {
        // Offline or server away: the warning stays, the person may try again.
      })
      .then(function () {
        extendButton.disabled = false;
      });
  }

  extendButton.addEventListener("click", extend);
  // Escape on the warning means "I am here": stay logged in. Once expired, it just closes.
  dialog.addEventListener("cancel", function (event) {
    if (!warningPart.hidden) {
      event.preventDefault();
      extend();
    }
  });
  if (channel) {
    channel.addEventListener("message", function (event) {
      if (event.data && event.data.deadline > deadline) schedule(event.data.deadline);
    });
  }

  schedule(Date.now() + timeout);
  if (channel) channel.postMessage({ deadline: deadline });
})();

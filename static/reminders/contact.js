/*
 * The optional e-mail field for reminders on the completion screen
 * (templates/reminders/_contact_form.html). task.js fires `belief:next-visit` on document
 * once the next-visit block is on screen, with detail = {participantToken, nextVisit, slot}.
 *
 * POST /api/v1/participants/<participant-token>/contact {email, time_zone}
 *   204            -> stored: the form is replaced by a thank-you sentence
 *   400 / 409 / 4xx -> the server's message (in the page's language), the form stays
 *   network error  -> a generic message, the form stays (nothing was stored)
 */
(function () {
  "use strict";

  function zone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      return "";
    }
  }

  function attach(event) {
    var detail = event.detail || {};
    var slot = detail.slot;
    var form = slot && slot.querySelector("#reminder-form");
    if (!form || !detail.participantToken) return;
    var status = form.querySelector("#reminder-status");
    var input = form.querySelector("#reminder-email");
    var consent = form.querySelector("#reminder-consent");
    var button = form.querySelector("#reminder-submit");
    var language = document.documentElement.lang || "en";
    function say(text, isError) {
      status.textContent = text;
      status.classList.toggle("is-error", !!isError);
    }
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (!consent.checked) {
        say(form.dataset.needConsent, true);
        consent.focus();
        return;
      }
      button.disabled = true;
      fetch("/api/v1/participants/" + encodeURIComponent(detail.participantToken) + "/contact", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept-Language": language },
        body: JSON.stringify({ email: input.value, time_zone: zone() }),
        credentials: "omit",
      })
        .then(function (response) {
          if (response.status === 204) {
            status.textContent = "";
            var done = document.createElement("p");
            done.id = "reminder-saved";
            done.className = "belief-hint";
            done.setAttribute("role", "status");
            done.textContent = form.dataset.ok;
            form.replaceWith(done);
            return;
          }
          return response.json().then(function (body) {
            var message = body && body.error && body.error.message;
            say(message || form.dataset.failed, true);
            input.setAttribute("aria-invalid", "true");
            input.focus();
          });
        })
        .catch(function () {
          say(form.dataset.failed, true);
        })
        .then(function () {
          button.disabled = false;
        });
    });
  }

  document.addEventListener("belief:next-visit", attach);
})();

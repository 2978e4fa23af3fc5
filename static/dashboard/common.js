/*
 * Behaviour shared by every dashboard page. No inline script or handler anywhere:
 * the CSP allows only the site's own files, so handlers are bound here.
 * - select[data-autosubmit]: submits its form on change (the button stays for no-JS);
 * - form[data-confirm]: asks before submitting (withdrawal, removals);
 * - button[data-copy]: copies the value of the element whose id it names.
 */
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-HTTP deployments have no Clipboard API: select a temporary field and copy.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (e) {
        ok = false;
      }
      document.body.removeChild(area);
      if (ok) {
        resolve();
      } else {
        reject(new Error("copy refused"));
      }
    });
  }

  function announce(button, text) {
    var target = document.getElementById(button.getAttribute("data-status") || "copy-status");
    if (target) {
      target.textContent = text;
    }
    var original = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", original);
    button.textContent = text;
    window.setTimeout(function () {
      button.textContent = original;
    }, 2000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () {
        if (select.form) {
          select.form.submit();
        }
      });
    });

    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) {
          event.preventDefault();
        }
      });
    });

    // The staff-time form: the zone field starts as the browser's own zone.
    var zone = document.querySelector("#anchor-form input[name='zone']");
    if (zone && zone.value === "UTC" && !zone.hasAttribute("aria-invalid")) {
      try {
        zone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
      } catch (e) {
        zone.value = "UTC";
      }
    }

    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var field = document.getElementById(button.getAttribute("data-copy"));
        if (!field) {
          return;
        }
        var text = field.value !== undefined ? field.value : field.textContent;
        copyText(text).then(
          function () {
            announce(button, button.getAttribute("data-copied") || "Copied");
          },
          function () {
            if (field.select) {
              field.focus();
              field.select();
            }
            announce(button, button.getAttribute("data-failed") || "Press Ctrl+C");
          }
        );
      });
    });
  });
})();

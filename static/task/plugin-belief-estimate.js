/*
 * jsPsych 8 plugin "belief-estimate": one estimate screen of the belief-updating task
 * (E1, E2, eBR1, eBR2, memory).
 *
 * The participant types a whole percentage. A value outside [min, max], a
 * non-integer or an empty field is refused with a message in a live region and
 * never clamped or submitted. rt is screen onset to submit (performance.now);
 * onset_at is the client's clock at onset (ISO 8601).
 *
 * Also defines window.BeliefDom, the small DOM helpers the sibling plugin file
 * (plugin-belief-rating.js) reuses: load this file first.
 */
var BeliefDom = (function () {
  "use strict";

  /** el("p", {class: "x", text: "..."}, [children]) builds an element without innerHTML. */
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) return;
      if (name === "text") node.textContent = value;
      else if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    });
    (children || []).forEach(function (child) {
      if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  /** "{min} to {max}" with {min: 3, max: 77} -> "3 to 77". Unknown names stay as they are. */
  function fill(template, values) {
    return String(template).replace(/\{(\w+)\}/g, function (whole, name) {
      return Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : whole;
    });
  }

  /** The event card at the top of every trial screen. */
  function eventCard(eventText, badge, id) {
    if (!eventText) return null;
    return el("div", { class: "belief-event" }, [
      badge ? el("p", { class: "belief-badge", text: badge }) : null,
      el("p", { class: "belief-event-text", id: id || null, text: eventText }),
    ]);
  }

  /** Screen onset: both clocks, read together. */
  function onsetNow() {
    return { perf: performance.now(), iso: new Date().toISOString() };
  }

  return { el: el, fill: fill, eventCard: eventCard, onsetNow: onsetNow };
})();

var jsPsychBeliefEstimate = (function (jspsych) {
  "use strict";

  var P = jspsych.ParameterType;
  var el = BeliefDom.el;
  var fill = BeliefDom.fill;

  var info = {
    name: "belief-estimate",
    version: "1.0.0",
    parameters: {
      /** The life event, e.g. "Losing your keys" (plain text). */
      event_text: { type: P.STRING, default: "" },
      /** The question, used as the input's label (plain text). */
      prompt: { type: P.STRING, default: undefined },
      /** Lowest accepted whole number. */
      min: { type: P.INT, default: 3 },
      /** Highest accepted whole number. */
      max: { type: P.INT, default: 77 },
      /** The range stated under the question; {min} and {max} are filled in. */
      range_hint: { type: P.STRING, default: "Please enter a whole number between {min} and {max}%." },
      /** The message for a refused value; {min} and {max} are filled in. */
      error_message: { type: P.STRING, default: "Please enter a whole number between {min} and {max}." },
      /** The submit button's label. */
      button_label: { type: P.STRING, default: "Continue" },
      /** A small label above the event, e.g. "Practice"; none when null. */
      badge: { type: P.STRING, default: null },
      /** Whose risk is asked: "self" (E1, E2) or "other" (eBR); null: no banner. */
      subject: { type: P.STRING, default: null },
      /** The banner's text, e.g. "About you" / "About an average person". */
      subject_label: { type: P.STRING, default: "" },
    },
    data: {
      /** The accepted whole number. */
      value: { type: P.INT },
      /** Milliseconds from screen onset to the accepted submit. */
      rt: { type: P.INT },
      /** Client time of screen onset, ISO 8601. */
      onset_at: { type: P.STRING },
      /** How many submits were refused before this one. */
      invalid_attempts: { type: P.INT },
    },
  };

  /** The whole number typed, or null. Accepts surrounding spaces, a trailing %, full-width digits. */
  function parseWholeNumber(raw) {
    var text = String(raw == null ? "" : raw)
      .replace(/[\uFF10-\uFF19]/g, function (d) {
        return String.fromCharCode(d.charCodeAt(0) - 0xff10 + 48);
      })
      .trim()
      .replace(/\s*[%\uFF05]$/, "");
    if (!/^[0-9]{1,3}$/.test(text)) return null;
    return parseInt(text, 10);
  }

  class BeliefEstimatePlugin {
    constructor(jsPsych) {
      this.jsPsych = jsPsych;
    }

    trial(display_element, trial) {
      var ids = {
        event: "belief-estimate-event",
        input: "belief-estimate-input",
        hint: "belief-estimate-hint",
        error: "belief-estimate-error",
        subject: "belief-estimate-subject",
      };
      var subject = trial.subject === "self" || trial.subject === "other" ? trial.subject : null;
      var range = { min: trial.min, max: trial.max };
      var input = el("input", {
        id: ids.input,
        class: "belief-number",
        type: "text",
        inputmode: "numeric",
        pattern: "[0-9]*",
        autocomplete: "off",
        autocorrect: "off",
        spellcheck: "false",
        enterkeyhint: "done",
        maxlength: "4",
        "aria-describedby": [subject ? ids.subject : null, trial.event_text ? ids.event : null, ids.hint, ids.error]
          .filter(Boolean)
          .join(" "),
      });
      var error = el("p", { id: ids.error, class: "belief-error", "aria-live": "assertive" });
      var button = el("button", { type: "submit", class: "jspsych-btn belief-btn-primary", text: trial.button_label });
      var form = el("form", { class: "belief-form", novalidate: true, autocomplete: "off" }, [
        subject
          ? el("h2", { id: ids.subject, class: "belief-subject is-" + subject }, [
              el("span", { class: "belief-subject-mark", "aria-hidden": "true" }),
              el("span", { text: trial.subject_label }),
            ])
          : null,
        el("label", { for: ids.input, class: "belief-prompt", text: trial.prompt }),
        el("p", { id: ids.hint, class: "belief-hint", text: fill(trial.range_hint, range) }),
        el("div", { class: "belief-input-row" }, [input, el("span", { class: "belief-unit", "aria-hidden": "true", text: "%" })]),
        error,
        el("div", { class: "belief-actions" }, [button]),
      ]);
      display_element.replaceChildren(
        el("div", { class: "belief-screen belief-estimate" + (subject ? " is-about-" + subject : "") }, [
          BeliefDom.eventCard(trial.event_text, trial.badge, ids.event),
          form,
        ])
      );

      var onset = BeliefDom.onsetNow();
      var invalid = 0;
      var finished = false;
      var jsPsych = this.jsPsych;

      function refuse() {
        invalid += 1;
        input.setAttribute("aria-invalid", "true");
        form.classList.add("has-error");
        // Empty the live region first so the same message is announced again.
        error.textContent = "";
        setTimeout(function () {
          error.textContent = fill(trial.error_message, range);
        }, 30);
        input.focus();
        input.select();
      }

      input.addEventListener("keydown", function (e) {
        // A held Enter key must not submit twice (nor submit the next screen).
        if (e.key === "Enter" && e.repeat) e.preventDefault();
      });
      input.addEventListener("input", function () {
        if (form.classList.contains("has-error")) {
          form.classList.remove("has-error");
          input.removeAttribute("aria-invalid");
          error.textContent = "";
        }
      });
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        if (finished) return;
        var value = parseWholeNumber(input.value);
        if (value === null || value < trial.min || value > trial.max) {
          refuse();
          return;
        }
        finished = true;
        var rt = Math.round(performance.now() - onset.perf);
        input.readOnly = true;
        button.disabled = true;
        jsPsych.finishTrial({ value: value, rt: rt, onset_at: onset.iso, invalid_attempts: invalid });
      });

      input.focus();
    }
  }
  BeliefEstimatePlugin.info = info;
  BeliefEstimatePlugin.parseWholeNumber = parseWholeNumber;
  return BeliefEstimatePlugin;
})(jsPsychModule);

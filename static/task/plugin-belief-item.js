/*
 * jsPsych 8 plugin "belief-item": one questionnaire item (docs/instruments.md), a step of
 * the session like the task's. Load after plugin-belief-estimate.js (BeliefDom).
 *
 * An item with options is a group of radio buttons (arrow keys move between them, Enter or
 * Continue answers); an item with min and max takes a whole number typed in a numeric
 * field. Continue without an answer, or a number outside min..max, is refused with a
 * message in a live region and nothing is recorded. An optional item (required: false)
 * has a "Skip" button, recorded as the value null. The texts come from the instrument
 * definition; `lang` marks them when they are not in the page's language.
 */
var jsPsychBeliefItem = (function (jspsych) {
  "use strict";

  var P = jspsych.ParameterType;
  var el = BeliefDom.el;
  var fill = BeliefDom.fill;

  var info = {
    name: "belief-item",
    version: "1.0.0",
    parameters: {
      /** The instrument's name, shown above the item. */
      instrument_name: { type: P.STRING, default: "" },
      /** The instrument's instructions (the stem every item reads with). */
      instructions: { type: P.STRING, default: "" },
      /** "Question 2 of 9" (already filled in). */
      counter: { type: P.STRING, default: "" },
      /** The item's text (plain text). */
      text: { type: P.STRING, default: "" },
      /** The language of the instrument's texts; null: the page's. */
      lang: { type: P.STRING, default: null },
      /** [{value, label}]; empty for a number. */
      options: { type: P.OBJECT, array: true, default: [] },
      /** Bounds of a number (when there are no options). */
      min: { type: P.INT, default: null },
      max: { type: P.INT, default: null },
      /** The unit after the number field, e.g. "years". */
      unit: { type: P.STRING, default: "" },
      /** Whether the item may be skipped. */
      required: { type: P.BOOL, default: true },
      button_label: { type: P.STRING, default: "Continue" },
      skip_label: { type: P.STRING, default: "Skip this question" },
      /** Refusals: no option chosen; a number outside {min}..{max}. */
      choose_error: { type: P.STRING, default: "Please choose an answer." },
      number_hint: { type: P.STRING, default: "A whole number from {min} to {max}." },
      number_error: { type: P.STRING, default: "Please enter a whole number from {min} to {max}." },
    },
    data: {
      /** The option's value or the number; null when skipped. */
      value: { type: P.INT },
      /** Whether the participant skipped it. */
      skipped: { type: P.BOOL },
      /** Milliseconds from screen onset to the answer. */
      rt: { type: P.INT },
      /** Client time of screen onset, ISO 8601. */
      onset_at: { type: P.STRING },
    },
  };

  /** The whole number typed (surrounding spaces and full-width digits allowed), or null. */
  function parseInteger(raw) {
    var text = String(raw == null ? "" : raw)
      .replace(/[\uFF10-\uFF19]/g, function (d) {
        return String.fromCharCode(d.charCodeAt(0) - 0xff10 + 48);
      })
      .replace(/[\u2212\uFF0D]/g, "-")
      .trim();
    if (!/^-?[0-9]{1,5}$/.test(text)) return null;
    return parseInt(text, 10);
  }

  class BeliefItemPlugin {
    constructor(jsPsych) {
      this.jsPsych = jsPsych;
    }

    trial(display_element, trial) {
      var jsPsych = this.jsPsych;
      var numeric = !(trial.options && trial.options.length);
      var lang = trial.lang || null;
      var ids = { text: "belief-item-text", hint: "belief-item-hint", error: "belief-item-error", input: "belief-item-input" };
      var error = el("p", { id: ids.error, class: "belief-error", "aria-live": "assertive" });
      var question;
      var body;
      var input = null;
      var radios = [];
      if (numeric) {
        input = el("input", {
          id: ids.input,
          class: "belief-number",
          type: "text",
          inputmode: "numeric",
          pattern: "[0-9]*",
          autocomplete: "off",
          enterkeyhint: "done",
          maxlength: "6",
          "data-min": trial.min,
          "data-max": trial.max,
          "aria-describedby": ids.hint + " " + ids.error,
        });
        question = el("label", { for: ids.input, id: ids.text, class: "belief-prompt belief-item-text", lang: lang, text: trial.text });
        body = [
          question,
          el("p", { id: ids.hint, class: "belief-hint", text: fill(trial.number_hint, { min: trial.min, max: trial.max }) }),
          el("div", { class: "belief-input-row" }, [
            input,
            trial.unit ? el("span", { class: "belief-unit belief-item-unit", lang: lang, text: trial.unit }) : null,
          ]),
        ];
      } else {
        question = el("legend", { id: ids.text, class: "belief-prompt belief-item-text", tabindex: "-1", lang: lang, text: trial.text });
        var options = trial.options.map(function (option, i) {
          var id = "belief-item-option-" + i;
          var radio = el("input", { type: "radio", id: id, name: "belief-item", value: String(option.value), "data-value": option.value });
          radios.push(radio);
          return el("div", { class: "belief-option" }, [radio, el("label", { for: id, lang: lang, text: option.label })]);
        });
        body = [el("fieldset", { class: "belief-item-options", "aria-describedby": ids.error }, [question].concat(options))];
      }
      var button = el("button", { type: "submit", class: "jspsych-btn belief-btn-primary", text: trial.button_label });
      var skip = trial.required
        ? null
        : el("button", { type: "button", class: "jspsych-btn belief-btn-secondary belief-item-skip", text: trial.skip_label });
      var form = el("form", { class: "belief-form", novalidate: true, autocomplete: "off" }, body.concat([
        error,
        el("div", { class: "belief-actions" }, [skip, button]),
      ]));
      display_element.replaceChildren(
        el("div", { class: "belief-screen belief-item" + (numeric ? " is-number" : " is-choice") }, [
          el("div", { class: "belief-item-head" }, [
            trial.instrument_name ? el("p", { class: "belief-badge", lang: lang, text: trial.instrument_name }) : null,
            trial.counter ? el("p", { class: "belief-item-counter", text: trial.counter }) : null,
          ]),
          trial.instructions ? el("p", { class: "belief-item-instructions", lang: lang, text: trial.instructions }) : null,
          form,
        ])
      );

      var onset = BeliefDom.onsetNow();
      var finished = false;

      function refuse(message) {
        form.classList.add("has-error");
        if (input) input.setAttribute("aria-invalid", "true");
        error.textContent = "";
        setTimeout(function () {
          error.textContent = message;
        }, 30);
        if (input) {
          input.focus();
          input.select();
        } else if (radios.length) {
          radios[0].focus();
        }
      }

      function clearError() {
        if (!form.classList.contains("has-error")) return;
        form.classList.remove("has-error");
        if (input) input.removeAttribute("aria-invalid");
        error.textContent = "";
      }

      function finish(value) {
        finished = true;
        button.disabled = true;
        if (skip) skip.disabled = true;
        if (input) input.readOnly = true;
        jsPsych.finishTrial({
          value: value,
          skipped: value === null,
          rt: Math.round(performance.now() - onset.perf),
          onset_at: onset.iso,
        });
      }

      radios.forEach(function (radio) {
        radio.addEventListener("change", clearError);
        // Enter answers, as in the number field (a form does not submit from a radio).
        radio.addEventListener("keydown", function (e) {
          if (e.key !== "Enter") return;
          e.preventDefault();
          if (!e.repeat) form.requestSubmit(button);
        });
      });
      if (input) {
        input.addEventListener("input", clearError);
        input.addEventListener("keydown", function (e) {
          if (e.key === "Enter" && e.repeat) e.preventDefault();
        });
      }
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        if (finished) return;
        if (numeric) {
          var value = parseInteger(input.value);
          if (value === null || value < trial.min || value > trial.max) {
            refuse(fill(trial.number_error, { min: trial.min, max: trial.max }));
            return;
          }
          finish(value);
          return;
        }
        var checked = radios.filter(function (r) { return r.checked; })[0];
        if (!checked) {
          refuse(trial.choose_error);
          return;
        }
        finish(parseInt(checked.getAttribute("data-value"), 10));
      });
      if (skip) {
        skip.addEventListener("click", function () {
          if (!finished) finish(null);
        });
      }
      // The field for a number; the question for a choice, so that a key still held from
      // the last screen does not answer this one.
      if (input) input.focus();
      else question.focus();
    }
  }
  BeliefItemPlugin.info = info;
  BeliefItemPlugin.parseInteger = parseInteger;
  return BeliefItemPlugin;
})(jsPsychModule);

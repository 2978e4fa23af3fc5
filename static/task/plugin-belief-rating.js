/*
 * The task's other screens, as jsPsych 8 plugins (load after plugin-belief-estimate.js,
 * whose BeliefDom helpers they use):
 *
 *   jsPsychBeliefRating   "belief-rating": a 1-6 rating (confidence, vividness, ...) with
 *                         six large buttons and labelled ends; pick, then Continue.
 *   jsPsychBeliefBaseRate "belief-base-rate": "The average probability for someone like
 *                         you is 30%", Continue enabled after min_view_ms; rt = viewing time.
 *   jsPsychBeliefQuiz     "belief-quiz": the comprehension questions, one radio group each.
 *   jsPsychBeliefPage     "belief-page": a page of text (instructions, introductions, feedback,
 *                         debrief) with its buttons, the last one being the main action.
 */
var jsPsychBeliefRating = (function (jspsych) {
  "use strict";

  var P = jspsych.ParameterType;
  var el = BeliefDom.el;

  var info = {
    name: "belief-rating",
    version: "1.0.0",
    parameters: {
      /** The life event the rating is about (plain text); none when empty. */
      event_text: { type: P.STRING, default: "" },
      /** The question (plain text). */
      prompt: { type: P.STRING, default: undefined },
      /** What 1 means, shown under the first button. */
      low_label: { type: P.STRING, default: "" },
      /** What the top value means, shown under the last button. */
      high_label: { type: P.STRING, default: "" },
      /** A short instruction under the buttons. */
      hint: { type: P.STRING, default: "" },
      /** Number of points; the values are 1..points. */
      points: { type: P.INT, default: 6 },
      /** The Continue button's label. */
      button_label: { type: P.STRING, default: "Continue" },
      /** A small label above the event, e.g. "Practice"; none when null. */
      badge: { type: P.STRING, default: null },
    },
    data: {
      /** The chosen point, 1..points. */
      value: { type: P.INT },
      /** Milliseconds from screen onset to Continue. */
      rt: { type: P.INT },
      /** Client time of screen onset, ISO 8601. */
      onset_at: { type: P.STRING },
    },
  };

  class BeliefRatingPlugin {
    constructor(jsPsych) {
      this.jsPsych = jsPsych;
    }

    trial(display_element, trial) {
      var jsPsych = this.jsPsych;
      var chosen = null;
      var finished = false;
      var buttons = [];
      for (var v = 1; v <= trial.points; v++) {
        var name = String(v);
        if (v === 1 && trial.low_label) name += ", " + trial.low_label;
        if (v === trial.points && trial.high_label) name += ", " + trial.high_label;
        buttons.push(
          el("button", {
            type: "button",
            class: "belief-scale-btn",
            "data-value": v,
            "aria-pressed": "false",
            "aria-label": name,
            text: String(v),
          })
        );
      }
      var next = el("button", {
        type: "button",
        class: "jspsych-btn belief-btn-primary",
        disabled: true,
        text: trial.button_label,
      });
      var prompt = el("p", { id: "belief-rating-prompt", class: "belief-prompt", tabindex: "-1", text: trial.prompt });
      display_element.replaceChildren(
        el("div", { class: "belief-screen belief-rating" }, [
          BeliefDom.eventCard(trial.event_text, trial.badge, "belief-rating-event"),
          prompt,
          el("div", { class: "belief-scale", role: "group", "aria-labelledby": "belief-rating-prompt" }, buttons),
          el("div", { class: "belief-scale-ends", "aria-hidden": "true" }, [
            el("span", { text: trial.low_label }),
            el("span", { text: trial.high_label }),
          ]),
          trial.hint ? el("p", { class: "belief-hint", text: trial.hint }) : null,
          el("div", { class: "belief-actions" }, [next]),
        ])
      );
      var onset = BeliefDom.onsetNow();

      buttons.forEach(function (b) {
        b.addEventListener("click", function () {
          if (finished) return;
          chosen = parseInt(b.getAttribute("data-value"), 10);
          buttons.forEach(function (o) {
            o.setAttribute("aria-pressed", o === b ? "true" : "false");
          });
          next.disabled = false;
        });
      });
      next.addEventListener("click", function () {
        if (finished || chosen === null) return;
        finished = true;
        next.disabled = true;
        jsPsych.finishTrial({ value: chosen, rt: Math.round(performance.now() - onset.perf), onset_at: onset.iso });
      });
      // Focus the question, not a button: a key still held from the last screen must not answer.
      prompt.focus();
    }
  }
  BeliefRatingPlugin.info = info;
  return BeliefRatingPlugin;
})(jsPsychModule);

var jsPsychBeliefBaseRate = (function (jspsych) {
  "use strict";

  var P = jspsych.ParameterType;
  var el = BeliefDom.el;

  var info = {
    name: "belief-base-rate",
    version: "1.0.0",
    parameters: {
      /** The life event (plain text). */
      event_text: { type: P.STRING, default: "" },
      /** The base rate in percent, when already known. */
      base_rate: { type: P.INT, default: null },
      /** When base_rate is null: a function returning a Promise of the base rate (the E1 answer). */
      get_base_rate: { type: P.FUNCTION, default: null },
      /** The sentence; {br} is replaced by the base rate. */
      sentence: { type: P.STRING, default: "The average probability for someone like you is {br}%." },
      /** Shown while waiting for the base rate. */
      waiting_text: { type: P.STRING, default: "Saving your answer…" },
      /** Shown instead while the connection is down: a heading and its paragraphs. */
      offline_title: { type: P.STRING, default: "" },
      offline_text: { type: P.STRING, array: true, default: [] },
      /**
       * watch_connection(cb) calls cb(offline) now and on every change of the connection, and
       * returns a function that stops it; null: the waiting text never changes.
       */
      watch_connection: { type: P.FUNCTION, default: null },
      /** Continue stays disabled this long after the base rate appears (ms). */
      min_view_ms: { type: P.INT, default: 2000 },
      /** The Continue button's label. */
      button_label: { type: P.STRING, default: "Continue" },
      /** A small label above the event, e.g. "Practice"; none when null. */
      badge: { type: P.STRING, default: null },
    },
    data: {
      /** The base rate displayed. */
      value: { type: P.INT },
      /** Viewing time: from the base rate's onset to Continue (ms). */
      rt: { type: P.INT },
      /** Client time of the base rate's onset, ISO 8601. */
      onset_at: { type: P.STRING },
      /** How long the screen waited for the base rate to arrive (ms). */
      wait_ms: { type: P.INT },
    },
  };

  class BeliefBaseRatePlugin {
    constructor(jsPsych) {
      this.jsPsych = jsPsych;
    }

    trial(display_element, trial) {
      var jsPsych = this.jsPsych;
      var shownAt = performance.now();
      var live = true;
      var card = BeliefDom.eventCard(trial.event_text, trial.badge, "belief-br-event");

      var stopWatching = null;

      function show(br) {
        if (!live) return;
        if (stopWatching) stopWatching();
        stopWatching = null;
        var parts = String(trial.sentence).split("{br}");
        var sentence = el("p", { class: "belief-br-sentence", id: "belief-br-sentence" }, [parts[0]]);
        for (var i = 1; i < parts.length; i++) {
          // Keep the unit with the number ("30%", "30 %"): both are the figure.
          var unit = /^[\s\u00a0\u202f]?%/.exec(parts[i]);
          var figure = String(br) + (unit ? unit[0] : "");
          sentence.appendChild(el("strong", { class: "belief-br-value", text: figure }));
          sentence.appendChild(document.createTextNode(parts[i].slice(unit ? unit[0].length : 0)));
        }
        var next = el("button", {
          type: "button",
          class: "jspsych-btn belief-btn-primary",
          disabled: true,
          "aria-describedby": "belief-br-sentence",
          text: trial.button_label,
        });
        var box = el("div", { class: "belief-br", role: "status" }, [sentence]);
        display_element.replaceChildren(
          el("div", { class: "belief-screen belief-base-rate" }, [card, box, el("div", { class: "belief-actions" }, [next])])
        );
        var onset = BeliefDom.onsetNow();
        var waited = Math.round(onset.perf - shownAt);
        var finished = false;

        function enable() {
          // Timers may fire a hair early; the server checks rt >= min_view_ms.
          var left = trial.min_view_ms - (performance.now() - onset.perf);
          if (left > 0) {
            jsPsych.pluginAPI.setTimeout(enable, Math.ceil(left) + 1);
            return;
          }
          next.disabled = false;
          next.focus();
        }
        jsPsych.pluginAPI.setTimeout(enable, trial.min_view_ms);
        next.addEventListener("click", function () {
          if (finished || next.disabled) return;
          finished = true;
          live = false;
          next.disabled = true;
          jsPsych.finishTrial({
            value: br,
            rt: Math.ceil(performance.now() - onset.perf),
            onset_at: onset.iso,
            wait_ms: waited,
          });
        });
      }

      if (trial.base_rate !== null && trial.base_rate !== undefined) {
        show(trial.base_rate);
        return;
      }
      // The base rate comes with the server's answer to E1: offline, the screen says what it
      // waits for, that nothing is lost, and that it goes on by itself (it does, on arrival).
      var waiting = el("div", { class: "belief-waiting-box", role: "status" });
      var offlineNow = null;
      function renderWaiting(offline) {
        if (!live || !display_element.contains(waiting)) {
          if (stopWatching) stopWatching();
          stopWatching = null;
          return;
        }
        offline = Boolean(offline && trial.offline_title);
        if (offline === offlineNow) return;
        offlineNow = offline;
        waiting.classList.toggle("is-offline", offline);
        if (!offline) {
          waiting.replaceChildren(el("p", { class: "belief-waiting", text: trial.waiting_text }));
          return;
        }
        var children = [el("h2", { class: "belief-waiting-title", text: trial.offline_title })];
        (trial.offline_text || []).forEach(function (text) {
          children.push(el("p", { text: text }));
        });
        waiting.replaceChildren.apply(waiting, children);
      }
      display_element.replaceChildren(el("div", { class: "belief-screen belief-base-rate" }, [card, waiting]));
      renderWaiting(false);
      if (typeof trial.watch_connection === "function") stopWatching = trial.watch_connection(renderWaiting);
      Promise.resolve(trial.get_base_rate ? trial.get_base_rate() : null).then(
        function (br) {
          if (typeof br === "number") show(br);
        },
        function () {
          /* the page reloads the session state when an answer is refused */
        }
      );
    }
  }
  BeliefBaseRatePlugin.info = info;
  return BeliefBaseRatePlugin;
})(jsPsychModule);

var jsPsychBeliefQuiz = (function (jspsych) {
  "use strict";

  var P = jspsych.ParameterType;
  var el = BeliefDom.el;

  var info = {
    name: "belief-quiz",
    version: "1.0.0",
    parameters: {
      /** The page heading (plain text). */
      heading: { type: P.STRING, default: "" },
      /** [{prompt, options: [text, ...], correct: index}, ...] (plain text). */
      questions: { type: P.COMPLEX, array: true, default: undefined },
      /** "Question {n}", with {n} the question's number. */
      question_label: { type: P.STRING, default: "Question {n}" },
      /** The submit button's label. */
      button_label: { type: P.STRING, default: "Check my answers" },
    },
    data: {
      /** The option index chosen for each question, null when unanswered. */
      answers: { type: P.INT, array: true },
      /** The indices of the questions answered wrongly or not at all. */
      wrong: { type: P.INT, array: true },
      /** Whether every answer was right. */
      all_correct: { type: P.BOOL },
      /** Milliseconds from onset to submit. */
      rt: { type: P.INT },
    },
  };

  class BeliefQuizPlugin {
    constructor(jsPsych) {
      this.jsPsych = jsPsych;
    }

    trial(display_element, trial) {
      var jsPsych = this.jsPsych;
      var fieldsets = trial.questions.map(function (q, qi) {
        var options = q.options.map(function (text, oi) {
          var id = "belief-quiz-" + qi + "-" + oi;
          return el("div", { class: "belief-option" }, [
            el("input", { type: "radio", id: id, name: "belief-quiz-" + qi, value: String(oi) }),
            el("label", { for: id, text: text }),
          ]);
        });
        return el("fieldset", { class: "belief-quiz-question" }, [
          el("legend", {}, [
            el("span", { class: "belief-quiz-number", text: BeliefDom.fill(trial.question_label, { n: qi + 1 }) }),
            el("span", { class: "belief-quiz-prompt", text: q.prompt }),
          ]),
        ].concat(options));
      });
      var button = el("button", { type: "submit", class: "jspsych-btn belief-btn-primary", text: trial.button_label });
      var heading = el("h1", { class: "belief-heading", tabindex: "-1", text: trial.heading });
      var form = el("form", { class: "belief-screen belief-quiz", novalidate: true }, [heading]
        .concat(fieldsets)
        .concat([el("div", { class: "belief-actions" }, [button])]));
      display_element.replaceChildren(form);
      var start = performance.now();
      heading.focus();

      form.addEventListener("submit", function (e) {
        e.preventDefault();
        var answers = trial.questions.map(function (q, qi) {
          var checked = form.querySelector('input[name="belief-quiz-' + qi + '"]:checked');
          return checked ? parseInt(checked.value, 10) : null;
        });
        var wrong = [];
        answers.forEach(function (a, qi) {
          if (a !== trial.questions[qi].correct) wrong.push(qi);
        });
        button.disabled = true;
        jsPsych.finishTrial({
          answers: answers,
          wrong: wrong,
          all_correct: wrong.length === 0,
          rt: Math.round(performance.now() - start),
        });
      });
    }
  }
  BeliefQuizPlugin.info = info;
  return BeliefQuizPlugin;
})(jsPsychModule);

var jsPsychBeliefPage = (function (jspsych) {
  "use strict";

  var P = jspsych.ParameterType;
  var el = BeliefDom.el;

  var info = {
    name: "belief-page",
    version: "1.0.0",
    parameters: {
      /** The page heading (plain text). */
      heading: { type: P.STRING, default: "" },
      /** Paragraphs before the list (plain text). */
      paragraphs: { type: P.STRING, array: true, default: [] },
      /** A bulleted list, shown when not empty (plain text). */
      list: { type: P.STRING, array: true, default: [] },
      /** Paragraphs after the list (plain text). */
      closing: { type: P.STRING, array: true, default: [] },
      /** Button labels, left to right; the last one is the main action. */
      choices: { type: P.STRING, array: true, default: ["Continue"] },
      /** Announce the page at once to screen readers (for feedback that needs action). */
      alert: { type: P.BOOL, default: false },
    },
    data: {
      /** The index of the button pressed. */
      response: { type: P.INT },
      /** Milliseconds from onset to the press. */
      rt: { type: P.INT },
    },
  };

  class BeliefPagePlugin {
    constructor(jsPsych) {
      this.jsPsych = jsPsych;
    }

    trial(display_element, trial) {
      var jsPsych = this.jsPsych;
      var last = trial.choices.length - 1;
      var buttons = trial.choices.map(function (label, i) {
        return el("button", {
          type: "button",
          class: "jspsych-btn " + (i === last ? "belief-btn-primary" : "belief-btn-secondary"),
          "data-choice": i,
          text: label,
        });
      });
      var heading = trial.heading ? el("h1", { class: "belief-heading", tabindex: "-1", text: trial.heading }) : null;
      var paragraph = function (text) {
        return el("p", { text: text });
      };
      display_element.replaceChildren(
        el("div", { class: "belief-screen belief-page", role: trial.alert ? "alert" : null }, [heading]
          .concat(trial.paragraphs.map(paragraph))
          .concat(trial.list.length ? [el("ul", { class: "belief-list" }, trial.list.map(function (item) {
            return el("li", { text: item });
          }))] : [])
          .concat(trial.closing.map(paragraph))
          .concat([el("div", { class: "belief-actions" }, buttons)]))
      );
      var start = performance.now();
      var finished = false;
      buttons.forEach(function (b, i) {
        b.addEventListener("click", function () {
          if (finished) return;
          finished = true;
          buttons.forEach(function (o) {
            o.disabled = true;
          });
          jsPsych.finishTrial({ response: i, rt: Math.round(performance.now() - start) });
        });
      });
      if (heading) heading.focus();
    }
  }
  BeliefPagePlugin.info = info;
  return BeliefPagePlugin;
})(jsPsychModule);

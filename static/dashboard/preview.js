/*
 * The task preview: the participant's screens in order, with the study's texts and
 * settings, and nothing sent anywhere. Answers are kept in memory and listed below the
 * frame, as the server would store them. The wording comes from the task's own strings
 * (trials/ui_strings.py), handed over in the preview-config JSON block.
 */
(function () {
  "use strict";

  var source = document.getElementById("preview-config");
  if (!source) {
    return;
  }
  var config = JSON.parse(source.textContent);
  var S = config.strings || {};
  var stage = document.getElementById("preview-stage");
  var progressBar = document.getElementById("preview-progress");
  var logBody = document.getElementById("preview-log");
  var RATINGS = ["vividness", "familiarity", "experience", "arousal", "negativity"];
  // task.js: each question's options in display order and the index of the right one.
  var QUIZ = [
    ["quiz_1", ["quiz_1_wrong_a", "quiz_1_right", "quiz_1_wrong_b"], 1],
    ["quiz_2", ["quiz_2_right", "quiz_2_wrong_a", "quiz_2_wrong_b"], 0],
    ["quiz_3", ["quiz_3_wrong_a", "quiz_3_wrong_b", "quiz_3_right"], 2],
  ];

  function t(key, values) {
    var text = Object.prototype.hasOwnProperty.call(S, key) ? S[key] : key;
    if (values) {
      Object.keys(values).forEach(function (name) {
        text = text.split("{" + name + "}").join(String(values[name]));
      });
    }
    return text;
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === "text") {
        node.textContent = attrs[name];
      } else if (name === "className") {
        node.className = attrs[name];
      } else {
        node.setAttribute(name, attrs[name]);
      }
    });
    (children || []).forEach(function (child) {
      if (child) {
        node.appendChild(child);
      }
    });
    return node;
  }

  function shuffle(items) {
    var copy = items.slice();
    for (var i = copy.length - 1; i > 0; i--) {
      var j = Math.floor(Math.random() * (i + 1));
      var tmp = copy[i];
      copy[i] = copy[j];
      copy[j] = tmp;
    }
    return copy;
  }

  // ------------------------------------------------------------ the plan

  var practice = config.events.filter(function (e) { return e.practice; });
  var main = config.events.filter(function (e) { return !e.practice; });
  var order1 = shuffle(main);
  var order2 = shuffle(main);
  var brs = {};
  var e1s = {};
  var planned = {};
  if (config.br_mode === "adaptive") {
    var valences = shuffle(order1.map(function (_e, i) { return i % 2 ? "bad" : "good"; }));
    order1.forEach(function (e, i) { planned[e.code] = valences[i]; });
  }

  var screens = [];
  function add(fn) { screens.push(fn); }

  add(consentScreen);
  add(instructionsScreen);
  add(quizScreen);
  if (practice.length) {
    add(pageScreen.bind(null, "practice_heading", ["practice_intro"]));
    practice.forEach(function (e) { block1Steps(e, true); });
  }
  add(pageScreen.bind(null, "block1_heading", ["block1_intro"]));
  order1.forEach(function (e) { block1Steps(e, false); });
  add(pageScreen.bind(null, "block2_heading", ["block2_intro"]));
  order2.forEach(function (e) {
    add(estimateScreen.bind(null, e, "e2", "prompt_e", false));
    if (config.collect_ebr) {
      add(estimateScreen.bind(null, e, "ebr2", "prompt_ebr", false));
    }
  });
  if (config.memory_test) {
    add(pageScreen.bind(null, "memory_heading", ["memory_intro"]));
    order1.forEach(function (e) { add(estimateScreen.bind(null, e, "memory", "prompt_memory", false)); });
  }
  if (config.ratings) {
    add(pageScreen.bind(null, "ratings_heading", ["ratings_intro"]));
    order2.forEach(function (e) {
      RATINGS.forEach(function (phase) { add(ratingScreen.bind(null, e, phase)); });
    });
  }
  if (config.debrief_required) {
    add(debriefScreen);
  }
  add(completionScreen);

  function block1Steps(e, isPractice) {
    add(estimateScreen.bind(null, e, "e1", "prompt_e", isPractice));
    if (config.collect_ebr) {
      add(estimateScreen.bind(null, e, "ebr1", "prompt_ebr", isPractice));
    }
    add(baseRateScreen.bind(null, e, isPractice));
    if (config.collect_confidence) {
      add(ratingScreen.bind(null, e, "confidence", isPractice));
    }
  }

  // ------------------------------------------------------------ running it

  var index = 0;
  var onset = 0;

  function show(i) {
    index = i;
    progressBar.style.width = Math.round((100 * i) / (screens.length - 1)) + "%";
    stage.textContent = "";
    onset = performance.now();
    screens[i]();
    var focus = stage.querySelector("input, button");
    if (focus) {
      focus.focus();
    }
  }

  function next() {
    if (index < screens.length - 1) {
      show(index + 1);
    }
  }

  function record(event, phase, value) {
    var rt = Math.round(performance.now() - onset);
    var empty = logBody.querySelector(".empty");
    if (empty) {
      logBody.textContent = "";
    }
    logBody.appendChild(
      el("tr", {}, [
        el("td", { text: event }),
        el("td", { text: phase }),
        el("td", { className: "num", text: String(value) }),
        el("td", { className: "num", text: String(rt) }),
      ])
    );
  }

  function button(label, handler, primary) {
    var b = el("button", { type: "button", text: label, className: primary === false ? "secondary" : "" });
    b.addEventListener("click", handler);
    return b;
  }

  function consentScreen() {
    stage.appendChild(el("h1", { text: config.title }));
    config.consent.split(/\n\s*\n/).forEach(function (para) {
      stage.appendChild(el("p", { text: para }));
    });
    stage.appendChild(button(t("start"), next));
  }

  function instructionsScreen() {
    var scale = { min: config.scale.min, max: config.scale.max };
    stage.appendChild(el("h1", { text: t("instructions_heading_1") }));
    stage.appendChild(el("p", { text: t("instructions_1_a") }));
    stage.appendChild(el("p", { text: t("instructions_1_b", scale) }));
    stage.appendChild(el("h2", { text: t("instructions_heading_2") }));
    stage.appendChild(el("p", { text: t("instructions_2_a") }));
    stage.appendChild(el("p", { text: t("instructions_2_b") }));
    if (config.collect_ebr) {
      stage.appendChild(el("p", { text: t("instructions_ebr") }));
    }
    if (config.collect_confidence) {
      stage.appendChild(el("p", { text: t("instructions_confidence") }));
    }
    stage.appendChild(el("h2", { text: t("instructions_heading_3") }));
    stage.appendChild(el("p", { text: t("instructions_3_a") }));
    if (config.memory_test) {
      stage.appendChild(el("p", { text: t("instructions_memory") }));
    }
    if (config.ratings) {
      stage.appendChild(el("p", { text: t("instructions_ratings") }));
    }
    stage.appendChild(el("p", { text: t("instructions_3_b") }));
    stage.appendChild(el("p", { text: t("instructions_4_a") }));
    stage.appendChild(button(t("continue"), next));
  }

  function quizScreen() {
    stage.appendChild(el("h1", { text: t("quiz_heading") }));
    var form = el("form", { novalidate: "" });
    QUIZ.forEach(function (q, qi) {
      var set = el("fieldset", {}, [el("legend", { text: t("quiz_question", { n: qi + 1 }) + ": " + t(q[0]) })]);
      q[1].forEach(function (option, oi) {
        var id = "pq-" + qi + "-" + oi;
        var input = el("input", { type: "radio", name: "q" + qi, id: id, value: String(oi) });
        set.appendChild(el("div", { className: "field check-field" }, [el("label", { for: id }, [input, el("span", { text: " " + t(option) })])]));
      });
      form.appendChild(set);
    });
    var feedback = el("p", { className: "error", role: "alert" });
    form.appendChild(feedback);
    form.appendChild(el("button", { type: "submit", text: t("quiz_submit") }));
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var wrong = QUIZ.filter(function (q, qi) {
        var chosen = form.querySelector("input[name=q" + qi + "]:checked");
        return !chosen || Number(chosen.value) !== q[2];
      });
      if (wrong.length) {
        feedback.textContent = t("quiz_feedback_intro") + " " + wrong.map(function (q) { return t(q[0]); }).join(" · ") + " " + t("quiz_feedback_retry");
        return;
      }
      next();
    });
    stage.appendChild(form);
  }

  function pageScreen(heading, paragraphs) {
    stage.appendChild(el("h1", { text: t(heading) }));
    paragraphs.forEach(function (key) { stage.appendChild(el("p", { text: t(key) })); });
    stage.appendChild(button(t("continue"), next));
  }

  function eventHeader(e, isPractice) {
    if (isPractice) {
      stage.appendChild(el("span", { className: "preview-badge", text: t("practice_badge") }));
    }
    stage.appendChild(el("p", { className: "preview-event", text: e.text }));
  }

  function estimateScreen(e, phase, promptKey, isPractice) {
    eventHeader(e, isPractice);
    var min = config.scale.min;
    var max = config.scale.max;
    var id = "preview-estimate";
    var form = el("form", { novalidate: "" });
    form.appendChild(el("label", { for: id, text: t(promptKey) }));
    var input = el("input", { type: "number", id: id, min: String(min), max: String(max), step: "1", inputmode: "numeric", "aria-describedby": "preview-hint" });
    form.appendChild(el("div", {}, [input, el("span", { text: " %" })]));
    form.appendChild(el("p", { id: "preview-hint", className: "muted small", text: t("range_hint", { min: min, max: max }) }));
    var error = el("p", { className: "error", role: "alert" });
    form.appendChild(error);
    form.appendChild(el("button", { type: "submit", text: t("next") }));
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var value = Number(input.value);
      if (input.value === "" || !Number.isInteger(value) || value < min || value > max) {
        error.textContent = t("range_error", { min: min, max: max });
        input.setAttribute("aria-invalid", "true");
        return;
      }
      if (phase === "e1") {
        e1s[e.code] = value;
      }
      record(e.code, phase, value);
      next();
    });
    stage.appendChild(form);
  }

  function baseRate(e, isPractice) {
    if (brs[e.code] !== undefined) {
      return brs[e.code];
    }
    var br = e.base_rate;
    if (config.br_mode === "adaptive" && !isPractice) {
      var e1 = e1s[e.code];
      var min = config.scale.min;
      var max = config.scale.max;
      var wanted = planned[e.code] || "good";
      var tries = [wanted, wanted === "good" ? "bad" : "good"];
      for (var k = 0; k < tries.length; k++) {
        var sign = tries[k] === "good" ? -1 : 1;
        var options = [];
        for (var d = config.adaptive_d[0]; d <= config.adaptive_d[1]; d++) {
          if (e1 + sign * d >= min && e1 + sign * d <= max) {
            options.push(e1 + sign * d);
          }
        }
        if (options.length) {
          br = options[Math.floor(Math.random() * options.length)];
          break;
        }
      }
    }
    brs[e.code] = br;
    return br;
  }

  function baseRateScreen(e, isPractice) {
    eventHeader(e, isPractice);
    var br = baseRate(e, isPractice);
    stage.appendChild(el("p", { className: "preview-br", text: t("br_sentence", { br: br }) }));
    var go = button(t("continue"), function () {
      record(e.code, "br", br);
      next();
    });
    go.disabled = true;
    stage.appendChild(go);
    window.setTimeout(function () {
      go.disabled = false;
      go.focus();
    }, config.min_br_view_ms);
  }

  function ratingScreen(e, phase, isPractice) {
    eventHeader(e, isPractice);
    stage.appendChild(el("p", { text: t(phase + "_prompt") }));
    var chosen = null;
    var row = el("div", { className: "preview-scale", role: "group", "aria-label": t(phase + "_prompt") });
    var go = button(t("continue"), function () {
      record(e.code, phase, chosen);
      next();
    });
    go.disabled = true;
    for (var v = 1; v <= 6; v++) {
      (function (value) {
        var b = el("button", { type: "button", className: "secondary", "aria-pressed": "false", text: String(value) });
        b.addEventListener("click", function () {
          chosen = value;
          row.querySelectorAll("button").forEach(function (other) { other.setAttribute("aria-pressed", "false"); });
          b.setAttribute("aria-pressed", "true");
          go.disabled = false;
        });
        row.appendChild(b);
      })(v);
    }
    stage.appendChild(row);
    stage.appendChild(el("p", { className: "muted small", text: "1 = " + t(phase + "_low") + " · 6 = " + t(phase + "_high") }));
    stage.appendChild(go);
  }

  function debriefScreen() {
    stage.appendChild(el("h1", { text: t("debrief_heading") }));
    (config.debrief || t("debrief_default")).split(/\n\s*\n/).forEach(function (para) {
      stage.appendChild(el("p", { text: para }));
    });
    stage.appendChild(button(t("continue"), next));
  }

  function completionScreen() {
    stage.appendChild(el("h1", { text: t("completion_heading") }));
    stage.appendChild(el("p", { text: t("session_complete") }));
    stage.appendChild(el("p", { text: t("completion_code", { code: config.completion_code }) }));
    stage.appendChild(el("p", { text: t("completion_close") }));
  }

  show(0);
})();

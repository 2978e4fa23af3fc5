/*
 * The participant task page (/t/<token>/).
 *
 * Reads its settings from <script id="task-config" type="application/json">,
 * sends any answers a previous page load left in the queue, reads the session
 * state from the server, and runs the steps still to do with jsPsych. The
 * server is the truth about where the participant is: a reload, a second tab or
 * a refused answer all end in "read the state again and continue from there".
 *
 * No inline script and no eval: the page runs under a strict Content-Security-Policy.
 */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("task-config").textContent);
  var S = config.strings || {};
  var el = BeliefDom.el;
  var fill = BeliefDom.fill;
  var apiBase = String(config.api_base || "/api/v1").replace(/\/$/, "");
  var sessionUrl = apiBase + "/sessions/" + encodeURIComponent(config.token);
  // Where the requests go: the server, or the stand-in the dashboard's preview installs
  // (static/dashboard/preview.js), which answers in the page and sends nothing. Both the
  // page's own requests and the answer queue's go through it.
  var transport = window.BeliefTaskTransport || { fetch: window.fetch.bind(window), storage: undefined };
  var queue = BeliefQueue.create({
    token: config.token,
    apiBase: apiBase,
    fetch: transport.fetch,
    storage: transport.storage,
  });

  var stage = document.getElementById("task-stage");
  var statusLine = document.getElementById("task-status");
  var progressBar = document.getElementById("task-progress");
  var progressFill = document.getElementById("task-progress-fill");

  var QUIZ = [
    // [question, options in display order, index of the right option]
    ["quiz_1", ["quiz_1_wrong_a", "quiz_1_right", "quiz_1_wrong_b"], 1],
    ["quiz_2", ["quiz_2_right", "quiz_2_wrong_a", "quiz_2_wrong_b"], 0],
    ["quiz_3", ["quiz_3_wrong_a", "quiz_3_wrong_b", "quiz_3_right"], 2],
  ];

  var quizOrders = null; // each question's option order at the last attempt

  /**
   * The quiz's questions for one attempt: the options in a new order each time, the right
   * one never where it just was, so that retrying cannot learn positions instead of answers.
   */
  function shuffledQuiz() {
    var previous = quizOrders;
    quizOrders = QUIZ.map(function (q, qi) {
      var order = q[1].map(function (_, i) {
        return i;
      });
      for (var i = order.length - 1; i > 0; i--) {
        var j = Math.floor(Math.random() * (i + 1));
        var swap = order[i];
        order[i] = order[j];
        order[j] = swap;
      }
      if (previous && order.indexOf(q[2]) === previous[qi].indexOf(q[2])) order.push(order.shift());
      return order;
    });
    return QUIZ.map(function (q, qi) {
      var order = quizOrders[qi];
      return {
        prompt: t(q[0]),
        options: order.map(function (i) {
          return t(q[1][i]);
        }),
        correct: order.indexOf(q[2]),
      };
    });
  }

  /** A translated string; {name} placeholders filled from values. */
  function t(key, values) {
    var s = Object.prototype.hasOwnProperty.call(S, key) ? S[key] : key;
    return values ? fill(s, values) : s;
  }

  function sleep(ms) {
    return new Promise(function (resolve) {
      setTimeout(resolve, ms);
    });
  }

  function backoffMs(attempt) {
    var ceiling = Math.min(10000, 500 * Math.pow(2, attempt - 1));
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  // ---------------------------------------------------------------- page frame

  var progress = { base: 0, answered: 0, total: 0 };

  function renderProgress(forceDone) {
    var total = progress.total;
    var done = forceDone ? total : Math.min(total, progress.base + progress.answered);
    var pct = total ? Math.round((100 * done) / total) : 0;
    progressBar.setAttribute("aria-valuemin", "0");
    progressBar.setAttribute("aria-valuemax", String(total));
    progressBar.setAttribute("aria-valuenow", String(done));
    progressBar.setAttribute("aria-valuetext", pct + "%");
    progressFill.style.width = pct + "%";
  }

  var savingTimer = null;
  function setStatus(kind, text) {
    if (savingTimer) {
      clearTimeout(savingTimer);
      savingTimer = null;
    }
    statusLine.className = "task-status" + (kind ? " is-" + kind : "");
    if (statusLine.textContent !== text) statusLine.textContent = text;
  }

  // While the final "Saving your answers…" screen is up, the status line does not say it again.
  var savingOnScreen = false;

  queue.onStatusChange(function (s) {
    if (s.state === "offline") {
      setStatus("offline", t("offline"));
    } else if (s.state === "saving") {
      if (savingOnScreen) {
        setStatus("", "");
      } else if (statusLine.classList.contains("is-offline")) {
        setStatus("saving", t("saving")); // back online, sending the backlog
      } else if (!savingTimer && !statusLine.classList.contains("is-saving")) {
        // Most saves take a few ms: say "Saving…" only when one takes long enough to notice.
        savingTimer = setTimeout(function () {
          savingTimer = null;
          if (queue.state() === "saving") setStatus("saving", t("saving"));
        }, 600);
      }
    } else if (s.state === "idle") {
      setStatus("", "");
    }
    // "error": the page reloads the session state and says so on screen.
  });

  /** Replace the stage with one calm message screen. */
  function showScreen(children, kind) {
    var box = el("div", { class: "belief-screen task-message" + (kind ? " is-" + kind : "") }, children);
    stage.replaceChildren(box);
    var heading = box.querySelector("h1");
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus();
    }
    return box;
  }

  function showLoading(text) {
    showScreen([el("p", { class: "belief-waiting", role: "status", text: text || t("loading") })]);
  }

  function showFatal(message) {
    var reload = el("button", { type: "button", class: "jspsych-btn belief-btn-primary", text: t("reload") });
    reload.addEventListener("click", function () {
      window.location.reload();
    });
    setStatus("", "");
    showScreen([el("p", { role: "alert", text: message }), el("div", { class: "belief-actions" }, [reload])], "error");
  }

  function showClosed() {
    setStatus("", "");
    showScreen([el("p", { text: t("session_closed") })]);
  }

  function showCompletion(completion, atLoad) {
    progressFill.classList.add("is-complete");
    renderProgress(true);
    setStatus("", "");
    var redirect = completion.redirect_url || "";
    var nextVisit = completion.next_visit || null;
    // With a visit still to come, the way back is shown first; the recruiter's page is a link.
    if (redirect && !atLoad && !nextVisit) {
      showScreen([el("p", { class: "belief-waiting", role: "status", text: t("redirecting") })]);
      window.location.assign(redirect);
      return;
    }
    var parts = t("completion_code").split("{code}");
    var line = el("p", { class: "task-code-line" }, [parts[0]]);
    for (var i = 1; i < parts.length; i++) {
      line.appendChild(el("strong", { class: "task-code", id: "completion-code", text: completion.completion_code }));
      line.appendChild(document.createTextNode(parts[i]));
    }
    var children = [el("h1", { class: "belief-heading", text: t("completion_heading") })];
    if (atLoad) children.push(el("p", { text: t("session_complete") }));
    children.push(line);
    if (redirect) {
      children.push(el("div", { class: "belief-actions" }, [
        el("a", { class: "jspsych-btn belief-btn-primary", href: redirect, text: t("redirect_link") }),
      ]));
    } else {
      var copy = el("button", { type: "button", class: "jspsych-btn belief-btn-secondary", text: t("copy_code") });
      copy.addEventListener("click", function () {
        copyText(completion.completion_code, "completion-code").then(function () {
          copy.textContent = t("copied");
        });
      });
      children.push(el("p", { text: t("completion_code_help") }));
      children.push(el("div", { class: "belief-actions" }, [copy]));
      if (!nextVisit) children.push(el("p", { class: "belief-hint", text: t("completion_close") }));
    }
    var block = nextVisit ? nextVisitBlock(nextVisit) : null;
    if (block) children.push(block);
    showScreen(children, "complete");
    if (block) {
      // The hook of the reminders' optional e-mail field (templates/trials/_next_visit_contact.html).
      var token = String(nextVisit.url || "").split("/r/")[1] || "";
      document.dispatchEvent(new CustomEvent("belief:next-visit", {
        detail: {
          participantToken: token.split("/")[0],
          nextVisit: nextVisit,
          slot: document.getElementById("next-visit-contact"),
        },
      }));
    }
  }

  var serverNow = window.BeliefWhen ? BeliefWhen.serverClock(config.server_now) : function () { return new Date(); };

  /** The way back to the next visit: its window, the return link, calendar file and QR code. */
  function nextVisitBlock(visit) {
    var template = document.getElementById("next-visit-template");
    if (!template || !window.BeliefWhen) return null;
    var block = template.content.firstElementChild.cloneNode(true);
    var text = BeliefWhen.describe(visit, { language: config.language, strings: S, now: serverNow() });
    block.querySelector("#next-visit-window").textContent = text.sentence;
    block.querySelector("#next-visit-zone").textContent = text.zone;
    var link = block.querySelector("#return-link");
    if (visit.url) link.value = visit.url;
    // No calendar file while the research team has not set the time (it would be a 404).
    if (!visit.opens_at) block.querySelector("#next-visit-calendar").parentNode.remove();
    var copy = block.querySelector("#copy-return-link");
    copy.addEventListener("click", function () {
      copyText(link.value, "return-link").then(function () {
        copy.textContent = t("copied");
      });
    });
    return block;
  }

  function copyText(text, nodeId) {
    if (navigator.clipboard && navigator.clipboard.writeText) {
      return navigator.clipboard.writeText(text).catch(function () {
        return selectNode(nodeId);
      });
    }
    return Promise.resolve(selectNode(nodeId));
  }

  function selectNode(nodeId) {
    // No clipboard API (plain http): select the text so a long-press or Ctrl+C copies it.
    var node = document.getElementById(nodeId);
    if (!node) return;
    if (typeof node.select === "function") {
      node.select();
      return;
    }
    if (!window.getSelection) return;
    var range = document.createRange();
    range.selectNodeContents(node);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  // ---------------------------------------------------------------- server

  /** One request; status 0 when the network failed or timed out. */
  function request(method, url) {
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = controller ? setTimeout(function () { controller.abort(); }, 20000) : null;
    return transport.fetch(url, {
      method: method,
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      cache: "no-store",
      signal: controller ? controller.signal : undefined,
    }).then(
      function (res) {
        clearTimeout(timer);
        return res.text().then(function (text) {
          var body = null;
          try {
            body = text ? JSON.parse(text) : null;
          } catch (e) {
            body = null;
          }
          return { status: res.status, body: body };
        });
      },
      function () {
        clearTimeout(timer);
        return { status: 0, body: null };
      }
    );
  }

  /** The request, repeated with backoff while the network or the server is down. */
  async function requestPatiently(method, url) {
    for (var attempt = 1; ; attempt++) {
      var res = await request(method, url);
      if (!BeliefQueue.isRetryable(res.status)) {
        if (attempt > 1) setStatus("", "");
        return res;
      }
      setStatus(res.status === 0 ? "offline" : "saving", res.status === 0 ? t("offline") : t("connecting"));
      await sleep(backoffMs(attempt));
    }
  }

  function Fatal(message) {
    this.message = message;
  }

  async function loadState() {
    var res = await requestPatiently("GET", sessionUrl);
    if (res.status === 200 && res.body) return res.body;
    throw new Fatal(res.status === 404 ? t("error_not_found") : t("error_loading"));
  }

  // ---------------------------------------------------------------- answers

  var brKnown = {}; // event code -> base rate
  var brPending = {}; // event code -> Promise of the base rate (the answer that draws it)
  var brAhead = {}; // event code -> true while its base-rate screen is still to come
  var restartRequested = false;
  var otherTabRestart = false; // the restart is another tab's progress, not a refusal
  var otherTabUnknown = false; // another tab gave an answer whose position is not known
  var answeredAt = {}; // positions answered here or in another tab (forgotten on a refusal)
  var refusedRestart = false; // the server refused an answer of this page
  var lastState = null; // the session state as last read from the server
  var jsPsych = null;

  queue.onError(function (error) {
    // The server refused an answer: our picture of the session is stale (409) or an
    // answer can never be stored. Stop here and start again from the server's state.
    restartRequested = true;
    refusedRestart = true;
    answeredAt = {};
    if (jsPsych) {
      try {
        jsPsych.abortExperiment();
      } catch (e) {
        /* not running */
      }
    }
  });

  // Another tab of this session gave an answer: unless it is to a step this page has passed
  // (a stale tab's, which the server will refuse), the step on screen here may be answered
  // already. Start again from the server's state, once the answers given are sent.
  queue.onOtherTab(function (answer) {
    if (typeof answer.step !== "number") {
      otherTabUnknown = true; // an answer of an earlier version's page: ask the server
    } else if (answer.step < progress.base + progress.answered) {
      return;
    } else {
      answeredAt[answer.step] = true;
    }
    restartRequested = true;
    otherTabRestart = true;
    if (jsPsych) {
      try {
        jsPsych.abortExperiment();
      } catch (e) {
        /* not running */
      }
    }
  });

  function record(step, data) {
    var skipped = step.kind === "item" && data.skipped === true; // an optional item, skipped
    if (typeof data.value !== "number" && !skipped) return; // an aborted trial
    var position = progress.base + progress.answered; // its position in the session: sending order
    answeredAt[position] = true;
    var answer = queue.enqueue(
      step.kind === "item"
        ? {
            phase: step.phase,
            instrument: step.instrument,
            item: step.item,
            value: skipped ? null : data.value,
            rt_ms: Math.max(0, Math.round(data.rt)),
            onset_at: data.onset_at,
            step: position,
          }
        : {
            event: step.event,
            phase: step.phase,
            value: data.value,
            rt_ms: Math.max(0, Math.round(data.rt)),
            onset_at: data.onset_at,
            step: position,
          }
    );
    progress.answered += 1;
    renderProgress();
    // The first answer to an event whose base rate is still to be shown (its E1): the
    // server draws the base rate then and returns it with the row.
    if (brAhead[step.event] && !brPending[step.event] && typeof brKnown[step.event] !== "number") {
      brPending[step.event] = answer.then(function (row) {
        if (typeof row.br === "number") {
          brKnown[step.event] = row.br;
          return row.br;
        }
        return baseRateFromServer(step.event);
      });
      brPending[step.event].catch(function () {});
    }
    answer.then(
      function (row) {
        if (row && row.progress && row.progress.total) progress.total = row.progress.total;
        renderProgress();
      },
      function () {}
    );
  }

  /** The base rate of an event whose E1 the server has, read from the session state. */
  async function baseRateFromServer(event) {
    try {
      await queue.flush(); // its E1 may be another tab's answer, not sent yet
    } catch (refused) {
      /* this page's answer was refused: the queue's error handler starts again */
    }
    var state = await loadState();
    for (var i = 0; i < state.steps.length; i++) {
      var s = state.steps[i];
      if (s.event === event && s.kind === "base_rate" && typeof s.br === "number") {
        brKnown[event] = s.br;
        return s.br;
      }
    }
    restartRequested = true;
    if (jsPsych) jsPsych.abortExperiment();
    throw new Error("no base rate for " + event);
  }

  function baseRateFor(event) {
    if (typeof brKnown[event] === "number") return Promise.resolve(brKnown[event]);
    return brPending[event] || baseRateFromServer(event);
  }

  // ---------------------------------------------------------------- timeline

  /** A page of text; the last button is the main action. */
  function pageScreen(headingKey, paragraphs, buttonLabel) {
    return {
      type: jsPsychBeliefPage,
      heading: t(headingKey),
      paragraphs: paragraphs,
      choices: [buttonLabel || t("continue")],
    };
  }

  function instructionPages(state) {
    var range = { min: state.scale.min, max: state.scale.max };
    var cfg = state.config;
    var second = [t("instructions_2_a"), t("instructions_2_b")];
    if (cfg.collect_ebr) second.push(t("instructions_ebr"));
    if (cfg.collect_confidence) second.push(t("instructions_confidence"));
    var third = [t("instructions_3_a")];
    if (cfg.memory_test) third.push(t("instructions_memory"));
    if (cfg.ratings) third.push(t("instructions_ratings"));
    third.push(t("instructions_3_b"), t("instructions_3_c"));
    return [
      { heading: t("instructions_heading_1"), paragraphs: [t("instructions_1_a"), t("instructions_1_b", range)] },
      { heading: t("instructions_heading_2"), paragraphs: second },
      { heading: t("instructions_heading_3"), paragraphs: third },
      { heading: t("instructions_heading_4"), paragraphs: [t("instructions_4_a")] },
    ];
  }

  /** Instructions (with Back and Next) and the quiz, repeated until every answer is right. */
  function instructionsAndQuiz(state, onPassed) {
    var pages = instructionPages(state);
    var current = 0;
    var lastQuiz = { all_correct: false, wrong: [] };
    var pager = {
      timeline: [
        {
          type: jsPsychBeliefPage,
          heading: function () {
            return pages[current].heading;
          },
          paragraphs: function () {
            return pages[current].paragraphs;
          },
          choices: function () {
            return current === 0 ? [t("next")] : [t("back"), t("next")];
          },
          on_finish: function (data) {
            current += current > 0 && data.response === 0 ? -1 : 1;
          },
        },
      ],
      loop_function: function () {
        return current < pages.length;
      },
    };
    var quiz = {
      type: jsPsychBeliefQuiz,
      heading: t("quiz_heading"),
      question_label: t("quiz_question"),
      button_label: t("quiz_submit"),
      questions: shuffledQuiz, // called by jsPsych at each attempt
      on_finish: function (data) {
        lastQuiz = data;
      },
    };
    var feedback = {
      timeline: [
        {
          type: jsPsychBeliefPage,
          heading: t("quiz_feedback_heading"),
          paragraphs: [t("quiz_feedback_intro")],
          list: function () {
            return lastQuiz.wrong.map(function (qi) {
              return t("quiz_feedback_item", { n: qi + 1, question: t(QUIZ[qi][0]) });
            });
          },
          closing: [t("quiz_feedback_retry")],
          choices: [t("quiz_retry")],
          alert: true,
        },
      ],
      conditional_function: function () {
        return !lastQuiz.all_correct;
      },
    };
    return {
      timeline: [pager, quiz, feedback],
      loop_function: function () {
        if (lastQuiz.all_correct) {
          onPassed();
          return false;
        }
        current = 0;
        return true;
      },
    };
  }

  var BLOCK_TEXT = {
    practice: ["practice_heading", "practice_intro", "start"],
    block1: ["block1_heading", "block1_intro", "start"],
    block2: ["block2_heading", "block2_intro", "continue"],
    memory: ["memory_heading", "memory_intro", "continue"],
    ratings: ["ratings_heading", "ratings_intro", "continue"],
    questionnaire: ["questionnaire_heading", "questionnaire_intro", "continue"],
  };

  function blockIntro(block, welcomeBack) {
    var keys = BLOCK_TEXT[block] || BLOCK_TEXT.block1;
    if (welcomeBack) return pageScreen("welcome_back_heading", [t("welcome_back"), t(keys[1])]);
    return pageScreen(keys[0], [t(keys[1])], t(keys[2]));
  }

  function debriefScreen(cfg) {
    var text = (cfg.debrief_text || "").trim() || t("debrief_default");
    return pageScreen("debrief_heading", text.split(/\n\s*\n/));
  }

  // The estimate screens by the step's kind (protocol/phases.py): their question, and whose
  // risk it asks about (none for the base rate recalled).
  var ESTIMATE_PROMPT = { estimate_self: "prompt_e", estimate_other: "prompt_ebr", recall: "prompt_memory" };
  var ESTIMATE_SUBJECT = { estimate_self: "self", estimate_other: "other" };

  /** A questionnaire item (plugin-belief-item.js): its texts come from the instrument. */
  function itemTrial(step) {
    return {
      type: jsPsychBeliefItem,
      instrument_name: step.instrument_name || "",
      instructions: step.instructions || "",
      counter: step.count > 1 ? t("item_counter", { n: step.number, count: step.count }) : "",
      text: step.text,
      lang: step.lang && step.lang !== config.language ? step.lang : null,
      options: step.options || [],
      min: typeof step.min === "number" ? step.min : null,
      max: typeof step.max === "number" ? step.max : null,
      unit: step.unit || "",
      required: step.required !== false,
      button_label: t("continue"),
      skip_label: t("item_skip"),
      choose_error: t("item_choose_error"),
      number_hint: t("item_number_hint"),
      number_error: t("item_number_error"),
      data: { event: step.item, phase: step.phase, block: step.block, instrument: step.instrument },
      on_finish: function (data) {
        record(step, data);
      },
    };
  }

  function stepTrial(step, state) {
    if (step.kind === "item") return itemTrial(step);
    var trial = {
      event_text: step.text,
      badge: step.practice ? t("practice_badge") : null,
      button_label: t("continue"),
      data: { event: step.event, phase: step.phase, block: step.block },
      on_finish: function (data) {
        record(step, data);
      },
    };
    var phase = step.phase;
    var kind = step.kind;
    if (kind === "base_rate") {
      trial.type = jsPsychBeliefBaseRate;
      trial.base_rate = function () {
        if (typeof brKnown[step.event] === "number") return brKnown[step.event];
        return typeof step.br === "number" ? step.br : null;
      };
      trial.get_base_rate = function () {
        return baseRateFor(step.event);
      };
      trial.sentence = t("br_sentence");
      trial.waiting_text = t("br_waiting");
      trial.offline_title = t("br_offline_title");
      trial.offline_text = [t("br_offline_why"), t("br_offline_safe"), t("br_offline_resume")];
      trial.watch_connection = function (cb) {
        cb(queue.state() === "offline");
        return queue.onStatusChange(function (s) {
          cb(s.state === "offline");
        });
      };
      trial.min_view_ms = state.config.min_br_view_ms;
    } else if (kind === "rating") {
      trial.type = jsPsychBeliefRating;
      trial.prompt = t(phase + "_prompt");
      trial.low_label = t(phase + "_low");
      trial.high_label = t(phase + "_high");
      trial.hint = t("rating_hint");
    } else {
      // estimate_self, estimate_other, recall: a percentage on the study's scale.
      trial.type = jsPsychBeliefEstimate;
      trial.prompt = t(ESTIMATE_PROMPT[kind] || "prompt_e");
      // "you" and "an average person" told apart at a glance, not by one sentence only.
      if (ESTIMATE_SUBJECT[kind]) {
        trial.subject = ESTIMATE_SUBJECT[kind];
        trial.subject_label = t(trial.subject === "other" ? "subject_other" : "subject_self");
      }
      trial.min = state.scale.min;
      trial.max = state.scale.max;
      trial.range_hint = t("range_hint");
      trial.error_message = t("range_error");
    }
    return trial;
  }

  var instructionsPassed = false;
  var debriefShown = false;

  function buildTimeline(state) {
    var timeline = [];
    var resumed = state.progress.done > 0 || instructionsPassed;
    // The instructions and the quiz come before the task's first step, after any
    // questionnaire asked before the task (task_started: a step of the task is answered).
    var taskStarted = instructionsPassed || (state.task_started === undefined ? state.progress.done > 0 : state.task_started);
    var previousBlock = null;
    state.steps.forEach(function (step, i) {
      if (!taskStarted && step.kind !== "item") {
        timeline.push(instructionsAndQuiz(state, function () { instructionsPassed = true; }));
        taskStarted = true;
      }
      if (step.block !== previousBlock) {
        timeline.push(blockIntro(step.block, resumed && i === 0 && state.progress.done > 0));
        previousBlock = step.block;
      }
      timeline.push(stepTrial(step, state));
    });
    if (state.config.debrief && !debriefShown) {
      var debrief = debriefScreen(state.config);
      debrief.on_finish = function () {
        debriefShown = true;
      };
      timeline.push(debrief);
    }
    return timeline;
  }

  async function runTimeline(timeline) {
    stage.removeAttribute("data-step");
    if (!timeline.length) return;
    var target = el("div", { class: "task-jspsych" });
    stage.replaceChildren(target);
    jsPsych = initJsPsych({
      display_element: target,
      on_trial_start: function (trial) {
        window.scrollTo(0, 0);
        // Which step is on screen, for support staff and the browser tests.
        var d = trial.data || {};
        if (d.phase) stage.setAttribute("data-step", d.event + " " + d.phase);
        else stage.removeAttribute("data-step");
      },
    });
    try {
      await jsPsych.run(timeline);
    } finally {
      jsPsych = null;
    }
  }

  // ---------------------------------------------------------------- the session

  /** The last state read, past the steps answered since (here or in another tab). */
  function localState() {
    if (!lastState || lastState.status === "completed") return null;
    var done = lastState.progress.done;
    var position = done;
    while (answeredAt[position]) position++;
    if (position - done > lastState.steps.length) return null;
    var state = Object.assign({}, lastState);
    state.steps = lastState.steps.slice(position - done);
    // A step of the task among those answered since: the instructions are behind.
    state.task_started = lastState.task_started || lastState.steps.slice(0, position - done).some(function (s) {
      return s.kind !== "item";
    });
    state.progress = { done: position, total: lastState.progress.total };
    return state;
  }

  async function main() {
    // Refusals and missing answers start again at most 25 times; another tab's progress
    // (which can be every step of the session) as often as it happens.
    for (var round = 0; round < 25; round++) {
      // Another tab's progress, every position of which is known: carry on from the state
      // read last, past the steps answered since (no need of the server, which may be out
      // of reach). Otherwise send what is stored and read the state again.
      var state = otherTabRestart && !otherTabUnknown && !refusedRestart ? localState() : null;
      if (otherTabRestart && !refusedRestart) round = Math.max(1, round - 1);
      otherTabRestart = false;
      otherTabUnknown = false;
      refusedRestart = false;
      restartRequested = false;
      queue.resume();
      showLoading(round === 0 ? t("loading") : t("state_changed"));
      if (!state) {
        try {
          await queue.flush(); // answers a previous page load could not send
        } catch (refused) {
          continue; // dropped as stale; the state read next is the truth
        }
        state = await loadState();
        lastState = state;
        if (restartRequested) continue; // another tab answered while the state was on its way
      }
      if (state.config && state.config.title) document.title = state.config.title;
      if (state.status === "completed" && state.completion) {
        progress.total = state.progress.total;
        showCompletion(state.completion, true);
        return;
      }
      if (state.status !== "created" && state.status !== "in_progress") {
        showClosed();
        return;
      }
      progress.base = state.progress.done;
      progress.answered = 0;
      progress.total = state.progress.total;
      renderProgress();
      brAhead = {};
      state.steps.forEach(function (s) {
        if (s.kind !== "base_rate") return;
        brAhead[s.event] = true;
        if (typeof s.br === "number") brKnown[s.event] = s.br;
      });

      await runTimeline(buildTimeline(state));
      if (restartRequested) continue;

      showScreen([
        el("p", { class: "belief-waiting", role: "status", text: t("saving_final") }),
        el("p", { class: "belief-hint", text: t("saving_final_note") }),
      ]);
      savingOnScreen = true;
      try {
        await queue.flush();
      } catch (refused) {
        continue;
      } finally {
        savingOnScreen = false;
      }
      var done = await requestPatiently("POST", sessionUrl + "/complete");
      if (done.status === 200 && done.body) {
        showCompletion(done.body, false);
        return;
      }
      if (done.status === 404) throw new Fatal(t("error_not_found"));
      if (done.status !== 409) throw new Fatal(t("error_loading"));
      // 409: answers missing (read the state and ask them) or the session closed meanwhile.
    }
    throw new Fatal(t("error_saving"));
  }

  main().catch(function (err) {
    if (window.console) window.console.error(err);
    showFatal(err instanceof Fatal ? err.message : t("error_loading"));
  });
})();

/*
 * The task preview's stand-in for the server. The preview runs the participant's task
 * itself (static/task/task.js, with its plugins and its queue); this file only answers the
 * task's requests in the page, so that nothing is sent anywhere and nothing is stored.
 *
 * It is installed as window.BeliefTaskTransport (task.js sends every request through it)
 * and answers from the preview-state block, which the dashboard builds with the server's
 * own functions (trials.selectors.session_state_preview):
 *   GET  <api>/sessions/<token>            the session state: the steps not yet answered
 *   POST <api>/sessions/<token>/responses  201 with the row; the step that draws the base
 *                                          rate gets it back, as from the server; a step
 *                                          that is not the next one: 409, as the server
 *   POST <api>/sessions/<token>/complete   200 with the completion code (no redirect)
 * What it does not repeat is the server's validation of a value: the task's screens send
 * only values they accept themselves, and the server's checks are its tests' business.
 * Every stored row is listed under the frame ("What the server would store").
 */
(function () {
  "use strict";

  var source = document.getElementById("preview-state");
  if (!source) return;
  var data = JSON.parse(source.textContent);
  var initial = data.state;
  var steps = initial.steps;
  var logBody = document.getElementById("preview-log");

  var done = 0;
  var rows = {}; // client_id -> the row first returned
  var brs = {}; // event -> the base rate, once drawn
  var completed = false;

  function reply(status, body) {
    return Promise.resolve(
      new Response(JSON.stringify(body), { status: status, headers: { "Content-Type": "application/json" } })
    );
  }

  function refuse(status, code, message) {
    return reply(status, { error: { code: code, message: message } });
  }

  function state() {
    var copy = JSON.parse(JSON.stringify(initial));
    copy.status = completed ? "completed" : done ? "in_progress" : "created";
    copy.progress = { done: done, total: steps.length };
    copy.task_started = steps.slice(0, done).some(function (s) {
      return s.kind !== "item";
    });
    copy.steps = completed ? [] : copy.steps.slice(done);
    copy.steps.forEach(function (s) {
      if (s.kind === "base_rate" && typeof brs[s.event] === "number") s.br = brs[s.event];
    });
    if (completed) copy.completion = completion();
    return copy;
  }

  function completion() {
    return { completion_code: data.completion_code, redirect_url: "", next_visit: null };
  }

  function drawBaseRate(event, value) {
    var known = data.base_rates[event];
    // Adaptive mode: the server's draw for each possible E1, from the scale's minimum up.
    brs[event] = Array.isArray(known) ? known[value - initial.scale.min] : known;
    return brs[event];
  }

  function log(row) {
    var empty = logBody.querySelector(".empty");
    if (empty) logBody.textContent = "";
    var tr = document.createElement("tr");
    // A questionnaire item is listed by its instrument and item, where an event's code goes.
    var what = row.event === null ? row.instrument + " " + row.item : row.event;
    [what, row.phase, row.value === null ? "–" : String(row.value), String(row.rt_ms)].forEach(function (text, i) {
      var td = document.createElement("td");
      if (i >= 2) td.className = "num";
      td.textContent = text;
      tr.appendChild(td);
    });
    logBody.appendChild(tr);
  }

  function answer(item) {
    if (Object.prototype.hasOwnProperty.call(rows, item.client_id)) return reply(200, rows[item.client_id]);
    if (completed) return refuse(409, "session_closed", "This session is complete.");
    var next = steps[done];
    if (!next) return refuse(409, "nothing_left", "Every step is answered: complete the session.");
    var isItem = next.kind === "item";
    var same = isItem
      ? next.phase === item.phase && next.instrument === item.instrument && next.item === item.item
      : next.event === item.event && next.phase === item.phase;
    if (!same) {
      return refuse(409, "out_of_order", "'" + item.phase + "' of '" + (item.event || item.item) + "' is not the next step.");
    }
    done += 1;
    var row = {
      id: done,
      client_id: item.client_id,
      event: isItem ? null : item.event,
      phase: item.phase,
      value: item.value,
      rt_ms: item.rt_ms,
      onset_at: item.onset_at || null,
      received_at: new Date().toISOString(),
      progress: { done: done, total: steps.length },
    };
    if (isItem) {
      row.instrument = item.instrument;
      row.item = item.item;
    }
    if (item.phase === data.base_rate_from) row.br = drawBaseRate(item.event, item.value);
    rows[item.client_id] = row;
    log(row);
    return reply(201, row);
  }

  function serve(url, init) {
    var method = ((init && init.method) || "GET").toUpperCase();
    var path = String(url).split("?")[0];
    if (method === "GET" && /\/sessions\/[^/]+$/.test(path)) return reply(200, state());
    if (method === "POST" && /\/responses$/.test(path)) return answer(JSON.parse(init.body));
    if (method === "POST" && /\/complete$/.test(path)) {
      if (done < steps.length) return refuse(409, "incomplete", "Some answers are missing.");
      completed = true;
      return reply(200, completion());
    }
    return refuse(404, "not_found", "Not found.");
  }

  // storage null: the queue keeps the answers in memory, never in localStorage.
  window.BeliefTaskTransport = { fetch: serve, storage: null };
})();

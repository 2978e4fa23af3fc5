/*
 * The live overview: polls the overview's JSON every few seconds and redraws the
 * counts and lists in place (no reload). Polling pauses while the tab is hidden.
 * Cells carry data-cell="<arm>-<timepoint>:<step>", totals data-total="<step>".
 */
(function () {
  "use strict";

  var source = document.getElementById("overview-live");
  if (!source) {
    return;
  }
  var live = JSON.parse(source.textContent);
  var status = document.getElementById("live-status");
  var timeLabel = document.getElementById("live-time");
  var timer = null;
  var failures = 0;
  var inflight = false;

  function setText(node, value) {
    var text = String(value);
    if (node.textContent !== text) {
      node.textContent = text;
      node.classList.remove("changed");
      // Restart the highlight animation on every change.
      void node.offsetWidth;
      node.classList.add("changed");
    }
  }

  function cell(tag, text, attrs) {
    var node = document.createElement(tag);
    node.textContent = text;
    Object.keys(attrs || {}).forEach(function (name) {
      node.setAttribute(name, attrs[name]);
    });
    return node;
  }

  function participantCell(row) {
    var th = document.createElement("th");
    th.setAttribute("scope", "row");
    var a = cell("a", row.participant, { href: row.url });
    th.appendChild(a);
    return th;
  }

  function fillRows(tbodyId, rows, build) {
    var body = document.getElementById(tbodyId);
    if (!body || !rows) {
      return;
    }
    var fresh = document.createDocumentFragment();
    if (!rows.length) {
      var tr = document.createElement("tr");
      tr.appendChild(cell("td", body.getAttribute("data-empty"), { colspan: "5", class: "empty" }));
      fresh.appendChild(tr);
    }
    rows.forEach(function (row) {
      fresh.appendChild(build(row));
    });
    body.textContent = "";
    body.appendChild(fresh);
  }

  function render(data) {
    data.rows.forEach(function (row) {
      Object.keys(row).forEach(function (step) {
        var node = document.querySelector('[data-cell="' + row.key + ":" + step + '"]');
        if (node) {
          setText(node, row[step]);
        }
      });
    });
    (data.visits || []).forEach(function (row) {
      Object.keys(row).forEach(function (column) {
        var node = document.querySelector('[data-visit="' + row.key + ":" + column + '"]');
        if (node) {
          setText(node, row[column]);
        }
      });
    });
    Object.keys(data.totals).forEach(function (step) {
      document.querySelectorAll('[data-total="' + step + '"]').forEach(function (node) {
        setText(node, data.totals[step]);
      });
    });
    document.querySelectorAll('[data-total="withdrawn"]').forEach(function (node) {
      setText(node, data.withdrawn);
    });
    document.querySelectorAll('[data-total="last_activity"]').forEach(function (node) {
      setText(node, data.last_activity);
    });
    Object.keys(data.flag_totals).forEach(function (name) {
      var node = document.querySelector('[data-flag="' + name + '"]');
      if (node) {
        setText(node, data.flag_totals[name]);
      }
    });
    fillRows("in-progress", data.in_progress, function (row) {
      var tr = document.createElement("tr");
      tr.appendChild(participantCell(row));
      tr.appendChild(cell("td", row.arm));
      tr.appendChild(cell("td", row.timepoint));
      tr.appendChild(cell("td", row.percent + " % (" + row.steps + ")", { class: "nowrap" }));
      tr.appendChild(cell("td", row.last_activity));
      return tr;
    });
    fillRows("opening-today", data.opening_today, function (row) {
      var tr = document.createElement("tr");
      tr.appendChild(participantCell(row));
      tr.appendChild(cell("td", row.arm));
      tr.appendChild(cell("td", row.timepoint));
      tr.appendChild(cell("td", row.opens_at));
      tr.appendChild(cell("td", row.closes_at));
      return tr;
    });
    timeLabel.textContent = data.generated_display;
    status.classList.add("is-live");
    status.classList.remove("is-stale");
    status.setAttribute("data-generated", data.generated_at);
  }

  function poll() {
    timer = null;
    if (inflight) {
      return;
    }
    inflight = true;
    fetch(live.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        failures = 0;
        render(data);
      })
      .catch(function () {
        failures += 1;
        status.classList.add("is-stale");
        status.classList.remove("is-live");
      })
      .then(function () {
        inflight = false;
        schedule();
      });
  }

  function schedule() {
    if (timer !== null || document.hidden) {
      return;
    }
    // Back off while the server does not answer, up to a minute.
    var wait = Math.min(60000, live.every_ms * Math.pow(2, Math.min(failures, 4)));
    timer = window.setTimeout(poll, wait);
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      if (timer !== null) {
        window.clearTimeout(timer);
        timer = null;
      }
    } else {
      poll();
    }
  });

  schedule();
})();

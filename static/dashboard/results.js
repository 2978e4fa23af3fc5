/*
 * The results page: five Vega-Lite charts drawn by vega-embed, and the mixed-model
 * table kept up to date from its JSON endpoint.
 *
 * CSP (script-src 'self', style-src 'self'): vega compiles expressions with
 * new Function unless `ast: true`, which makes vega-embed use the interpreter it
 * bundles; the embed and tooltip styles are in vega-embed.css instead of being
 * injected. Data is inline JSON (no CSV loading, which would need eval too).
 */
(function () {
  "use strict";

  var source = document.getElementById("results-data");
  if (!source) {
    return;
  }
  var data = JSON.parse(source.textContent);
  var L = data.labels;
  var SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";
  var VALENCE_COLORS = ["#1a7f5a", "#b4472f"];
  var MODEL_COLORS = ["#9aa3b0", "#2456a6", "#e09f3e"];
  var FONT = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif";
  var PNG_SCALE = 3;

  var CONFIG = {
    font: FONT,
    axis: { labelFontSize: 12, titleFontSize: 12, titleFontWeight: 600, grid: true, gridColor: "#eceef2" },
    legend: { labelFontSize: 12, titleFontSize: 12, orient: "bottom" },
    header: { labelFontSize: 12, titleFontSize: 12, labelFontWeight: 600 },
    view: { stroke: "#d9dde3" },
  };

  /* The width of one plot (or facet cell) so that the whole chart, with its axes,
     legend and the actions button, fits the card; `reserve` is the room they take. */
  function chartWidth(node, columns, min, max, reserve) {
    var available = Math.max(200, node.clientWidth - 40 - (reserve || 60));
    return Math.max(min, Math.min(max, Math.floor(available / columns) - 20));
  }

  function mainSpec(node) {
    var values = data.main.map(function (row) {
      return Object.assign({}, row, { valence_label: L[row.valence] });
    });
    var arms = data.arms.filter(function (arm) {
      return values.some(function (row) { return row.arm === arm; });
    });
    return {
      $schema: SCHEMA,
      config: CONFIG,
      data: { values: values },
      facet: { column: { field: "arm", type: "nominal", sort: arms, title: L.arm } },
      spec: {
        width: chartWidth(node, Math.max(1, arms.length), 110, 300, 70),
        height: 240,
        encoding: {
          x: { field: "timepoint", type: "nominal", sort: data.timepoints, title: L.timepoint, axis: { labelAngle: 0 } },
          xOffset: { field: "valence_label", type: "nominal", sort: [L.good, L.bad] },
        },
        layer: [
          {
            mark: { type: "bar" },
            encoding: {
              y: { field: "mean", type: "quantitative", title: L.update },
              color: {
                field: "valence_label",
                type: "nominal",
                title: L.valence,
                scale: { domain: [L.good, L.bad], range: VALENCE_COLORS },
              },
              tooltip: [
                { field: "arm", title: L.arm },
                { field: "timepoint", title: L.timepoint },
                { field: "valence_label", title: L.valence },
                { field: "mean", title: L.update, format: ".2f" },
                { field: "sem", title: L.sem, format: ".2f" },
                { field: "n", title: L.n },
              ],
            },
          },
          {
            mark: { type: "rule", color: "#1d2430", strokeWidth: 1.5 },
            encoding: {
              y: { field: "low", type: "quantitative" },
              y2: { field: "high" },
            },
          },
        ],
      },
    };
  }

  /* The bias histogram shows the raw update bias or, switched by #bias-measure, the bias
     controlled for the estimation error (score version 2): binned on the server alike. */
  var biasMeasure = "update_bias";

  function biasBins() {
    return biasMeasure === "update_bias_ee" ? data.bias_ee_bins : data.bias_bins;
  }

  function biasSpec(node) {
    var bins = biasBins();
    var columns = data.timepoints.filter(function (tp) {
      return bins.some(function (row) { return row.timepoint === tp; });
    });
    return {
      $schema: SCHEMA,
      config: CONFIG,
      data: { values: bins },
      facet: {
        row: { field: "arm", type: "nominal", sort: data.arms, title: L.arm },
        column: { field: "timepoint", type: "nominal", sort: data.timepoints, title: L.timepoint },
      },
      spec: {
        width: chartWidth(node, Math.max(1, columns.length), 100, 260, 90),
        height: 90,
        layer: [
          {
            mark: { type: "bar", opacity: 0.85 },
            encoding: {
              x: {
                field: "bin_start",
                type: "quantitative",
                bin: {
                  binned: true,
                  step: biasMeasure === "update_bias_ee" ? data.bias_ee_bin_width : data.bias_bin_width,
                },
                title: biasMeasure === "update_bias_ee" ? L.update_bias_ee : L.good_minus_bad,
                axis: { format: "~g", labelOverlap: true },
              },
              x2: { field: "bin_end" },
              y: { field: "count", type: "quantitative", title: L.sessions },
              color: { field: "arm", type: "nominal", sort: data.arms, legend: null },
              tooltip: [
                { field: "bin_start", title: "≥" },
                { field: "bin_end", title: "<" },
                { field: "count", title: L.sessions },
              ],
            },
          },
          {
            mark: { type: "rule", color: "#5a6473", strokeDash: [4, 3] },
            encoding: { x: { datum: 0, type: "quantitative" } },
          },
        ],
      },
      resolve: { scale: { y: "shared" } },
    };
  }

  function lrSpec(node) {
    var size = Math.min(420, Math.max(220, node.clientWidth - 180));
    return {
      $schema: SCHEMA,
      config: CONFIG,
      width: size,
      height: size,
      layer: [
        {
          data: { values: [{ low: 0, high: 1 }] },
          mark: { type: "rule", color: "#9aa3b0", strokeDash: [5, 4] },
          encoding: {
            x: { field: "low", type: "quantitative" },
            y: { field: "low", type: "quantitative" },
            x2: { field: "high" },
            y2: { field: "high" },
          },
        },
        {
          data: { values: data.lr_points },
          mark: { type: "point", filled: true, opacity: 0.5, size: 30 },
          encoding: {
            x: { field: "lr_bad", type: "quantitative", title: L.lr_bad, scale: { zero: true } },
            y: { field: "lr_good", type: "quantitative", title: L.lr_good, scale: { zero: true } },
            color: { field: "arm", type: "nominal", sort: data.arms, title: L.arm },
            shape: { field: "timepoint", type: "nominal", sort: data.timepoints, title: L.timepoint },
            tooltip: [
              { field: "participant", title: L.participant },
              { field: "arm", title: L.arm },
              { field: "timepoint", title: L.timepoint },
              { field: "lr_good", title: L.lr_good, format: ".3f" },
              { field: "lr_bad", title: L.lr_bad, format: ".3f" },
            ],
          },
        },
      ],
    };
  }

  function trajectorySpec(node) {
    var x = { field: "timepoint", type: "ordinal", sort: data.timepoints, title: L.timepoint, axis: { labelAngle: 0 } };
    var y = { field: "update_bias", type: "quantitative", title: L.update_bias };
    var color = {
      field: "arm",
      type: "nominal",
      sort: data.arms,
      title: L.arm,
      legend: { symbolOpacity: 1, symbolStrokeWidth: 3 },
    };
    return {
      $schema: SCHEMA,
      config: CONFIG,
      width: chartWidth(node, 1, 240, 560, 140),
      height: 260,
      layer: [
        {
          data: { values: data.trajectories },
          mark: { type: "line", opacity: 0.22, strokeWidth: 1 },
          encoding: { x: x, y: y, color: color, detail: { field: "participant", type: "nominal" } },
        },
        {
          data: { values: data.trajectories },
          mark: { type: "point", opacity: 0.3, size: 14, filled: true },
          encoding: {
            x: x,
            y: y,
            color: color,
            tooltip: [
              { field: "participant", title: L.participant },
              { field: "timepoint", title: L.timepoint },
              { field: "update_bias", title: L.update_bias, format: ".2f" },
            ],
          },
        },
        {
          data: { values: data.trajectory_means },
          mark: { type: "line", strokeWidth: 3.5, point: { size: 60, filled: true } },
          encoding: { x: x, y: y, color: color },
        },
      ],
    };
  }

  function modelsSpec(node) {
    var groups = [];
    data.models.forEach(function (row) {
      if (groups.indexOf(row.group) < 0) {
        groups.push(row.group);
      }
    });
    return {
      $schema: SCHEMA,
      config: CONFIG,
      data: { values: data.models },
      width: chartWidth(node, 1, 160, 460, 200),
      height: { step: 28 },
      mark: { type: "bar" },
      encoding: {
        y: { field: "group", type: "nominal", sort: groups, title: L.group },
        x: { field: "share", type: "quantitative", stack: "normalize", title: L.share, axis: { format: "%" } },
        color: {
          field: "model",
          type: "nominal",
          title: L.model,
          scale: { domain: ["M0", "M1", "M2"], range: MODEL_COLORS },
        },
        order: { field: "model", type: "ordinal" },
        tooltip: [
          { field: "group", title: L.group },
          { field: "model", title: L.model },
          { field: "n", title: L.sessions },
          { field: "share", title: L.share, format: ".0%" },
        ],
      },
    };
  }

  /* The paper's second result: one panel per measure (rows) and arm (columns), a point per
     participant and later visit, with its least-squares line. */
  function changeSpec(node) {
    var change = data.change || {};
    var measures = (change.measures || []).map(function (m) { return "d_" + m; });
    var arms = data.arms.filter(function (arm) {
      return (change.points || []).some(function (row) { return row.arm === arm; });
    });
    return {
      $schema: SCHEMA,
      config: CONFIG,
      data: { values: change.points || [] },
      transform: [
        { fold: measures, as: ["measure", "change"] },
        { filter: "isValid(datum.change) && isValid(datum.d_madrs)" },
      ],
      facet: {
        row: { field: "measure", type: "nominal", sort: measures, title: L.measure },
        column: { field: "arm", type: "nominal", sort: arms, title: L.arm },
      },
      resolve: { scale: { x: "independent" } },
      spec: {
        width: chartWidth(node, Math.max(1, arms.length), 140, 300, 120),
        height: 180,
        layer: [
          {
            mark: { type: "point", filled: true, opacity: 0.6, size: 36 },
            encoding: {
              x: { field: "change", type: "quantitative", title: L.change },
              y: { field: "d_madrs", type: "quantitative", title: L.d_madrs },
              shape: { field: "timepoint", type: "nominal", title: L.timepoint },
              tooltip: [
                { field: "participant", title: L.participant },
                { field: "timepoint", title: L.timepoint },
                { field: "change", title: L.change, format: ".3f" },
                { field: "d_madrs", title: L.d_madrs, format: ".1f" },
              ],
            },
          },
          {
            transform: [{ regression: "d_madrs", on: "change" }],
            mark: { type: "line", color: "#2456a6" },
            encoding: {
              x: { field: "change", type: "quantitative" },
              y: { field: "d_madrs", type: "quantitative" },
            },
          },
        ],
      },
    };
  }

  var CHARTS = {
    change: { spec: changeSpec, rows: function () { return (data.change && data.change.points) || []; } },
    main: { spec: mainSpec, rows: function () { return data.main.filter(function (r) { return r.mean !== null; }); } },
    bias: { spec: biasSpec, rows: biasBins },
    lr: { spec: lrSpec, rows: function () { return data.lr_points; } },
    trajectories: { spec: trajectorySpec, rows: function () { return data.trajectories; } },
    models: { spec: modelsSpec, rows: function () { return data.models; } },
  };

  function slug() {
    var parts = window.location.pathname.split("/").filter(Boolean);
    return parts[2] || "study";
  }

  function draw(node) {
    var chart = CHARTS[node.getAttribute("data-chart")];
    if (!chart) {
      return;
    }
    if (!chart.rows().length) {
      node.textContent = "";
      var p = document.createElement("p");
      p.className = "empty";
      p.textContent = node.getAttribute("data-empty");
      node.appendChild(p);
      node.setAttribute("data-rendered", "empty");
      return;
    }
    window
      .vegaEmbed(node, chart.spec(node), {
        renderer: "svg",
        ast: true,
        defaultStyle: false,
        // Without the default style vega-embed drops its menu unless told to keep it.
        forceActionsMenu: true,
        tooltip: { disableDefaultStyle: true },
        actions: { export: true, source: false, compiled: false, editor: false },
        downloadFileName: slug() + "-" + node.getAttribute("data-chart"),
        // A paper needs more than screen resolution: PNGs at 3x (about 300 dpi at print
        // width); SVG stays 1:1, it scales by itself.
        scaleFactor: { svg: 1, png: PNG_SCALE },
        i18n: { SVG_ACTION: L.svg, PNG_ACTION: L.png },
      })
      .then(function () {
        node.setAttribute("data-rendered", "chart");
      })
      .catch(function (error) {
        node.setAttribute("data-rendered", "error");
        node.textContent = String(error && error.message ? error.message : error);
        if (window.console) {
          window.console.error(error);
        }
      });
  }

  // ------------------------------------------------------------ mixed model

  function fmt(value, digits) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
  }

  function cell(tr, text, className) {
    var td = document.createElement("td");
    if (className) {
      td.className = className;
    }
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function emptyRow(body, columns) {
    var tr = document.createElement("tr");
    var td = cell(tr, body.getAttribute("data-empty"), "empty");
    td.setAttribute("colspan", String(columns));
    return tr;
  }

  /* Fill one table body from rows, or say it is empty; `columns` maps a row to its cells
     ([text, className] pairs). */
  function fillTable(id, rows, columns, width) {
    var body = document.querySelector("#" + id + " tbody");
    if (!body) {
      return;
    }
    var fresh = document.createDocumentFragment();
    (rows || []).forEach(function (row) {
      var tr = document.createElement("tr");
      columns(row).forEach(function (c) { cell(tr, c[0], c[1]); });
      fresh.appendChild(tr);
    });
    if (!rows || !rows.length) {
      fresh.appendChild(emptyRow(body, width));
    }
    body.textContent = "";
    body.appendChild(fresh);
  }

  function renderGroup(group) {
    group = group || {};
    // Every parameter of M0, M1 and M2 (sigma included): the group's mean ± its se, and sd.
    var hierarchical = group.hierarchical || [];
    fillTable("hb-table", hierarchical, function (r) {
      return [
        [r.arm, ""], [r.timepoint, ""], [r.model + " " + r.parameter, ""],
        [fmt(r.mean, 3) + " ± " + fmt(r.se, 3), "num nowrap"], [fmt(r.sd, 3), "num"], [String(r.n_sessions), "num"],
      ];
    }, 6);
    fillTable("bms-table", group.model_selection, function (r) {
      var cells = [[r.arm, ""], [r.timepoint, ""], [String(r.n_sessions), "num"]];
      (r.models || []).forEach(function (_m, i) {
        cells.push([fmt(r.expected_frequencies[i], 2) + " / " + fmt(r.protected_exceedance[i], 2), "num nowrap"]);
      });
      cells.push([fmt(r.bor, 2), "num"]);
      return cells;
    }, 7);
    fillTable("reliability-table", group.reliability, function (r) {
      return [[r.arm, ""], [r.timepoint, ""], [r.measure, ""], [fmt(r.split_half, 2), "num"], [String(r.n_sessions), "num"]];
    }, 5);
    fillTable("retest-table", group.test_retest, function (r) {
      return [[r.measure, ""], [(r.timepoints || []).join(" – "), ""], [fmt(r.icc, 2), "num"], [String(r.n_participants), "num"]];
    }, 4);
  }

  /* The facts under the formula: trials and participants, and the convergence caveat,
     which must follow every new fit (a p-value without it reads as sound). */
  function renderFacts(model) {
    var facts = document.getElementById("model-facts");
    facts.textContent = "";
    if (model.n_obs !== null && model.n_obs !== undefined) {
      facts.appendChild(document.createTextNode(
        facts.getAttribute("data-facts").replace("%(obs)s", model.n_obs).replace("%(groups)s", model.n_groups)
      ));
    }
    if (model.converged === false && model.coefficients && model.coefficients.length) {
      var strong = document.createElement("strong");
      strong.id = "model-unconverged";
      strong.textContent = facts.getAttribute("data-unconverged");
      facts.appendChild(document.createTextNode(" "));
      facts.appendChild(strong);
    }
    var list = document.getElementById("model-warnings");
    list.textContent = "";
    (model.warnings || []).forEach(function (w) {
      var li = document.createElement("li");
      li.textContent = w;
      list.appendChild(li);
    });
  }

  function renderModel(model) {
    var status = document.getElementById("model-status");
    var rows = document.getElementById("model-rows");
    var text;
    if (model.status === "none") {
      text = status.getAttribute("data-none");
    } else if (model.status === "fitting" && !model.fresh) {
      text = status.getAttribute("data-fitting");
    } else if (!model.fresh) {
      text = status.getAttribute("data-stale");
    } else if (model.status === "failed") {
      text = status.getAttribute("data-failed");
    } else {
      text = status
        .getAttribute("data-fresh")
        .replace("%(n)s", model.n_sessions)
        .replace("%(when)s", model.fitted_at || "");
    }
    status.textContent = text;
    status.setAttribute("data-state", model.fresh ? model.status : "stale");
    if (model.formula) {
      document.getElementById("model-formula").textContent = model.formula;
    }
    document.getElementById("model-reason").textContent = model.reason || "";
    renderFacts(model);
    var fresh = document.createDocumentFragment();
    (model.coefficients || []).forEach(function (c) {
      var tr = document.createElement("tr");
      var th = document.createElement("th");
      th.setAttribute("scope", "row");
      th.setAttribute("title", c.term);
      th.textContent = c.label;
      tr.appendChild(th);
      [
        fmt(c.estimate, 3), fmt(c.std_error, 3), fmt(c.df, 1), fmt(c.t_value, 2),
        "[" + fmt(c.ci_low, 3) + ", " + fmt(c.ci_high, 3) + "]", fmt(c.p_value, 4),
      ].forEach(function (value) {
        cell(tr, value, "num nowrap");
      });
      fresh.appendChild(tr);
    });
    if (!model.coefficients || !model.coefficients.length) {
      fresh.appendChild(emptyRow(rows, 7));
    }
    rows.textContent = "";
    rows.appendChild(fresh);
    renderGroup(model.group);
  }

  function pollModel(attempt) {
    fetch(data.model_url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (model) {
        renderModel(model);
        var waiting = !model.fresh || model.status === "fitting";
        if (waiting && attempt < 200) {
          window.setTimeout(function () { pollModel(attempt + 1); }, 5000);
        }
      })
      .catch(function () {
        if (attempt < 20) {
          window.setTimeout(function () { pollModel(attempt + 1); }, 10000);
        }
      });
  }

  function start() {
    document.querySelectorAll("[data-chart]").forEach(draw);
    var measure = document.getElementById("bias-measure");
    if (measure) {
      measure.addEventListener("change", function () {
        biasMeasure = measure.value;
        var node = document.getElementById("chart-bias");
        node.setAttribute("data-measure", biasMeasure);
        draw(node);
      });
    }
    renderGroup(data.group);
    if (data.n_sessions > 0) {
      pollModel(0);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

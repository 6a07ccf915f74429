/* Charts for the dashboard and the offline HTML report (Chart.js, served locally).
   Each <canvas data-chart="ID"> is drawn from <script type="application/json" id="ID">. */
(function () {
  "use strict";
  var palette = ["#2f5bea", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
                 "#ff9da7", "#9c755f", "#bab0ac", "#4e79a7", "#86bcb6"];
  function pct(v) { return v == null ? "—" : (v * 100).toFixed(1) + " %"; }
  function build(spec) {
    var datasets = spec.series.map(function (s, i) {
      var colour = s.color || palette[i % palette.length];
      return {
        label: s.label, data: s.values, type: s.type || undefined, yAxisID: s.axis || "y",
        backgroundColor: spec.type === "line" && !s.type ? colour + "33" : colour,
        borderColor: colour, borderWidth: spec.type === "line" || s.type === "line" ? 2 : 0,
        fill: spec.stacked && spec.type === "line", tension: 0.25, pointRadius: 2
      };
    });
    var scales = { x: { stacked: !!spec.stacked, grid: { display: false } },
                   y: { stacked: !!spec.stacked, beginAtZero: true,
                        ticks: spec.percent ? { callback: function (v) { return (v * 100).toFixed(0) + "%"; } } : {} } };
    if (spec.y2) {
      scales.y2 = { position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
                    ticks: { callback: function (v) { return (v * 100).toFixed(0) + "%"; } } };
    }
    return {
      type: spec.type || "bar",
      data: { labels: spec.labels, datasets: datasets },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        indexAxis: spec.horizontal ? "y" : "x",
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } },
                   tooltip: { callbacks: { label: function (c) {
                     var v = c.raw; var isPct = spec.percent || c.dataset.yAxisID === "y2";
                     return c.dataset.label + ": " + (isPct ? pct(v) : (v == null ? "—" : v.toLocaleString()));
                   } } } },
        scales: scales
      }
    };
  }
  function draw() {
    if (typeof Chart === "undefined") { return; }
    var canvases = document.querySelectorAll("canvas[data-chart]");
    for (var i = 0; i < canvases.length; i++) {
      var el = document.getElementById(canvases[i].getAttribute("data-chart"));
      if (!el) { continue; }
      try { new Chart(canvases[i], build(JSON.parse(el.textContent))); }
      catch (e) { canvases[i].insertAdjacentText("afterend", "chart failed: " + e); }
    }
    document.documentElement.setAttribute("data-charts", "ready");
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();

// Steward console behaviour. No inline scripts: pages carry data-* attributes, read here.
(function () {
  "use strict";

  // ---- CPU / memory chart of a device page ------------------------------------------------
  function startChart(canvas) {
    if (typeof Chart === "undefined" || canvas.dataset.started) return;
    canvas.dataset.started = "1";
    var empty = document.querySelector("[data-chart-empty]");
    var timeLabel = new Intl.DateTimeFormat(canvas.dataset.locale || undefined, {
      timeZone: canvas.dataset.timezone || undefined,
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
    });
    var chart = new Chart(canvas, {
      type: "line",
      data: {
        labels: [],
        datasets: [
          { label: canvas.dataset.labelCpu, data: [], borderColor: "#0d6efd",
            backgroundColor: "rgba(13,110,253,0.1)", fill: true, pointRadius: 0, tension: 0.2 },
          { label: canvas.dataset.labelMemory, data: [], borderColor: "#198754",
            backgroundColor: "rgba(25,135,84,0.05)", fill: true, pointRadius: 0, tension: 0.2 },
        ],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          y: { min: 0, max: 100, ticks: { callback: function (v) { return v + " %"; } } },
          x: { ticks: { maxTicksLimit: 8, autoSkip: true } },
        },
      },
    });

    function refresh() {
      if (!canvas.isConnected) return;
      fetch(canvas.dataset.metricsUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (response.status === 401) { window.location.reload(); return null; }
          return response.ok ? response.json() : null;
        })
        .then(function (points) {
          if (!Array.isArray(points)) return;
          chart.data.labels = points.map(function (p) { return timeLabel.format(new Date(p.at)); });
          chart.data.datasets[0].data = points.map(function (p) { return p.cpu_percent; });
          chart.data.datasets[1].data = points.map(function (p) { return p.memory_percent; });
          chart.update("none");
          if (empty) empty.classList.toggle("d-none", points.length > 0);
        })
        .catch(function () { /* try again on the next tick */ });
    }

    refresh();
    var every = (parseFloat(canvas.dataset.refreshS) || 5) * 1000;
    var timer = window.setInterval(function () {
      if (!canvas.isConnected) { window.clearInterval(timer); return; }
      if (!document.hidden) refresh();
    }, every);
  }

  // ---- copy buttons -----------------------------------------------------------------------
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button || !navigator.clipboard) return;
    var source = document.querySelector(button.dataset.copyTarget);
    if (!source) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      var original = button.innerHTML;
      button.textContent = button.dataset.copiedLabel || "✓";
      window.setTimeout(function () { button.innerHTML = original; }, 1500);
    });
  });

  function init() {
    document.querySelectorAll("canvas[data-metrics-url]").forEach(startChart);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();

// Draw every chart: <figure data-echarts="ID"> reads its ECharts option from
// <script type="application/json" id="ID"> (or, older pages, inline JSON in the attribute).
// Options come from the server (series, axes, translated labels); this file adds layout only.
(function () {
  function option(el) {
    var ref = el.getAttribute("data-echarts") || "";
    if (ref.charAt(0) === "{") return JSON.parse(ref);
    var src = document.getElementById(ref);
    return src ? JSON.parse(src.textContent) : null;
  }

  function layout(opt) {
    var series = opt.series || [];
    var kind = series.length ? series[0].type : "bar";
    if (!opt.tooltip) {
      opt.tooltip = { trigger: kind === "bar" || kind === "line" ? "axis" : "item", confine: true };
    }
    if (kind === "treemap") {
      series.forEach(function (s) { s.roam = false; s.nodeClick = false; s.breadcrumb = { show: false }; });
      return opt;
    }
    if (kind === "sankey") {
      series.forEach(function (s) {
        s.emphasis = { focus: "adjacency" };
        s.nodeAlign = "justify";
        s.label = { fontSize: 11 };
        s.left = 10; s.right = 120;
      });
      return opt;
    }
    if (opt.xAxis && !opt.yAxis) opt.yAxis = { type: "value" };
    if (!opt.grid) opt.grid = { left: 64, right: Array.isArray(opt.yAxis) ? 64 : 20, top: 40, bottom: 30, containLabel: false };
    if (series.length > 1 && !opt.legend) opt.legend = { top: 0 };
    return opt;
  }

  function draw(root) {
    if (!window.echarts) return;
    root.querySelectorAll("[data-echarts]").forEach(function (el) {
      if (el.dataset.drawn) return;
      var opt = option(el);
      if (!opt) return;
      el.dataset.drawn = "1";
      var chart = window.echarts.init(el, null, { renderer: "svg" });
      chart.setOption(layout(opt));
      window.addEventListener("resize", function () { chart.resize(); });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  // after any swap (an outerHTML swap replaces the event's target): charts not drawn yet
  document.addEventListener("htmx:afterSettle", function () { draw(document); });
})();

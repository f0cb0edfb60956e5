// Draw every <figure data-echarts='{...option...}'>; options are built on the server.
(function () {
  function draw(root) {
    if (!window.echarts) return;
    root.querySelectorAll("[data-echarts]").forEach(function (el) {
      if (el.dataset.drawn) return;
      el.dataset.drawn = "1";
      var chart = window.echarts.init(el, null, { renderer: "svg" });
      chart.setOption(JSON.parse(el.dataset.echarts));
      window.addEventListener("resize", function () { chart.resize(); });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSwap", function (e) { draw(e.target); });
})();

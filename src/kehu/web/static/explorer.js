// Explorer page (loaded with `defer` after kehu.js; no inline scripts under the CSP).
// A 422 carries the re-rendered form with the problem explained: swap it in like a success.
// Clicking a bar or a heat-map cell drills down like the row heading beside it.
(function () {
  document.addEventListener("htmx:beforeSwap", function (e) {
    if (e.detail.xhr && e.detail.xhr.status === 422) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });

  function wire() {
    var fig = document.querySelector("[data-echarts='explorer-chart']");
    var src = document.getElementById("explorer-drill");
    if (!fig || !src || fig.dataset.drill || !window.echarts) return;
    var chart = window.echarts.getInstanceByDom(fig);
    if (!chart) return;
    var links = JSON.parse(src.textContent);
    fig.dataset.drill = "1";
    chart.on("click", function (p) {
      var i = p.seriesType === "heatmap" ? p.value[1] : p.dataIndex;
      var href = links[i];
      if (!href) return;
      if (window.htmx) {
        window.htmx.ajax("GET", href, { target: "#explorer", swap: "innerHTML" });
      } else {
        window.location.assign(href);
      }
    });
  }
  document.addEventListener("DOMContentLoaded", wire);
  document.addEventListener("htmx:afterSwap", wire);
})();

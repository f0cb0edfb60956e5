// Campaign pages: a failed "Check" (HTTP 422 / 409, the spec's problem named) is shown in
// #campaign-plan like a successful one; htmx leaves error responses unswapped by default.
(function () {
  document.addEventListener("htmx:beforeSwap", function (e) {
    var status = e.detail.xhr.status;
    var target = e.detail.target;
    if ((status === 422 || status === 409 || status === 404) && target && target.id === "campaign-plan") {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });
})();

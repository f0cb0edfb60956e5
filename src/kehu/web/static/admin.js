// Inbox, data, models and settings pages (loaded with `defer`; no inline scripts under the CSP).
// HTMX drops 4xx responses by default; a 422 carries the re-rendered form or row with the
// problem explained, so it is swapped in like a success.
(function () {
  document.addEventListener("htmx:beforeSwap", function (e) {
    if (e.detail.xhr && e.detail.xhr.status === 422) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });
})();

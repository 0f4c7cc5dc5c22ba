// Never lose typed work silently: a form marked data-unsaved-warning that has been typed in
// makes the browser ask before the page is left by a link, a reload or closing the tab.
// Submitting the form itself (Next, Back, a step's pill, which all save the draft) never asks.
(function () {
  "use strict";
  var dirty = false;
  document.addEventListener("input", function (event) {
    if (event.target.form && event.target.form.hasAttribute("data-unsaved-warning")) dirty = true;
  });
  document.addEventListener("change", function (event) {
    if (event.target.form && event.target.form.hasAttribute("data-unsaved-warning")) dirty = true;
  });
  document.addEventListener("submit", function (event) {
    if (!event.defaultPrevented) dirty = false;
  });
  window.addEventListener("beforeunload", function (event) {
    if (!dirty) return;
    event.preventDefault();
    event.returnValue = ""; // the browser shows its own "Leave site? Changes may not be saved"
  });
})();

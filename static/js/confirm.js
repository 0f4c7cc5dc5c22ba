// Ask before harm. A form (or its pressed button) with data-confirm="question" opens a modal
// dialog with the question before anything is sent; data-confirm-label names the button that
// goes ahead (default: the pressed button's text). Cancel, Escape or a click outside changes
// nothing: the form is never submitted. Going ahead adds confirmed=yes, which the server
// requires: without JavaScript the server answers with a confirmation page instead of acting.
// This listener runs in the capture phase, before htmx's own submit handling.
(function () {
  "use strict";

  function flag(form) {
    var input = form.querySelector('input[name="confirmed"][data-added]');
    if (!input) {
      input = document.createElement("input");
      input.type = "hidden";
      input.name = "confirmed";
      input.value = "yes";
      input.setAttribute("data-added", "");
      form.appendChild(input);
    }
  }

  function ask(question, label, danger, onYes) {
    var dialog = document.createElement("dialog");
    dialog.className = "confirm-dialog";
    dialog.setAttribute("aria-label", "Confirm");
    var text = document.createElement("p");
    text.textContent = question;
    var buttons = document.createElement("form");
    buttons.method = "dialog";
    buttons.className = "confirm-buttons";
    var no = document.createElement("button");
    no.value = "cancel";
    no.className = "secondary";
    no.textContent = "Cancel";
    var yes = document.createElement("button");
    yes.value = "ok";
    yes.textContent = label;
    if (danger) yes.className = "danger";
    buttons.append(no, yes);
    dialog.append(text, buttons);
    dialog.addEventListener("click", function (event) {
      if (event.target === dialog) dialog.close("cancel"); // the backdrop
    });
    dialog.addEventListener("close", function () {
      var ok = dialog.returnValue === "ok";
      dialog.remove();
      if (ok) onYes();
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    no.focus(); // the safe choice has the focus: Enter does not send
  }

  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      if (!(form instanceof HTMLFormElement) || form.method === "dialog") return;
      var submitter = event.submitter;
      var source = submitter && submitter.hasAttribute("data-confirm") ? submitter : form;
      var question = source.getAttribute("data-confirm");
      if (!question) {
        var stale = form.querySelector('input[name="confirmed"][data-added]');
        if (stale) stale.remove(); // another button of the same form: not confirmed
        return;
      }
      if (form.hasAttribute("data-confirm-passed")) {
        form.removeAttribute("data-confirm-passed");
        return; // the dialog said yes: let this submission through
      }
      event.preventDefault();
      event.stopImmediatePropagation();
      var label =
        source.getAttribute("data-confirm-label") || (submitter && submitter.textContent.trim()) || "OK";
      var danger = submitter ? submitter.classList.contains("danger") : false;
      ask(question, label, danger, function () {
        flag(form);
        form.setAttribute("data-confirm-passed", "");
        if (submitter) form.requestSubmit(submitter);
        else form.requestSubmit();
      });
    },
    true
  );
})();

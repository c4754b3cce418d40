// Submits the console's language switch on change. A file rather than an inline onchange handler, which
// the Content-Security-Policy (script-src 'self') blocks.
document.addEventListener("DOMContentLoaded", function () {
  var select = document.querySelector("#wxp-language select");
  if (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  }
});

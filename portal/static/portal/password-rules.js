// Live ticks for the password rules (progressive enhancement: the server checks
// the same rules and names each unmet one). No personal-data or common-password
// check here: those need the server.
(function () {
  "use strict";
  var input = document.querySelector("input[data-password-rules]");
  var box = document.getElementById("password-rules");
  if (!input || !box) return;
  var min = parseInt(box.getAttribute("data-min-length") || "12", 10);
  var checks = {
    min_length: function (v) { return Array.from(v.normalize("NFKC")).length >= min; },
    uppercase: function (v) { return v !== v.toLowerCase(); },
    lowercase: function (v) { return v !== v.toUpperCase(); }
  };
  var metText = box.getAttribute("data-met-text") || "";
  var unmetText = box.getAttribute("data-unmet-text") || "";
  function update() {
    var value = input.value;
    Object.keys(checks).forEach(function (rule) {
      var item = box.querySelector('[data-rule="' + rule + '"]');
      if (!item) return;
      var met = checks[rule](value);
      item.classList.toggle("is-met", met);
      item.classList.toggle("fr-message--valid", met);
      item.classList.toggle("fr-message--info", !met);
      // The state in words too (read, not announced at each keystroke).
      var state = item.querySelector("[data-rule-state]");
      if (state) state.textContent = " (" + (met ? metText : unmetText) + ")";
    });
  }
  input.addEventListener("input", update);
  update();
})();

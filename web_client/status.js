// Shows whether the server can take contacts right now (GET /readyz).
(function () {
  "use strict";
  const status = document.getElementById("status");
  fetch("/readyz", { cache: "no-store" })
    .then(function (response) {
      status.dataset.state = response.ok ? "ready" : "down";
      status.textContent = response.ok
        ? "Online."
        : "Temporarily unavailable. Please try again in a few minutes.";
    })
    .catch(function () {
      status.dataset.state = "down";
      status.textContent = "Cannot reach the server. Check your connection.";
    });
})();

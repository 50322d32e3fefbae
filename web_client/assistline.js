// The embeddable snippet: a host app includes
//   <script src="https://<server>/web/assistline.js"></script>
// and calls Assistline.open({contact, token}) or Assistline.open({joinUrl}).
// The customer page opens in an overlay (an iframe allowed the microphone,
// camera and autoplay) over the host page; on screens under 600 px wide the
// overlay fills the screen. Assistline.open({..., target: "tab"}) opens the
// page in a new tab instead (for web views that give no media to iframes).
// Closing the overlay (its button, or Escape) ends the call: the page goes.
// A classic script with no dependencies, so any page can include it.
(function () {
  "use strict";

  var script = document.currentScript;
  var server = new URL(script && script.src ? script.src : "/", window.location.href).origin;
  var current = null;

  function joinUrl(options) {
    if (options.joinUrl) {
      var url = new URL(String(options.joinUrl), server);
      if (url.protocol !== "https:" && url.protocol !== "http:") {
        throw new Error("Assistline.open: joinUrl must be an http(s) URL");
      }
      return url.href;
    }
    if (!options.contact || !options.token) {
      throw new Error("Assistline.open needs {contact, token} or {joinUrl}");
    }
    var page = new URL("/", server);
    page.searchParams.set("contact", String(options.contact));
    page.searchParams.set("token", String(options.token));
    return page.href;
  }

  function style(element, rules) {
    for (var name in rules) element.style.setProperty(name, rules[name]);
    return element;
  }

  function close() {
    if (current === null) return;
    var open = current;
    current = null;
    document.removeEventListener("keydown", open.onKey, true);
    open.overlay.remove();
    if (open.returnFocus && typeof open.returnFocus.focus === "function") open.returnFocus.focus();
  }

  function openOverlay(src, title) {
    close();
    var small = window.matchMedia("(max-width: 599px)").matches;
    var overlay = style(document.createElement("div"), {
      position: "fixed",
      inset: "0",
      "z-index": "2147483647",
      display: "flex",
      "align-items": "center",
      "justify-content": "center",
      background: "rgba(0, 0, 0, 0.6)",
      margin: "0",
      padding: "0",
    });
    overlay.setAttribute("role", "dialog");
    overlay.setAttribute("aria-modal", "true");
    overlay.setAttribute("aria-label", title);
    overlay.dataset.assistline = "overlay";

    var panel = style(document.createElement("div"), {
      position: "relative",
      width: small ? "100%" : "min(28rem, 100%)",
      height: small ? "100%" : "min(46rem, 100%)",
      background: "#ffffff",
      "border-radius": small ? "0" : "0.75rem",
      overflow: "hidden",
      display: "flex",
      "flex-direction": "column",
    });

    var closeButton = style(document.createElement("button"), {
      "align-self": "flex-end",
      "min-width": "44px",
      "min-height": "44px",
      margin: "0.25rem",
      padding: "0.5rem 0.75rem",
      border: "2px solid #0b57d0",
      "border-radius": "0.5rem",
      background: "#ffffff",
      color: "#0b57d0",
      font: "600 16px system-ui, sans-serif",
      cursor: "pointer",
    });
    closeButton.type = "button";
    closeButton.textContent = "Close";
    closeButton.setAttribute("aria-label", "Close " + title.toLowerCase());
    closeButton.addEventListener("click", close);

    var frame = style(document.createElement("iframe"), {
      flex: "1 1 auto",
      width: "100%",
      border: "0",
    });
    frame.src = src;
    frame.title = title;
    frame.setAttribute("allow", "microphone; camera; autoplay");

    panel.append(closeButton, frame);
    overlay.append(panel);
    var onKey = function (event) {
      if (event.key === "Escape") close();
    };
    document.addEventListener("keydown", onKey, true);
    current = { overlay: overlay, onKey: onKey, returnFocus: document.activeElement };
    document.body.append(overlay);
    frame.focus();
    return { close: close, frame: frame };
  }

  function open(options) {
    options = options || {};
    var src = joinUrl(options);
    var title = options.title || "Call us";
    if (options.target === "tab") {
      window.open(src, "_blank", "noopener");
      return { close: function () {}, frame: null };
    }
    return openOverlay(src, title);
  }

  window.Assistline = { open: open, close: close };
})();

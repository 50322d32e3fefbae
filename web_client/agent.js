// The agent console (first version, for agents on SIP phones): sign in, set
// availability, see who is calling (the screen pop) and the call's state, and
// chat with the customer while connected.
// Live updates come over /ws/agent (assistline/signalling/agent_ws.py documents
// its messages). Every value from the server is rendered with textContent.

const $ = (id) => document.getElementById(id);

const STATE_NAMES = {
  offline: "Offline",
  available: "Available",
  busy: "Busy",
  wrap_up: "Wrapping up",
};
const CALL_STATES = {
  ringing: "Your phone is ringing: answer it to take the call.",
  connected: "Connected.",
  ended: "The call has ended.",
};
const PING_SECONDS = 15;
const MAX_CHAT = 2000;

let socket = null;
let pingTimer = null;
let retryTimer = null;
let retryDelay = 1000;
let signingOut = false;
let offered = null; // the contact whose screen pop is shown
let connected = null; // the contact the agent is connected to: chat goes there
let pendingChat = null; // the line sent, kept in the box until the server echoes it

function notice(text) {
  $("notice").textContent = text;
}

// ------------------------------------------------------------------ rendering

function money(cents, currency) {
  if (cents === null || cents === undefined) return "Not given";
  try {
    const format = new Intl.NumberFormat(undefined, { style: "currency", currency });
    const digits = format.resolvedOptions().maximumFractionDigits;
    return format.format(cents / 10 ** digits);
  } catch {
    return `${(cents / 100).toFixed(2)} ${currency}`;
  }
}

function when(text) {
  const at = new Date(text);
  return Number.isNaN(at.getTime()) ? String(text) : at.toLocaleString();
}

function shown(value) {
  if (value === null || value === undefined || value === "") return "—";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function definitions(pairs) {
  const list = document.createElement("dl");
  for (const [term, value] of pairs) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    list.append(dt, dd);
  }
  return list;
}

function heading(text) {
  const h = document.createElement("h3");
  h.textContent = text;
  return h;
}

// Renders a screen pop ({contact, customer_id, account, balance_cents,
// currency, step, fields, context_trail}) into `container`.
function renderPop(container, pop) {
  const parts = [
    definitions([
      ["Customer", shown(pop.customer_id)],
      ["Account", shown(pop.account)],
      ["Balance", money(pop.balance_cents, pop.currency)],
      ["Where they were", shown(pop.step)],
      ["Contact", shown(pop.contact)],
    ]),
  ];
  parts.push(heading("What they did before asking"));
  const trail = Array.isArray(pop.context_trail) ? pop.context_trail : [];
  if (trail.length === 0) {
    const none = document.createElement("p");
    none.textContent = "Nothing recorded.";
    parts.push(none);
  } else {
    const list = document.createElement("ol");
    list.className = "trail";
    for (const item of trail) {
      const entry = document.createElement("li");
      const at = document.createElement("span");
      at.className = "at";
      at.textContent = item && item.at ? when(item.at) : "";
      const what = document.createElement("span");
      const detail = item && item.detail ? `: ${shown(item.detail)}` : "";
      what.textContent = `${shown(item && item.step)}${detail}`;
      entry.append(at, " ", what);
      list.append(entry);
    }
    parts.push(list);
  }
  const fields = pop.fields && typeof pop.fields === "object" ? Object.entries(pop.fields) : [];
  if (fields.length > 0) {
    parts.push(heading("Other details"));
    parts.push(definitions(fields.map(([name, value]) => [name, shown(value)])));
  }
  container.replaceChildren(...parts);
}

function showChatLine(text, from) {
  const line = document.createElement("li");
  line.className = from === "agent" ? "mine" : "theirs";
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = from === "agent" ? "You: " : "Customer: ";
  const body = document.createElement("span");
  body.textContent = text;
  line.append(who, body);
  $("chat-log").append(line);
  $("chat-log").scrollTop = $("chat-log").scrollHeight;
}

// Chat is open while the agent is connected to a contact.
function setConnected(contact) {
  connected = contact;
  pendingChat = null;
  $("chat-input").disabled = contact === null;
  $("chat-send").disabled = contact === null;
}

function setState(state) {
  $("agent-state").textContent = STATE_NAMES[state] || state;
  $("available").checked = state !== "offline";
}

// ------------------------------------------------------------------ the socket

function send(message) {
  if (!socket || socket.readyState !== WebSocket.OPEN) return false;
  socket.send(JSON.stringify(message));
  return true;
}

function onMessage(message) {
  switch (message.type) {
    case "hello":
      $("agent-name").textContent = message.agent.name;
      setState(message.state);
      $("calls-note").hidden = message.calls !== false;
      $("connection").textContent = "";
      retryDelay = 1000;
      break;
    case "state":
      setState(message.state);
      break;
    case "offer":
      offered = message.contact;
      $("call-section").hidden = false;
      renderPop($("offer-pop"), message);
      notice(`Incoming call: customer ${shown(message.customer_id)}, account ${shown(message.account)}.`);
      break;
    case "call":
      if (message.state === "ringing" && message.contact !== offered) {
        offered = null; // a call with no screen pop (not a contact of this server)
        $("offer-pop").replaceChildren();
      }
      if (message.state === "ringing") $("chat-log").replaceChildren();
      if (message.state === "connected") setConnected(message.contact);
      else if (message.contact === connected || message.state === "ringing") setConnected(null);
      $("call-section").hidden = false;
      $("call-state").textContent = CALL_STATES[message.state] || message.state;
      break;
    case "chat":
      if (message.contact !== connected) break;
      showChatLine(message.text, message.from);
      if (message.from === "agent" && pendingChat !== null) {
        // The echo may differ (card numbers masked): it is the line just sent all the same.
        if ($("chat-input").value.trim() === pendingChat) $("chat-input").value = "";
        pendingChat = null;
      }
      break;
    case "error":
      pendingChat = null;
      notice(message.message);
      send({ type: "ping" }); // answered with the state, which resets the switch
      break;
    default:
      break;
  }
}

function connect() {
  clearTimeout(retryTimer);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(`${scheme}//${location.host}/ws/agent`);
  socket.addEventListener("message", (event) => {
    try {
      onMessage(JSON.parse(event.data));
    } catch {
      // A frame that is not JSON is ignored.
    }
  });
  socket.addEventListener("open", () => {
    clearInterval(pingTimer);
    pingTimer = setInterval(() => send({ type: "ping" }), PING_SECONDS * 1000);
  });
  socket.addEventListener("close", (event) => {
    clearInterval(pingTimer);
    socket = null;
    if (signingOut) return;
    if (event.code === 4401) {
      showSignIn("Your session has ended. Sign in again.");
      return;
    }
    $("connection").textContent = "Connection lost. Reconnecting…";
    retryTimer = setTimeout(start, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 30000);
  });
}

// ------------------------------------------------------------------ screens

function showSignIn(message) {
  clearTimeout(retryTimer);
  $("console").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = "";
  notice(message || "");
  $("agent-id").focus();
}

async function showConsole() {
  $("sign-in").hidden = true;
  $("console").hidden = false;
  $("you-heading").focus();
  connect();
  await showLinkedCall();
}

// The phone's screen-pop link is /agent?call=<contact id>.
async function showLinkedCall() {
  const call = new URLSearchParams(location.search).get("call");
  if (!call) return;
  $("link-section").hidden = false;
  $("link-state").textContent = "Loading the call's details…";
  try {
    const response = await fetch(`/api/v1/agent/contacts/${encodeURIComponent(call)}`, {
      cache: "no-store",
      credentials: "same-origin",
    });
    if (response.ok) {
      renderPop($("link-pop"), await response.json());
      $("link-state").textContent = "";
    } else if (response.status === 401) {
      showSignIn("Your session has ended. Sign in again.");
    } else {
      $("link-pop").replaceChildren();
      $("link-state").textContent =
        response.status === 404 || response.status === 400
          ? "This call has no customer details (it is not a contact of this server)."
          : "The call's details could not be loaded.";
    }
  } catch {
    $("link-state").textContent = "The call's details could not be loaded. Check your connection.";
  }
}

async function start() {
  try {
    const response = await fetch("/api/v1/agent/session", {
      cache: "no-store",
      credentials: "same-origin",
    });
    if (response.status === 401) {
      showSignIn("");
    } else if (response.ok) {
      await showConsole();
    } else {
      notice("The server cannot sign you in right now. Please try again in a few minutes.");
      retryTimer = setTimeout(start, 10000);
    }
  } catch {
    notice("Cannot reach the server. Check your connection.");
    retryTimer = setTimeout(start, 10000);
  }
}

async function signIn(event) {
  event.preventDefault();
  const error = $("sign-in-error");
  error.textContent = "";
  const body = { agent_id: $("agent-id").value.trim(), password: $("password").value };
  let response;
  try {
    response = await fetch("/api/v1/agent/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch {
    error.textContent = "Cannot reach the server. Check your connection.";
    return;
  }
  $("password").value = "";
  if (response.status === 201) {
    signingOut = false;
    notice("");
    await showConsole();
  } else if (response.status === 401) {
    error.textContent = "The agent id or the password is wrong.";
    $("password").focus();
  } else if (response.status === 429) {
    const seconds = Number(response.headers.get("Retry-After")) || 300;
    const minutes = Math.max(1, Math.ceil(seconds / 60));
    error.textContent = `Too many failed sign-ins. Try again in ${minutes} minute${minutes > 1 ? "s" : ""}.`;
  } else {
    error.textContent = "Signing in failed. Please try again.";
  }
}

async function signOut() {
  signingOut = true;
  try {
    await fetch("/api/v1/agent/session", { method: "DELETE", credentials: "same-origin" });
  } catch {
    // The server closes the session's sockets; without it, it expires on its own.
  }
  if (socket) socket.close();
  setConnected(null);
  $("chat-log").replaceChildren();
  $("call-section").hidden = true;
  $("offer-pop").replaceChildren();
  offered = null;
  $("link-section").hidden = true;
  $("link-pop").replaceChildren();
  showSignIn("You have signed out.");
}

function sendChat(event) {
  event.preventDefault();
  const text = $("chat-input").value.trim();
  if (connected === null) return;
  if (!text) {
    notice("Type a message first.");
    return;
  }
  if (text.length > MAX_CHAT) {
    notice(`A message can be at most ${MAX_CHAT} characters.`);
    return;
  }
  if (!send({ type: "chat", contact: connected, text })) {
    notice("Not connected to the server yet; try again in a moment.");
    return;
  }
  pendingChat = text; // the box empties when the server echoes the line
}

$("sign-in").addEventListener("submit", signIn);
$("chat-form").addEventListener("submit", sendChat);
$("sign-out").addEventListener("click", signOut);
$("available").addEventListener("change", (event) => {
  const state = event.target.checked ? "available" : "offline";
  if (!send({ type: "set_state", state })) {
    event.target.checked = !event.target.checked;
    notice("Not connected to the server yet; try again in a moment.");
  }
});
start();

// The agent console: sign in, set availability, see who is calling (the
// screen pop) and the call's state, and chat with the customer while
// connected. Calls ring the agent's SIP phone, or, with "Take calls in this
// browser" on (works_in "console"), come to this page: accept or decline,
// then talk, mute, add video and hang up here (agent_call.js). While
// connected, the agent can take a secure payment (agent_payment.js).
// Live updates come over /ws/agent (assistline/signalling/agent_ws.py and
// agent_media.py document its messages). Every value from the server is
// rendered with textContent.

import { ConsoleCall, microphoneProblem } from "/web/agent_call.js";
import { PaymentPanel } from "/web/agent_payment.js";
import { renderPop, shown } from "/web/agent_pop.js";

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
const CONSOLE_RINGING = "A customer is calling: accept to talk in this browser, or decline.";
const MEDIA_STATES = {
  new: "starting",
  connecting: "connecting…",
  connected: "connected",
  disconnected: "interrupted; reconnecting…",
  failed: "failed",
  closed: "closed",
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
let agentId = null;
let iceServers = []; // hello's: the only ICE servers a call in this browser uses
let worksIn = "sip"; // where this console said contacts go: "sip" (the phone) or "console"
let pendingWorksIn = null; // asked for, not yet confirmed by a state frame
let call = null; // the ConsoleCall taken in this browser
const payment = new PaymentPanel(send); // the call's "Secure payment" part

function notice(text) {
  $("notice").textContent = text;
}

// ------------------------------------------------------------------ rendering

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
  payment.connected(contact);
}

function setState(state) {
  $("agent-state").textContent = STATE_NAMES[state] || state;
  $("available").checked = state !== "offline";
  // Where calls go changes between calls only (available is refused while busy).
  $("in-browser").disabled = pendingWorksIn !== null || state === "busy" || state === "wrap_up";
}

// ------------------------------------------------------------------ calls in this browser

function worksInKey() {
  return `assistline.works_in.${agentId}`;
}

function showWorksIn() {
  $("in-browser").checked = worksIn === "console";
  $("phone-hint").hidden = worksIn === "console";
}

// Remembers where this browser's agent takes calls, so a reload keeps it.
function keepWorksIn(value) {
  worksIn = value;
  try {
    localStorage.setItem(worksInKey(), value);
  } catch {
    // Storage may be off; the choice then lasts as long as the page.
  }
  showWorksIn();
}

function askWorksIn(value, state) {
  if (!send({ type: "set_state", state, works_in: value })) return false;
  pendingWorksIn = value;
  $("in-browser").disabled = true;
  return true;
}

// hello does not say where the agent takes calls: this browser's last choice
// is restored, and "console" said again while the agent is between calls.
function restoreWorksIn(state) {
  let stored = null;
  try {
    stored = localStorage.getItem(worksInKey());
  } catch {
    stored = null;
  }
  worksIn = stored === "console" ? "console" : "sip";
  showWorksIn();
  if (worksIn === "console" && (state === "available" || state === "offline")) {
    askWorksIn("console", state);
  }
}

// Accept and Decline while offered; Decline alone while an accepted call connects.
function showOfferActions(show, connecting = false) {
  $("offer-actions").hidden = !show;
  $("accept").hidden = connecting;
  $("accept").disabled = !show || connecting;
  $("decline").disabled = !show;
}

function mediaState(text) {
  $("media-state").textContent = text;
}

function callView() {
  return {
    track(remote, track) {
      if ($("remote-audio").srcObject !== remote) $("remote-audio").srcObject = remote;
      if (track.kind !== "video") return;
      // Shown once the customer's frames come (their camera may be off).
      const show = () => {
        if (call === null) return;
        if ($("remote-video").srcObject !== remote) $("remote-video").srcObject = remote;
        $("remote-video").hidden = false;
        if (!call.cameraOn) notice("The customer is on video. Choose Video to show your camera.");
      };
      if (track.muted) track.addEventListener("unmute", show, { once: true });
      else show();
    },
    media(state) {
      mediaState(`Audio: ${MEDIA_STATES[state] || state}.`);
    },
    camera(on, error) {
      const button = $("video-button");
      button.setAttribute("aria-pressed", String(on));
      const self = $("self-view");
      if (on && call !== null) {
        self.srcObject = call.stream;
        self.hidden = false;
      } else {
        self.srcObject = null;
        self.hidden = true;
      }
      if (error) {
        notice(
          error.name === "NotAllowedError"
            ? "Your camera is blocked: allow it in the browser's settings to turn video on."
            : "No camera was found: connect one to turn video on.",
        );
      }
    },
  };
}

// The call in this browser is over (ended by either side, or never connected).
function endCall() {
  if (call !== null) call.close();
  call = null;
  const inCall = $("call-section").contains(document.activeElement);
  showOfferActions(false);
  $("call-controls").hidden = true;
  $("media").hidden = true;
  for (const id of ["remote-video", "self-view", "remote-audio"]) $(id).srcObject = null;
  $("remote-video").hidden = true;
  $("self-view").hidden = true;
  $("mute").setAttribute("aria-pressed", "false");
  $("hold").setAttribute("aria-pressed", "false");
  $("video-button").setAttribute("aria-pressed", "false");
  mediaState("");
  if (inCall) $("call-heading").focus();
}

async function acceptCall() {
  if (offered === null || call !== null) return;
  showOfferActions(false);
  call = new ConsoleCall(offered, iceServers, send, callView());
  const taking = call;
  $("call-state").textContent = "Asking for your microphone…";
  try {
    await taking.accept();
  } catch (error) {
    taking.close();
    if (call === taking) {
      call = null;
      $("call-state").textContent = CONSOLE_RINGING;
      showOfferActions(true);
      notice(microphoneProblem(error));
      $("accept").focus();
    }
    return;
  }
  if (call === taking) {
    $("media").hidden = false;
    $("call-state").textContent = "Connecting…";
    showOfferActions(true, true);
    $("decline").focus();
  }
}

function declineCall() {
  if (offered === null) return;
  if (call !== null) call.decline();
  else send({ type: "decline", contact: offered });
  endCall();
  $("call-state").textContent = "You declined the call.";
}

function toggleHold() {
  const on = $("hold").getAttribute("aria-pressed") !== "true";
  if (call !== null) send({ type: "hold", contact: call.contact, on });
}

function toggleMute() {
  if (call === null) return;
  const muted = $("mute").getAttribute("aria-pressed") !== "true";
  call.mute(muted);
  $("mute").setAttribute("aria-pressed", String(muted));
}

async function toggleVideo() {
  const button = $("video-button");
  if (call === null || button.getAttribute("aria-disabled") === "true") return;
  const on = button.getAttribute("aria-pressed") !== "true";
  button.setAttribute("aria-disabled", "true");
  try {
    if (await call.setCamera(on, on)) {
      notice("Your camera is on; the customer is asked to turn theirs on.");
    } else if (!on) {
      notice("Your camera is off. The call goes on.");
    }
  } catch (error) {
    notice(`Video could not be changed: ${String(error && error.message ? error.message : error)}.`);
  } finally {
    button.removeAttribute("aria-disabled");
  }
}

function hangUp() {
  if (call === null) return;
  call.hangup();
  endCall(); // the server confirms with call ended
  $("call-state").textContent = "Hanging up…";
}

function onCall(message) {
  const here = call !== null && message.contact === call.contact;
  switch (message.state) {
    case "ringing":
      if (worksIn === "console" && message.contact === offered && call === null) {
        $("call-state").textContent = CONSOLE_RINGING;
        showOfferActions(true);
        return;
      }
      break;
    case "connected":
      if (here) {
        showOfferActions(false);
        $("media").hidden = false;
        $("call-controls").hidden = false;
        $("call-state").textContent = CALL_STATES.connected;
        $("mute").focus();
        return;
      }
      break;
    case "ended":
      if (here || message.contact === offered) endCall();
      break;
    default:
      break;
  }
  $("call-state").textContent = CALL_STATES[message.state] || message.state;
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
      agentId = message.agent.id;
      iceServers = Array.isArray(message.ice_servers) ? message.ice_servers : [];
      pendingWorksIn = null;
      setState(message.state);
      restoreWorksIn(message.state);
      $("calls-note").hidden = message.calls !== false;
      $("connection").textContent = "";
      retryDelay = 1000;
      break;
    case "state":
      if (pendingWorksIn !== null) {
        keepWorksIn(pendingWorksIn); // the reply to set_state with works_in
        pendingWorksIn = null;
        notice(worksIn === "console" ? "Calls come to this browser." : "Calls ring your phone.");
      }
      setState(message.state);
      break;
    case "offer":
      offered = message.contact;
      $("call-section").hidden = false;
      renderPop($("offer-pop"), message);
      payment.offered(message);
      notice(`Incoming call: customer ${shown(message.customer_id)}, account ${shown(message.account)}.`);
      break;
    case "hold":
      $("hold").setAttribute("aria-pressed", String(message.on === true));
      $("call-state").textContent = message.on ? "The customer is on hold." : CALL_STATES.connected;
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
      onCall(message);
      break;
    case "answer":
      if (call !== null && message.contact === call.contact) call.answer(message.sdp);
      break;
    case "escalate_video":
      if (call !== null && message.contact === call.contact && !call.cameraOn) {
        notice("The customer turned on video: turning on your camera.");
        call.setCamera(true, false).catch(() => {});
      }
      break;
    case "payment":
      payment.frame(message);
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
      if (pendingWorksIn !== null) {
        pendingWorksIn = null;
        showWorksIn(); // the switch goes back to where calls still go
      } else if (payment.refused(message)) {
        break; // shown beside the amount
      } else if (pendingChat === null && call !== null && call.pending) {
        refusedCall(call);
      }
      pendingChat = null;
      notice(message.message);
      send({ type: "ping" }); // answered with the state, which resets the switches
      break;
    default:
      break;
  }
}

// The server refused the call's accept (the offer may stand: accept again or
// decline) or its new offer (video stays off).
async function refusedCall(refused) {
  const offerStands = await refused.refused();
  if (offerStands && call === refused) {
    call = null;
    endCall();
    $("call-state").textContent = CONSOLE_RINGING;
    showOfferActions(true);
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
  if (call !== null) call.hangup();
  endCall();
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
$("accept").addEventListener("click", acceptCall);
$("decline").addEventListener("click", declineCall);
$("mute").addEventListener("click", toggleMute);
$("hold").addEventListener("click", toggleHold);
$("video-button").addEventListener("click", toggleVideo);
$("hangup").addEventListener("click", hangUp);
$("in-browser").addEventListener("change", (event) => {
  const wanted = event.target.checked ? "console" : "sip";
  const state = $("available").checked ? "available" : "offline";
  if (!askWorksIn(wanted, state)) {
    event.target.checked = !event.target.checked;
    notice("Not connected to the server yet; try again in a moment.");
  }
});
$("available").addEventListener("change", (event) => {
  const state = event.target.checked ? "available" : "offline";
  if (!send({ type: "set_state", state })) {
    event.target.checked = !event.target.checked;
    notice("Not connected to the server yet; try again in a moment.");
  }
});
start();

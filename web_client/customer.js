// The customer page: join the contact of the link (/?contact=…&token=…), or
// a demo contact when the server runs as a demo, and call with audio or video.
// Everything the server or an agent sends is shown as text, never as HTML.

import { CallSession } from "/web/session.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// What the server issues: 32 bytes in unpadded base64url (see tokens.py).
const TOKEN = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;
const MAX_CHAT = 2000;
const ASK_AGAIN = "Please ask us for a new link.";
const WHOLE_LINK = "Open the whole link you were sent, or ask us for a new one.";

const ENDED = {
  hangup: "you hung up",
  agent_hangup: "the agent hung up",
  no_agent: "no agent could take your call",
  media_failed: "the audio connection failed",
  shutdown: "the service is restarting",
  connection_lost: "the connection to the service was lost",
  page_closed: "the page was closed",
};
const MEDIA = {
  new: "waiting for the service",
  connecting: "connecting…",
  connected: "connected",
  disconnected: "interrupted; reconnecting…",
  failed: "failed",
  closed: "closed",
};

const $ = (id) => document.getElementById(id);
const ui = {
  demoSection: $("demo-section"),
  demo: $("demo"),
  start: $("start"),
  call: $("call"),
  video: $("video"),
  notice: $("notice"),
  inCall: $("in-call"),
  callState: $("call-state"),
  connection: $("connection"),
  remoteVideo: $("remote-video"),
  selfView: $("self-view"),
  remoteAudio: $("remote-audio"),
  mute: $("mute"),
  videoToggle: $("video-toggle"),
  keypadToggle: $("keypad-toggle"),
  keypad: $("keypad"),
  secureNote: $("secure-note"),
  hangup: $("hangup"),
  chatLog: $("chat-log"),
  chatForm: $("chat-form"),
  chatInput: $("chat-input"),
};

// link: {contact, token, demo, used}; session: the CallSession while one is open.
let link = null;
let session = null;
let busy = false;
let serviceText = "";
let pendingChat = null;
// The camera in a call: on, and being turned on or off.
let cameraOn = false;
let cameraBusy = false;

function notify(text) {
  ui.notice.textContent = text;
}

function setBusy(value) {
  busy = value;
  for (const button of [ui.call, ui.video, ui.demo]) {
    if (value) button.setAttribute("aria-disabled", "true");
    else button.removeAttribute("aria-disabled");
  }
}

// The in-call video control: shown while connected (unless video was refused),
// labelled with what it will do.
function showVideoToggle(connected) {
  ui.videoToggle.hidden = !connected || session === null || session.videoRefused;
  ui.videoToggle.textContent = cameraOn ? "Turn off video" : "Turn on video";
}

function showSelfView(stream) {
  const live = stream.getVideoTracks().some((track) => track.readyState === "live");
  if (live && ui.selfView.srcObject !== stream) ui.selfView.srcObject = stream;
  if (!live) ui.selfView.srcObject = null;
  ui.selfView.hidden = !live;
}

async function toggleCamera() {
  if (session === null || cameraBusy) return;
  cameraBusy = true;
  ui.videoToggle.setAttribute("aria-disabled", "true");
  if (!cameraOn) notify("Asking for your camera…");
  try {
    await session.setCamera(!cameraOn);
  } catch (error) {
    notify(`Video could not be changed: ${String(error && error.message ? error.message : error)}.`);
  } finally {
    cameraBusy = false;
    ui.videoToggle.removeAttribute("aria-disabled");
  }
}

function cameraProblem(error) {
  if (error && error.name === "NotAllowedError") {
    return "Your camera is blocked: allow it in your browser's settings to be seen.";
  }
  return "No camera was found, so the agent cannot see you.";
}

function showConnection(service, media) {
  if (service !== null) serviceText = service;
  const audio = media === null ? "" : ` Audio: ${MEDIA[media] || media}.`;
  ui.connection.textContent = serviceText + audio;
}

// Why a link cannot be used, before anything is asked of the server; "" if none.
function linkProblem(contact, token) {
  if (!contact || !UUID.test(contact)) {
    const what = contact
      ? "This link is damaged: its contact part is not right."
      : "This link is incomplete: its contact part is missing.";
    return `${what} ${WHOLE_LINK}`;
  }
  if (!token) {
    return `This link is incomplete: its token is missing. ${WHOLE_LINK}`;
  }
  if (!TOKEN.test(token)) {
    return `This link is damaged: its token is not whole (a mail app may have cut it). ${WHOLE_LINK}`;
  }
  return "";
}

function showStart(focus) {
  ui.demoSection.hidden = true;
  ui.inCall.hidden = true;
  ui.start.hidden = false;
  if (focus) ui.call.focus();
}

async function createDemoContact() {
  let response;
  try {
    response = await fetch("/api/v1/demo/contacts", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
      cache: "no-store",
    });
  } catch {
    notify("Cannot reach the service. Check your connection and try again.");
    return null;
  }
  if (response.status === 201) {
    const created = await response.json();
    return { contact: created.contact, token: created.token, demo: true, used: false };
  }
  if (response.status === 404) {
    ui.demo.hidden = true;
    notify(
      "This page needs a join link: open the link we sent you (it ends with " +
        "?contact=…&token=…). Demo calls are turned off on this server.",
    );
    ui.notice.focus();
  } else if (response.status === 429) {
    const wait = response.headers.get("Retry-After") || "60";
    notify(`Too many demo calls from here just now. Try again in ${wait} seconds.`);
  } else {
    notify("The service could not start a demo call just now. Try again in a few minutes.");
  }
  return null;
}

async function tryDemo() {
  if (busy) return;
  setBusy(true);
  notify("Preparing a demo call…");
  try {
    link = await createDemoContact();
  } finally {
    setBusy(false);
  }
  if (link !== null) {
    notify("Your demo call is ready: choose Call or Video.");
    showStart(true);
  }
}

async function getMedia(video) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    notify("This browser cannot make calls. Try a recent Chrome, Firefox or Safari.");
    return null;
  }
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video: video });
  } catch (error) {
    if (video) {
      try {
        return await navigator.mediaDevices.getUserMedia({ audio: true });
      } catch {
        // Falls through to the microphone message.
      }
    }
    const denied = error && error.name === "NotAllowedError";
    notify(
      denied
        ? "A call needs your microphone. Allow it in your browser's settings, then try again."
        : "No microphone was found. Connect one, then try again.",
    );
    return null;
  }
}

async function startCall(video) {
  if (busy || session !== null) return;
  if (link.used) {
    if (!link.demo) {
      notify(`This link has been used already. ${ASK_AGAIN}`);
      return;
    }
    setBusy(true);
    const fresh = await createDemoContact();
    setBusy(false);
    if (fresh === null) return;
    link = fresh;
  }
  setBusy(true);
  notify(video ? "Asking for your camera and microphone…" : "Asking for your microphone…");
  const stream = await getMedia(video);
  if (stream === null) {
    setBusy(false);
    return;
  }
  const cameraMissing = video && stream.getVideoTracks().length === 0;
  notify(cameraMissing ? "Your camera is not available, so this call is audio only. Connecting…" : "Connecting…");
  session = new CallSession(link.contact, link.token, stream, handlers(stream));
  session.start();
}

function handlers(stream) {
  return {
    hello() {
      link.used = true;
      setBusy(false);
      notify("");
      ui.callState.textContent = "Waiting for an agent.";
      showConnection("Connected to the service.", "new");
      ui.chatLog.replaceChildren();
      ui.mute.setAttribute("aria-pressed", "false");
      cameraOn = stream.getVideoTracks().length > 0;
      showVideoToggle(false);
      ui.keypad.hidden = true;
      ui.keypadToggle.setAttribute("aria-expanded", "false");
      if (stream.getVideoTracks().length) {
        ui.selfView.srcObject = stream;
        ui.selfView.hidden = false;
      }
      ui.start.hidden = true;
      ui.inCall.hidden = false;
      ui.mute.focus();
    },
    state(message) {
      const agent = message.agent || "an agent";
      const text = {
        queued: `You are number ${message.position} in the queue.`,
        ringing: `Calling ${agent}…`,
        connected: `You are talking with ${agent}.`,
        on_hold: "You are on hold. Please stay on the line.",
        ended: "The call has ended.",
      }[message.state];
      if (text) ui.callState.textContent = text;
      showVideoToggle(message.state === "connected");
    },
    chat(text, from) {
      const line = document.createElement("li");
      line.className = from === "customer" ? "mine" : "theirs";
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = from === "customer" ? "You: " : "Agent: ";
      const body = document.createElement("span");
      body.textContent = text;
      line.append(who, body);
      ui.chatLog.append(line);
      ui.chatLog.scrollTop = ui.chatLog.scrollHeight;
      // The echo of the line just sent; it may differ from it (card numbers are masked).
      if (from === "customer" && pendingChat !== null) {
        if (ui.chatInput.value.trim() === pendingChat) ui.chatInput.value = "";
        pendingChat = null;
      }
    },
    error(code, text) {
      const message = String(text).replace(/[.\s]+$/, "");
      if (code === "not_now") {
        notify(`Not available yet: ${message}. Your call stays open; you can hang up at any time.`);
      } else {
        notify(`Something went wrong: ${message}.`);
      }
    },
    videoUnavailable(reason) {
      cameraOn = false;
      ui.selfView.hidden = true;
      ui.selfView.srcObject = null;
      ui.videoToggle.hidden = true;
      notify(`Video is not available (${reason}). The call goes on with audio.`);
    },
    escalated() {
      notify("The agent turned on video: turning on your camera…");
    },
    secure(on) {
      ui.secureNote.hidden = !on;
      if (on && ui.keypad.hidden) toggleKeypad();
      notify(on ? "Secure payment: enter your card details on the keypad." : "Secure payment ended.");
    },
    camera(on, error) {
      cameraOn = on;
      showSelfView(stream);
      showVideoToggle(!ui.videoToggle.hidden);
      if (error !== null) notify(`${cameraProblem(error)} You can still see the agent's video.`);
      else if (on) notify("Your camera is on: the agent can see you. Choose Turn off video to stop it.");
      else notify("Your camera is off. The call goes on.");
    },
    media(state) {
      showConnection(null, state);
    },
    track(remote, track) {
      if (ui.remoteAudio.srcObject !== remote) ui.remoteAudio.srcObject = remote;
      if (track.kind !== "video") return;
      // Shown once its frames come: a video section may stay silent (the agent's camera off).
      const show = () => {
        if (session === null) return;
        if (ui.remoteVideo.srcObject !== remote) ui.remoteVideo.srcObject = remote;
        ui.remoteVideo.hidden = false;
      };
      if (track.muted) track.addEventListener("unmute", show, { once: true });
      else show();
    },
    refused() {
      session = null;
      setBusy(false);
      explainRefusal();
    },
    ended(reason) {
      session = null;
      setBusy(false);
      pendingChat = null;
      cameraOn = false;
      ui.videoToggle.hidden = true;
      for (const element of [ui.selfView, ui.remoteVideo, ui.remoteAudio]) {
        element.srcObject = null;
      }
      ui.selfView.hidden = true;
      ui.remoteVideo.hidden = true;
      const why = ENDED[reason] || reason;
      const again = link.demo
        ? "Choose Call or Video for another demo call."
        : "To talk to us again, please ask for a new link.";
      notify(`The call has ended: ${why}. ${again}`);
      showStart(true);
    },
  };
}

// The socket closed before hello. Browsers do not show why a WebSocket was
// refused, so tell an unreachable service from a refused link, no more.
async function explainRefusal() {
  let reachable = false;
  try {
    reachable = (await fetch("/healthz", { cache: "no-store" })).ok;
  } catch {
    reachable = false;
  }
  notify(
    reachable
      ? "We could not start a call with this link. A link works once, for a few minutes, " +
          `and only on the site that sent it: it may have expired or been used already. ${ASK_AGAIN}`
      : "Cannot reach the service. Check your connection and try again.",
  );
}

function toggleMute() {
  if (session === null) return;
  const muted = ui.mute.getAttribute("aria-pressed") !== "true";
  for (const track of session.stream.getAudioTracks()) track.enabled = !muted;
  ui.mute.setAttribute("aria-pressed", String(muted));
}

function toggleKeypad() {
  const open = ui.keypad.hidden;
  ui.keypad.hidden = !open;
  ui.keypadToggle.setAttribute("aria-expanded", String(open));
}

function sendChat(event) {
  event.preventDefault();
  if (session === null) return;
  const text = ui.chatInput.value.trim();
  if (!text) {
    notify("Type a message first.");
    return;
  }
  if (text.length > MAX_CHAT) {
    notify(`A message can be at most ${MAX_CHAT} characters.`);
    return;
  }
  // The text stays in the box until the server echoes it, so a refused line is not lost.
  pendingChat = text;
  session.chat(text);
}

function main() {
  ui.demo.addEventListener("click", tryDemo);
  ui.call.addEventListener("click", () => startCall(false));
  ui.video.addEventListener("click", () => startCall(true));
  ui.mute.addEventListener("click", toggleMute);
  ui.videoToggle.addEventListener("click", toggleCamera);
  ui.keypadToggle.addEventListener("click", toggleKeypad);
  ui.keypad.addEventListener("click", (event) => {
    const key = event.target.closest("button[data-digit]");
    if (key !== null && session !== null) session.digit(key.dataset.digit);
  });
  ui.hangup.addEventListener("click", () => {
    if (session !== null) session.hangup();
  });
  ui.chatForm.addEventListener("submit", sendChat);
  window.addEventListener("pagehide", () => {
    if (session !== null) session.hangup();
  });

  const params = new URLSearchParams(window.location.search);
  const contact = params.get("contact");
  const token = params.get("token");
  if (contact === null && token === null) {
    ui.demoSection.hidden = false;
    return;
  }
  const problem = linkProblem(contact, token);
  if (problem) {
    notify(problem);
    return;
  }
  link = { contact: contact, token: token, demo: false, used: false };
  showStart(false);
}

main();

// One contact's call: the /ws signalling session (protocol v1, see
// signalling.schema.json) and the browser's RTCPeerConnection. No DOM here:
// customer.js shows what a session reports through its handlers.
//
// Video mid-call: the page is always the offerer of its own connection, so
// adding the camera (the customer's choice, or the server's escalate_video
// when the agent turned theirs on) sends a new offer on the same
// RTCPeerConnection, answered by the server. The camera helpers are shared
// with the agent console (agent_call.js), which renegotiates the same way.

const PING_EVERY_MS = 20000;
const END_OF_CANDIDATES = { candidate: "", sdpMid: null, sdpMLineIndex: null };

// The ws:// or wss:// URL of /ws for this page's origin.
function socketUrl(contact, token) {
  const url = new URL("/ws", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.search = new URLSearchParams({ contact: contact, token: token }).toString();
  return url.href;
}

// A candidate as the protocol carries it (what RTCIceCandidate.toJSON() gives).
function candidateFrame(candidate) {
  if (candidate === null || candidate.candidate === "") {
    return { type: "candidate", ...END_OF_CANDIDATES };
  }
  const json = candidate.toJSON();
  const frame = {
    type: "candidate",
    candidate: json.candidate,
    sdpMid: json.sdpMid ?? null,
    sdpMLineIndex: json.sdpMLineIndex ?? null,
  };
  if (json.usernameFragment) frame.usernameFragment = json.usernameFragment;
  return frame;
}

// The connection's video transceiver (the first one not stopped), or null.
export function videoTransceiver(peer) {
  return (
    peer
      .getTransceivers()
      .find((t) => t.receiver.track.kind === "video" && t.direction !== "stopped") || null
  );
}

// The camera's track, or the error getUserMedia gave.
export async function openCamera() {
  try {
    const camera = await navigator.mediaDevices.getUserMedia({ video: true });
    const track = camera.getVideoTracks()[0];
    if (track) return { track: track, error: null };
    return { track: null, error: new DOMException("no camera track", "NotFoundError") };
  } catch (error) {
    return { track: null, error: error };
  }
}

// Sends the camera's `track` on `peer` (and keeps it in `stream`): on the video
// transceiver if there is one, else on a new one. True when the connection must
// be renegotiated (a new or a receive-only video section); false when the track
// only replaces one that was stopped.
export async function sendVideo(peer, stream, track) {
  stream.addTrack(track);
  const transceiver = videoTransceiver(peer);
  if (transceiver === null) {
    peer.addTrack(track, stream);
    return true;
  }
  await transceiver.sender.replaceTrack(track);
  if (transceiver.direction === "sendrecv" || transceiver.direction === "sendonly") return false;
  transceiver.sender.setStreams(stream);
  transceiver.direction = "sendrecv";
  return true;
}

// Adds a receive-only video section (the other side's video, without a camera
// here); true when one was added, so the connection must be renegotiated.
export function receiveVideo(peer) {
  if (videoTransceiver(peer) !== null) return false;
  peer.addTransceiver("video", { direction: "recvonly" });
  return true;
}

// Stops the camera: its tracks end (the camera's light goes off) and leave
// `stream`; the video sender sends nothing. No renegotiation is needed.
export async function stopVideo(peer, stream) {
  for (const track of stream.getVideoTracks()) {
    track.stop();
    stream.removeTrack(track);
  }
  const transceiver = peer === null ? null : videoTransceiver(peer);
  if (transceiver !== null && transceiver.sender.track !== null) {
    await transceiver.sender.replaceTrack(null);
  }
}

// True while `stream` has a camera track that is live.
export function cameraLive(stream) {
  return stream.getVideoTracks().some((track) => track.readyState === "live");
}

// handlers: hello(message), state(message), chat(text, from), error(code, text),
// videoUnavailable(reason), media(connectionState), track(MediaStream, track)
// (the remote stream, once per track added to it), escalated() (the agent
// turned video on: the camera is about to be added), camera(on, error) (the
// camera went on or off; error is getUserMedia's when it could not start),
// refused() (the socket closed before hello: the server turned the link down,
// or could not be reached), ended(reason).
export class CallSession {
  constructor(contact, token, stream, handlers) {
    this.contact = contact;
    this.token = token;
    this.stream = stream;
    this.handlers = handlers;
    this.socket = null;
    this.peer = null;
    this.joined = false;
    this.finished = false;
    // Local candidates wait for the answer: until the server has taken the
    // offer it has nowhere to put them (it answers them not_now).
    this.answered = false;
    this.pendingCandidates = [];
    this.remoteCandidates = [];
    // The remote party's tracks, gathered in one stream (audio first, video when added).
    this.remote = new MediaStream();
    // Video: refused by the server (the agent is on a phone), and a new offer
    // wanted while one is still waiting for its answer.
    this.videoRefused = false;
    this.offerAgain = false;
    this.work = Promise.resolve();
    this.pinger = 0;
  }

  start() {
    this.socket = new WebSocket(socketUrl(this.contact, this.token));
    this.socket.addEventListener("message", (event) => {
      // One frame at a time, in order: hello must have made the peer before answer.
      this.work = this.work.then(() => this.receive(event.data)).catch((error) => {
        this.handlers.error("page", String(error && error.message ? error.message : error));
      });
    });
    this.socket.addEventListener("close", () => {
      if (this.finished) return;
      if (!this.joined) {
        this.finished = true;
        this.teardown();
        this.handlers.refused();
      } else {
        this.finish("connection_lost");
      }
    });
  }

  send(message) {
    if (this.socket !== null && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  chat(text) {
    return this.send({ type: "chat", text: text });
  }

  digit(key) {
    return this.send({ type: "digit", digit: key });
  }

  hangup() {
    this.send({ type: "hangup" });
    this.finish("hangup");
  }

  // Turns the camera on (asking the agent to turn theirs on too) or off. Runs
  // in turn with the frames received; resolves to whether the camera is on.
  setCamera(on) {
    const done = this.work.then(() => (on ? this.cameraOn(true) : this.cameraOff()));
    this.work = done.catch(() => {});
    return done;
  }

  async cameraOn(ask) {
    if (this.finished || this.peer === null || this.videoRefused) return false;
    if (cameraLive(this.stream)) return true;
    if (ask) this.send({ type: "escalate_video" });
    const { track, error } = await openCamera();
    if (this.finished) {
      if (track !== null) track.stop();
      return false;
    }
    // Without a camera the agent's video can still be seen: receive only.
    const renegotiate =
      track === null ? receiveVideo(this.peer) : await sendVideo(this.peer, this.stream, track);
    if (renegotiate) await this.negotiate();
    this.handlers.camera(track !== null, error);
    return track !== null;
  }

  async cameraOff() {
    if (this.finished) return false;
    await stopVideo(this.peer, this.stream);
    this.handlers.camera(false, null);
    return false;
  }

  // Sends a new offer on the connection, or once the one waiting is answered.
  async negotiate() {
    if (this.peer.signalingState !== "stable") {
      this.offerAgain = true;
      return;
    }
    await this.peer.setLocalDescription(await this.peer.createOffer());
    this.send({ type: "offer", sdp: this.peer.localDescription.sdp });
  }

  async receive(text) {
    if (this.finished) return;
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    switch (message.type) {
      case "hello":
        await this.hello(message);
        break;
      case "answer":
        await this.peer.setRemoteDescription({ type: "answer", sdp: message.sdp });
        await this.remoteDescribed();
        if (this.offerAgain) {
          this.offerAgain = false;
          await this.negotiate();
        }
        break;
      case "offer":
        await this.peer.setRemoteDescription({ type: "offer", sdp: message.sdp });
        await this.peer.setLocalDescription(await this.peer.createAnswer());
        this.send({ type: "answer", sdp: this.peer.localDescription.sdp });
        await this.remoteDescribed();
        break;
      case "candidate":
        await this.remoteCandidate(message);
        break;
      case "state":
        this.handlers.state(message);
        if (message.state === "ended") this.finish(message.reason);
        break;
      case "chat":
        this.handlers.chat(message.text, message.from);
        break;
      case "escalate_video":
        if (this.peer === null || this.videoRefused || cameraLive(this.stream)) break;
        this.handlers.escalated();
        await this.cameraOn(false);
        break;
      case "secure":
        this.handlers.secure(message.state === "on");
        break;
      case "video_unavailable":
        this.videoRefused = true;
        await stopVideo(this.peer, this.stream);
        this.handlers.videoUnavailable(message.reason);
        break;
      case "error":
        await this.refusedOffer(message.code);
        this.handlers.error(message.code, message.message);
        break;
      case "pong":
        break;
      default:
        break;
    }
  }

  async hello(message) {
    this.joined = true;
    // Exactly the ICE servers the server names: nothing is ever added here.
    this.peer = new RTCPeerConnection({ iceServers: message.ice_servers });
    for (const track of this.stream.getTracks()) this.peer.addTrack(track, this.stream);
    this.peer.addEventListener("icecandidate", (event) => this.localCandidate(event.candidate));
    this.peer.addEventListener("track", (event) => {
      this.remote.addTrack(event.track);
      this.handlers.track(this.remote, event.track);
    });
    this.peer.addEventListener("connectionstatechange", () => {
      this.handlers.media(this.peer.connectionState);
    });
    this.pinger = window.setInterval(() => this.send({ type: "ping" }), PING_EVERY_MS);
    this.handlers.hello(message);
    await this.peer.setLocalDescription(await this.peer.createOffer());
    this.send({ type: "offer", sdp: this.peer.localDescription.sdp });
  }

  // The server refused a new offer (adding video): the connection goes back to
  // what it was, without the camera.
  async refusedOffer(code) {
    if (code !== "sdp_refused" || !this.answered || this.peer.signalingState !== "have-local-offer") {
      return;
    }
    this.offerAgain = false;
    await this.peer.setLocalDescription({ type: "rollback" });
    if (cameraLive(this.stream)) await this.cameraOff();
  }

  localCandidate(candidate) {
    const frame = candidateFrame(candidate);
    if (this.answered) this.send(frame);
    else this.pendingCandidates.push(frame);
  }

  async remoteDescribed() {
    this.answered = true;
    for (const frame of this.pendingCandidates.splice(0)) this.send(frame);
    for (const message of this.remoteCandidates.splice(0)) await this.remoteCandidate(message);
  }

  async remoteCandidate(message) {
    if (this.peer === null || this.peer.remoteDescription === null) {
      this.remoteCandidates.push(message);
      return;
    }
    const init = {
      candidate: message.candidate,
      sdpMid: message.sdpMid,
      sdpMLineIndex: message.sdpMLineIndex,
    };
    if (message.usernameFragment) init.usernameFragment = message.usernameFragment;
    await this.peer.addIceCandidate(init);
  }

  teardown() {
    window.clearInterval(this.pinger);
    if (this.peer !== null) this.peer.close();
    for (const track of this.stream.getTracks()) track.stop();
  }

  finish(reason) {
    if (this.finished) return;
    this.finished = true;
    this.teardown();
    if (this.socket !== null && this.socket.readyState <= WebSocket.OPEN) {
      this.socket.close(1000);
    }
    this.handlers.ended(reason);
  }
}

// One contact's call: the /ws signalling session (protocol v1, see
// signalling.schema.json) and the browser's RTCPeerConnection. No DOM here:
// customer.js shows what a session reports through its handlers.

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

// handlers: hello(message), state(message), chat(text, from), error(code, text),
// videoUnavailable(reason), media(connectionState), track(MediaStream),
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
      case "video_unavailable":
        for (const track of this.stream.getVideoTracks()) track.stop();
        this.handlers.videoUnavailable(message.reason);
        break;
      case "error":
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
      this.handlers.track(event.streams[0] || new MediaStream([event.track]));
    });
    this.peer.addEventListener("connectionstatechange", () => {
      this.handlers.media(this.peer.connectionState);
    });
    this.pinger = window.setInterval(() => this.send({ type: "ping" }), PING_EVERY_MS);
    this.handlers.hello(message);
    await this.peer.setLocalDescription(await this.peer.createOffer());
    this.send({ type: "offer", sdp: this.peer.localDescription.sdp });
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

// A contact taken in the agent console's browser (works_in "console"): the
// console's WebRTC peer for one contact, over /ws/agent (the frames of
// assistline/signalling/agent_media.py). No DOM here: agent.js shows what a
// call reports through its view.
//
// The console is always the offerer of its own leg: `accept` carries its
// first offer (audio, and a receive-only video section, so a customer on video
// is seen at once without turning the agent's camera on), `offer` a new one
// when it adds its camera; the server answers both with `answer`. Candidates
// are trickled once the answer is in. Only the ICE servers of `hello` are used.

import {
  cameraLive,
  openCamera,
  receiveVideo,
  sendVideo,
  stopVideo,
} from "/web/session.js";

// view: track(MediaStream, track) (the customer's stream, once per track added),
// media(connectionState), camera(on, error) (error: getUserMedia's, or null).
// What to tell an agent whose microphone could not be had.
export function microphoneProblem(error) {
  return error && error.name === "NotAllowedError"
    ? "Taking a call here needs your microphone: allow it in the browser's settings, or decline."
    : "No microphone was found: connect one, or decline the call.";
}

export class ConsoleCall {
  constructor(contact, iceServers, send, view) {
    this.contact = contact;
    this.iceServers = iceServers;
    this.send = send;
    this.view = view;
    this.stream = null;
    this.peer = null;
    this.remote = new MediaStream();
    // What waits for the server's answer: "accept" or "offer"; null when nothing does.
    this.waiting = null;
    this.offerAgain = false;
    this.answered = false;
    this.pendingCandidates = [];
    this.closed = false;
    // Frames and camera changes run one at a time, in order.
    this.work = Promise.resolve();
  }

  // Runs `step` after everything queued before it; resolves (or rejects) as it does.
  queue(step) {
    const done = this.work.then(step);
    this.work = done.catch(() => {});
    return done;
  }

  // Takes the offered contact: the microphone, the peer, and `accept` with the
  // offer. Rejects with getUserMedia's error when there is no microphone.
  accept() {
    return this.queue(async () => {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      if (this.closed) {
        this.stopTracks();
        return;
      }
      // Exactly the ICE servers the server named: nothing is ever added here.
      const peer = new RTCPeerConnection({ iceServers: this.iceServers });
      this.peer = peer;
      for (const track of this.stream.getAudioTracks()) peer.addTrack(track, this.stream);
      receiveVideo(peer);
      peer.addEventListener("icecandidate", (event) => this.localCandidate(event.candidate));
      peer.addEventListener("track", (event) => {
        this.remote.addTrack(event.track);
        this.view.track(this.remote, event.track);
      });
      peer.addEventListener("connectionstatechange", () => {
        if (!this.closed) this.view.media(peer.connectionState);
      });
      await peer.setLocalDescription(await peer.createOffer());
      this.waiting = "accept";
      this.send({ type: "accept", contact: this.contact, sdp: peer.localDescription.sdp });
    });
  }

  // The server's answer to `accept` or to a new `offer`.
  answer(sdp) {
    return this.queue(async () => {
      if (this.closed || this.peer === null || this.waiting === null) return;
      this.waiting = null;
      await this.peer.setRemoteDescription({ type: "answer", sdp: sdp });
      if (!this.answered) {
        this.answered = true;
        for (const frame of this.pendingCandidates.splice(0)) this.send(frame);
      }
      if (this.offerAgain) {
        this.offerAgain = false;
        await this.negotiate();
      }
    });
  }

  // The server refused what waited for an answer: an `accept` ends the call
  // here (true: the offer stands, the agent may accept again or decline); a
  // new `offer` is rolled back and the camera stopped.
  refused() {
    return this.queue(async () => {
      if (this.closed || this.waiting === null) return false;
      const what = this.waiting;
      this.waiting = null;
      if (what === "accept") {
        this.close();
        return true;
      }
      this.offerAgain = false;
      await this.peer.setLocalDescription({ type: "rollback" });
      await stopVideo(this.peer, this.stream);
      this.view.camera(false, null);
      return false;
    });
  }

  // Whether a frame sent is waiting for the server's answer.
  get pending() {
    return this.waiting !== null;
  }

  get cameraOn() {
    return this.stream !== null && cameraLive(this.stream);
  }

  // Turns the camera on or off. `ask`: also ask the customer to add video
  // (escalate_video), when the agent chose it. Resolves to whether it is on.
  setCamera(on, ask) {
    return this.queue(async () => {
      if (this.closed || this.peer === null) return false;
      if (!on) {
        await stopVideo(this.peer, this.stream);
        this.view.camera(false, null);
        return false;
      }
      if (this.cameraOn) return true;
      const { track, error } = await openCamera();
      if (this.closed) {
        if (track !== null) track.stop();
        return false;
      }
      if (track === null) {
        this.view.camera(false, error);
        return false;
      }
      if (await sendVideo(this.peer, this.stream, track)) await this.negotiate();
      if (ask) this.send({ type: "escalate_video", contact: this.contact });
      this.view.camera(true, null);
      return true;
    });
  }

  mute(muted) {
    if (this.stream === null) return;
    for (const track of this.stream.getAudioTracks()) track.enabled = !muted;
  }

  // Sends a new offer on the connection, or once the one waiting is answered.
  async negotiate() {
    if (this.waiting !== null || this.peer.signalingState !== "stable") {
      this.offerAgain = true;
      return;
    }
    await this.peer.setLocalDescription(await this.peer.createOffer());
    this.waiting = "offer";
    this.send({ type: "offer", contact: this.contact, sdp: this.peer.localDescription.sdp });
  }

  // A candidate as /ws/agent carries it (exactly these keys); "" ends them.
  localCandidate(candidate) {
    const frame = { type: "candidate", contact: this.contact };
    if (candidate === null || candidate.candidate === "") {
      Object.assign(frame, { candidate: "", sdpMid: null, sdpMLineIndex: null });
    } else {
      Object.assign(frame, {
        candidate: candidate.candidate,
        sdpMid: candidate.sdpMid ?? null,
        sdpMLineIndex: candidate.sdpMLineIndex ?? null,
      });
    }
    if (this.answered) this.send(frame);
    else this.pendingCandidates.push(frame);
  }

  decline() {
    this.send({ type: "decline", contact: this.contact });
    this.close();
  }

  hangup() {
    this.send({ type: "hangup", contact: this.contact });
    this.close();
  }

  stopTracks() {
    if (this.stream !== null) for (const track of this.stream.getTracks()) track.stop();
  }

  // Tears the peer down (the call ended, here or on the server); idempotent.
  close() {
    if (this.closed) return;
    this.closed = true;
    this.waiting = null;
    this.stopTracks();
    if (this.peer !== null) this.peer.close();
  }
}

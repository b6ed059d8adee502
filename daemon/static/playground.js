// personae browser playground: plain JavaScript, no build step.
//
// Talks protocol v1 over JSON text frames (audio as base64 PCM16): picks the scene,
// streams the microphone while the talk button is held (or continuously with voice
// activity), shows transcript, routing scores and replies, and plays every
// character's audio as it arrives. `window.personae` exposes state for tests.
"use strict";

(() => {
  const WS_URL = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/realtime`;
  const SUBPROTOCOL = "personae.v1";
  const COLORS = ["#e0a458", "#7fc8a9", "#c39bd3", "#6fa8dc", "#e5868b", "#b5c96a"];
  const $ = (sel) => document.querySelector(sel);

  const state = {
    ws: null,
    status: "connecting",
    session: null,
    cast: [],            // [{id, name, description}] from /v1/characters
    scene: new Set(),    // ids of the characters in the scene
    mode: "ptt",         // "ptt" (hold to talk) or "vad" (voice activity)
    speak: true,
    retries: 0,
    pendingPlayer: null, // the player's turn element awaiting its transcript
    replies: new Map(),  // response id -> {el, text, character, sources}
    audio: { chunks: 0, scheduledMs: 0, endedChunks: 0, peak: 0 },
    errors: [],
    events: [],          // types of every event received, in order (for tests)
    unknown: [],
    exchange: null,      // the id of the exchange between characters now running
    lineEnd: 0,          // when the audio scheduled last ends (audio-context time)
    actions: [],         // npc.action of kind "game": {id, name, arguments, character, result}
  };
  window.personae = state;
  // the mouth of whoever is speaking (mouth.js); state.lips.stats for tests
  state.lips = window.PersonaeMouth.create($("#mouth"), $("#mouth-viseme"));

  // ------------------------------------------------------------------ the socket

  function connect() {
    setStatus(state.retries ? "reconnecting" : "connecting");
    const ws = new WebSocket(WS_URL, [SUBPROTOCOL]);
    state.ws = ws;
    ws.onopen = () => { state.retries = 0; };
    ws.onmessage = (msg) => {
      if (typeof msg.data !== "string") return; // we speak JSON, so the daemon answers in JSON
      let event;
      try { event = JSON.parse(msg.data); } catch (e) { return reportError("malformed_frame", String(e)); }
      if (!event || typeof event.type !== "string") return reportError("invalid_event", "event without a type");
      state.events.push(event.type);
      const handler = HANDLERS[event.type];
      if (handler) handler(event);
      else state.unknown.push(event.type); // a newer daemon: ignore what we do not know
    };
    ws.onclose = (e) => {
      if (state.ws !== ws) return;
      state.ws = null;
      stopMic();
      for (const reply of state.replies.values()) {
        if (reply.done) continue;
        reply.done = { status: "failed" };
        reply.el.dataset.status = "failed";
        reply.el.classList.add("cancelled");
        reply.el.querySelector(".meta").textContent = "interrupted: connection lost";
      }
      const delay = Math.min(15000, 500 * 2 ** state.retries++) * (0.5 + Math.random() / 2);
      reportError("connection_lost", `connection closed (${e.code}); retrying in ${(delay / 1000).toFixed(1)} s`);
      setStatus("reconnecting");
      setTimeout(connect, delay);
    };
  }

  function send(event) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
    state.ws.send(JSON.stringify(event));
    return true;
  }

  function updateSession(fields) {
    send({ type: "session.update", session: fields });
  }

  function sessionSettings() {
    return {
      characters: [...state.scene],
      turn_detection: state.mode === "vad" ? { type: "server_vad" } : null,
      output_modalities: state.speak ? ["text", "audio"] : ["text"],
    };
  }

  // ------------------------------------------------------------------ events

  const HANDLERS = {
    "session.created": (e) => {
      state.session = e.session;
      $("#session-id").textContent = e.session.id;
      setStatus("connected");
      if (state.cast.length) updateSession(sessionSettings());
      if (state.mode === "vad") startMic();
    },
    "session.updated": (e) => { state.session = e.session; },
    "input_audio_buffer.speech_started": () => {
      playerTurn("(speaking…)", true);
      stopAllAudio(); // barge-in: the daemon cancels the reply, we stop playing it
    },
    "input_audio_buffer.speech_stopped": () => {},
    "input_audio_buffer.committed": () => { if (!state.pendingPlayer) playerTurn("(listening…)", true); },
    "input_audio_buffer.cleared": () => {},
    "conversation.item.created": () => {},
    "conversation.item.truncated": () => {},
    "conversation.item.input_audio_transcription.delta": (e) => {
      // the player's words as they are transcribed, before the turn ends
      const el = state.pendingPlayer || playerTurn("", true);
      const text = el.querySelector(".text");
      text.textContent = (el.dataset.partial || "") + e.delta;
      el.dataset.partial = text.textContent;
    },
    "conversation.item.input_audio_transcription.completed": (e) => {
      const el = state.pendingPlayer || playerTurn("", true);
      el.querySelector(".text").textContent = e.transcript || "(nothing heard)";
      el.classList.remove("pending");
      el.dataset.transcript = e.transcript;
      state.pendingPlayer = null;
    },
    "npc.route": (e) => showRoute(e),
    "response.created": (e) => startReply(e.response),
    "response.output_text.delta": (e) => {
      const reply = replyFor(e);
      reply.text += e.delta;
      reply.el.querySelector(".text").textContent = reply.text;
      scrollDown();
    },
    "response.output_text.done": (e) => {
      const reply = replyFor(e);
      reply.text = e.text;
      reply.el.querySelector(".text").textContent = e.text;
    },
    "npc.sentence": (e) => { replyFor(e).sentences += 1; },
    "npc.viseme": (e) => state.lips.add(e),
    "npc.emotion": (e) => showEmotion(e),
    "npc.alert": (e) => add("error", `${esc(character(e.character).name)} is drifting out of character: ` +
      `${esc(e.signal)} ${e.rolling.toFixed(2)} < ${e.threshold.toFixed(2)} over ${e.replies} replies`),
    "npc.action": (e) => {
      if (e.kind === "game") return showGameAction(e);
      const chip = document.createElement("span");
      chip.className = "action " + (e.kind === "emotion" ? "tone" : "gesture");
      chip.textContent = e.kind === "emotion" ? `[${e.text}]` : `*${e.text}*`;
      replyFor(e).el.querySelector(".actions").appendChild(chip);
    },
    "npc.exchange.started": (e) => {
      state.exchange = e.exchange_id;
      const who = e.characters.map((id) => esc(character(id).name)).join(" and ");
      add("note exchange", `${who} talk about <i>${esc(e.topic)}</i> (${e.lines} lines)`);
    },
    "npc.exchange.line": (e) => {
      const reply = state.replies.get(e.response_id);
      if (reply) reply.el.querySelector(".meta").append(` · line ${e.index + 1} · ${e.adapter || "base model"}`);
    },
    "npc.exchange.done": (e) => {
      state.exchange = null;
      const next = e.handoff ? ` · ${esc(character(e.handoff).name)} takes your next question` : "";
      add("note exchange", `the talk ended: ${esc(e.reason)} after ${e.lines_spoken} line(s)${next}`);
    },
    "response.output_audio.delta": (e) => playChunk(e),
    "response.output_audio.done": () => {},
    "response.done": (e) => finishReply(e.response),
    "error": (e) => reportError(e.error.code, e.error.message),
  };

  // ------------------------------------------------------------------ the log

  function add(cls, html) {
    const el = document.createElement("div");
    el.className = cls;
    el.innerHTML = html;
    $("#log").appendChild(el);
    scrollDown();
    return el;
  }

  function scrollDown() { const log = $("#log"); log.scrollTop = log.scrollHeight; }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  function character(id) {
    const i = state.cast.findIndex((c) => c.id === id);
    return { id, name: i >= 0 ? state.cast[i].name : id, color: COLORS[(i >= 0 ? i : 0) % COLORS.length] };
  }

  function playerTurn(text, pending) {
    if (state.pendingPlayer && pending) return state.pendingPlayer;
    const how = pending ? ' <span class="how">· spoken</span>' : "";
    const el = add("turn player" + (pending ? " pending" : ""), `<div class="who">You${how}</div><div class="text">${esc(text)}</div>`);
    if (pending) state.pendingPlayer = el;
    return el;
  }

  function showRoute(e) {
    const who = character(e.character);
    const scores = Object.entries(e.scores || {}).sort((a, b) => b[1] - a[1]);
    const max = Math.max(1e-6, ...scores.map(([, s]) => Math.abs(s)));
    const bars = scores.map(([id, s]) => `
      <span>${esc(character(id).name)}</span>
      <div class="bar${id === e.character ? " chosen" : ""}"><div style="width:${Math.max(2, (100 * s) / max).toFixed(0)}%"></div></div>
      <span>${s.toFixed(2)}</span>`).join("");
    const el = add("route", `→ <b style="color:${who.color}">${esc(who.name)}</b> answers <i>(${esc(e.reason)})</i><div class="bars">${bars}</div>`);
    el.dataset.character = e.character;
  }

  // A declared action the game should execute: shown with buttons that answer it.
  function showGameAction(e) {
    const who = character(e.character);
    const args = Object.entries(e.arguments || {}).map(([k, v]) => `${esc(k)}: ${esc(v)}`).join(", ");
    const action = { id: e.action_id, name: e.name, arguments: e.arguments, character: e.character, result: null };
    state.actions.push(action);
    const el = add("game-action", `<b style="color:${who.color}">${esc(who.name)}</b> does <code>${esc(e.name)}</code>` +
      ` (${args}) <span class="result">— answer as the game:</span>
      <input class="reason" type="text" placeholder="reason (optional)" aria-label="reason">
      <button type="button" data-status="done">done</button>
      <button type="button" data-status="refused">refused</button>
      <button type="button" data-status="failed">failed</button>`);
    el.dataset.action = e.action_id;
    for (const button of el.querySelectorAll("button")) {
      button.addEventListener("click", () => {
        const reason = el.querySelector(".reason").value.trim();
        action.result = button.dataset.status;
        send({ type: "game.action_result", action_id: e.action_id, status: action.result, reason });
        el.querySelector(".result").textContent = `— ${action.result}${reason ? ": " + reason : ""}`;
        for (const b of el.querySelectorAll("button, input")) b.disabled = true;
      });
    }
  }

  function startReply(response) {
    const who = character(response.character);
    const el = add("turn reply", `<div class="who" style="color:${who.color}">${esc(who.name)}</div><div class="actions"></div><div class="text"></div><div class="meta"></div>`);
    el.dataset.character = response.character;
    el.dataset.response = response.id;
    const reply = { el, text: "", character: response.character, sentences: 0, sources: new Set(), rate: response.output_sample_rate || 24000 };
    state.replies.set(response.id, reply);
    return reply;
  }

  function replyFor(e) {
    return state.replies.get(e.response_id) || startReply({ id: e.response_id, character: e.character });
  }

  function finishReply(response) {
    const reply = state.replies.get(response.id) || startReply(response);
    reply.done = response;
    reply.el.dataset.status = response.status;
    if (response.status !== "completed") reply.el.classList.add("cancelled");
    if (!reply.text && response.output_text) reply.el.querySelector(".text").textContent = response.output_text;
    const secs = (response.audio_sent_ms / 1000).toFixed(1);
    reply.el.querySelector(".meta").textContent =
      `${response.status}${response.status_reason ? " (" + response.status_reason + ")" : ""} · ${reply.sentences} sentence(s) · ${secs} s audio`;
    if (response.status === "completed") feedbackButtons(reply, response);
  }

  function showEmotion(e) {
    const li = document.querySelector(`#cast li[data-id="${CSS.escape(e.character)}"]`);
    if (li) {
      let badge = li.querySelector(".emotion");
      if (!badge) {
        badge = document.createElement("span");
        badge.className = "emotion";
        li.querySelector("label").appendChild(badge);
      }
      badge.textContent = e.dominant;
      badge.title = Object.entries(e.blend || {}).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ");
    }
    const extra = e.trust == null ? "" : ` · trust ${e.trust.toFixed(2)}`;
    add("note", `${esc(character(e.character).name)} feels <b>${esc(e.dominant)}</b> (${e.intensity.toFixed(2)})${extra}`);
  }

  function feedbackButtons(reply, response) {
    const box = document.createElement("span");
    box.className = "feedback";
    for (const [label, score] of [["Good", 1], ["Bad", -1]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.addEventListener("click", () => {
        send({ type: "npc.feedback", character: response.character, score, response_id: response.id });
        for (const other of box.querySelectorAll("button")) other.disabled = true;
        b.classList.add("chosen");
      });
      box.appendChild(b);
    }
    reply.el.querySelector(".meta").appendChild(box);
  }

  function reportError(code, message) {
    state.errors.push({ code, message });
    add("error", `${esc(code)}: ${esc(message)}`);
  }

  function setStatus(s) {
    state.status = s;
    const el = $("#status");
    el.textContent = s;
    el.className = "status " + s;
    el.dataset.state = s;
    $("#talk").disabled = s !== "connected";
    $("#send").disabled = s !== "connected";
  }

  // ------------------------------------------------------------------ audio out

  let ctx = null;
  let master = null;
  let analyser = null;
  const voices = new Map(); // character -> {gain, next}

  function audioContext() {
    if (!ctx) {
      ctx = new AudioContext();
      master = ctx.createGain();
      analyser = ctx.createAnalyser();
      analyser.fftSize = 1024;
      master.connect(analyser);
      analyser.connect(ctx.destination);
      watchOutput();
    }
    if (ctx.state === "suspended") ctx.resume();
    return ctx;
  }

  function watchOutput() {
    const buf = new Float32Array(analyser.fftSize);
    setInterval(() => {
      analyser.getFloatTimeDomainData(buf);
      let peak = 0;
      for (const v of buf) peak = Math.max(peak, Math.abs(v));
      state.audio.peak = Math.max(state.audio.peak, peak);
      for (const li of document.querySelectorAll("#cast li")) {
        const v = voices.get(li.dataset.id);
        li.querySelector("label").classList.toggle("speaking", !!v && v.next > ctx.currentTime);
      }
    }, 50);
  }

  function voice(id) {
    let v = voices.get(id);
    if (!v) {
      const gain = ctx.createGain();
      gain.connect(master);
      v = { gain, next: 0 };
      voices.set(id, v);
    }
    return v;
  }

  function base64ToBytes(b64) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return bytes;
  }

  function playChunk(e) {
    const reply = replyFor(e);
    const bytes = base64ToBytes(e.delta);
    const pcm = new Int16Array(bytes.buffer, 0, bytes.length >> 1);
    if (!pcm.length) return;
    const ac = audioContext();
    const rate = (state.session && state.session.output_sample_rate) || reply.rate;
    const buffer = ac.createBuffer(1, pcm.length, rate);
    const data = buffer.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) data[i] = pcm[i] / 32768;
    const v = voice(e.character);
    const src = ac.createBufferSource();
    src.buffer = buffer;
    src.connect(v.gain);
    // 80 ms of jitter headroom; the lines of an exchange play one after the other
    const at = Math.max(ac.currentTime + 0.08, v.next, state.exchange ? state.lineEnd : 0);
    src.start(at);
    state.lips.scheduled(e, ac, at, buffer.duration);
    v.next = at + buffer.duration;
    state.lineEnd = v.next;
    reply.sources.add(src);
    reply.el.classList.add("playing");
    src.onended = () => {
      reply.sources.delete(src);
      state.audio.endedChunks += 1;
      if (!reply.sources.size) reply.el.classList.remove("playing");
      updateAudioStats();
    };
    state.audio.chunks += 1;
    state.audio.scheduledMs += buffer.duration * 1000;
    updateAudioStats();
  }

  function updateAudioStats() {
    $("#audio-stats").textContent = `${state.audio.chunks} chunks, ${(state.audio.scheduledMs / 1000).toFixed(1)} s`;
  }

  function stopAllAudio() {
    for (const reply of state.replies.values()) {
      for (const src of reply.sources) { try { src.stop(); } catch (_) { /* not started */ } }
      reply.sources.clear();
      reply.el.classList.remove("playing");
    }
    for (const v of voices.values()) v.next = 0;
    state.lips.stop();
  }

  // ------------------------------------------------------------------ microphone

  const mic = { stream: null, node: null, source: null, resampler: null, pending: [], pendingLen: 0, live: false };

  async function startMic() {
    if (mic.live) return;
    mic.live = true;
    const ac = audioContext();
    try {
      mic.stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (err) {
      mic.live = false;
      return reportError("microphone", String(err && err.message || err));
    }
    if (!mic.live) return stopTracks(); // released before the microphone opened
    // The browser cancels the character's echo (echoCancellation above): tell the daemon,
    // whose own echo check is then skipped (docs/clients/echo.md).
    const track = mic.stream.getAudioTracks()[0];
    const aec = !!(track && track.getSettings && track.getSettings().echoCancellation);
    if (!state.session || state.session.client_echo_cancellation !== aec) {
      updateSession({ client_echo_cancellation: aec });
    }
    const inRate = (state.session && state.session.input_sample_rate) || 16000;
    mic.resampler = downsampler(ac.sampleRate, inRate);
    mic.source = ac.createMediaStreamSource(mic.stream);
    if (ac.audioWorklet) {
      if (!ac._personaeWorklet) ac._personaeWorklet = ac.audioWorklet.addModule("/playground/mic-worklet.js");
      await ac._personaeWorklet;
      mic.node = new AudioWorkletNode(ac, "personae-mic");
      mic.node.port.onmessage = (m) => onMicBlock(m.data);
    } else {
      mic.node = ac.createScriptProcessor(2048, 1, 1);
      mic.node.onaudioprocess = (ev) => onMicBlock(ev.inputBuffer.getChannelData(0).slice(0));
    }
    mic.source.connect(mic.node);
    const sink = ac.createGain();
    sink.gain.value = 0; // keeps the node pulled without echoing the mic
    mic.node.connect(sink);
    sink.connect(ac.destination);
    mic.sink = sink;
  }

  function stopTracks() {
    if (mic.stream) for (const t of mic.stream.getTracks()) t.stop();
    mic.stream = null;
  }

  function stopMic() {
    mic.live = false;
    flushMic();
    if (mic.source) mic.source.disconnect();
    if (mic.node) { mic.node.disconnect(); if (mic.node.port) mic.node.port.onmessage = null; }
    if (mic.sink) mic.sink.disconnect();
    mic.source = mic.node = mic.sink = null;
    stopTracks();
    $("#mic-level").style.width = "0";
  }

  function onMicBlock(samples) {
    if (!mic.live) return;
    let sum = 0;
    for (const v of samples) sum += v * v;
    $("#mic-level").style.width = `${Math.min(100, Math.sqrt(sum / samples.length) * 400).toFixed(0)}%`;
    const out = mic.resampler(samples);
    mic.pending.push(out);
    mic.pendingLen += out.length;
    const inRate = (state.session && state.session.input_sample_rate) || 16000;
    if (mic.pendingLen >= inRate / 10) flushMic(); // ~100 ms per frame
  }

  function flushMic() {
    if (!mic.pendingLen) return;
    const pcm = new Int16Array(mic.pendingLen);
    let o = 0;
    for (const block of mic.pending) {
      for (const v of block) pcm[o++] = Math.max(-32768, Math.min(32767, Math.round(v * 32768)));
    }
    mic.pending = [];
    mic.pendingLen = 0;
    send({ type: "input_audio_buffer.append", audio: bytesToBase64(new Uint8Array(pcm.buffer)) });
  }

  function bytesToBase64(bytes) {
    let bin = "";
    for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(bin);
  }

  /** Streaming downsampler: box-filter then linear interpolation, state kept across blocks. */
  function downsampler(from, to) {
    const step = from / to;
    const taps = step > 1 ? Math.ceil(step) : 1;
    const hist = new Float32Array(taps);
    let h = 0, pos = 0, prev = 0, primed = false;
    return (input) => {
      const x = new Float32Array(input.length + 1);
      x[0] = prev;
      for (let i = 0; i < input.length; i++) {
        hist[h] = input[i]; h = (h + 1) % taps;
        let s = 0;
        for (let k = 0; k < taps; k++) s += hist[k];
        x[i + 1] = s / taps;
      }
      if (!primed) { x[0] = x[1]; primed = true; }
      const out = [];
      while (pos <= input.length - 1e-9) {
        const i = Math.floor(pos), f = pos - i;
        const a = x[i], b = i + 1 <= input.length ? x[i + 1] : x[i];
        out.push(a + (b - a) * f);
        pos += step;
      }
      pos -= input.length;
      prev = x[input.length];
      return Float32Array.from(out);
    };
  }

  // ------------------------------------------------------------------ controls

  async function loadCast() {
    try {
      const res = await fetch("/v1/characters");
      const body = await res.json();
      state.cast = body.characters;
    } catch (err) {
      reportError("characters", "cannot list characters: " + err);
      return;
    }
    const list = $("#cast");
    list.innerHTML = "";
    state.cast.forEach((c, i) => {
      state.scene.add(c.id);
      const li = document.createElement("li");
      li.dataset.id = c.id;
      li.innerHTML = `<label><input type="checkbox" value="${esc(c.id)}" checked>
        <span class="dot" style="background:${COLORS[i % COLORS.length]}"></span>${esc(c.name)}</label>
        <div class="desc">${esc(c.description || "")}</div>
        ${(c.actions || []).length ? `<div class="desc">actions: ${(c.actions || []).map((a) =>
          `<code title="${esc(a.description)}">${esc(a.name)}</code>`).join(", ")}</div>` : ""}`;
      li.querySelector("input").addEventListener("change", (ev) => {
        if (ev.target.checked) state.scene.add(c.id); else state.scene.delete(c.id);
        if (!state.scene.size) { ev.target.checked = true; state.scene.add(c.id); return; } // someone must be here
        updateSession({ characters: [...state.scene] });
        add("note", `scene: ${[...state.scene].map((id) => esc(character(id).name)).join(", ")}`);
      });
      list.appendChild(li);
    });
    if (state.status === "connected") updateSession(sessionSettings());
  }

  function sayLine(text) {
    text = text.trim();
    if (!text) return;
    audioContext(); // a user gesture: allowed to start audio now
    stopAllAudio();
    playerTurn(text, false);
    send({ type: "conversation.item.create", item: { type: "message", role: "user", content: [{ type: "input_text", text }] } });
    send({ type: "response.create", response: {} });
  }

  let holding = false;
  function press() {
    if (state.mode !== "ptt" || holding || state.status !== "connected") return;
    holding = true;
    $("#talk").classList.add("active");
    $("#talk").setAttribute("aria-pressed", "true");
    stopAllAudio();
    send({ type: "input_audio_buffer.clear" });
    startMic();
  }

  function release() {
    if (!holding) return;
    holding = false;
    $("#talk").classList.remove("active");
    $("#talk").setAttribute("aria-pressed", "false");
    stopMic();
    playerTurn("(listening…)", true);
    send({ type: "input_audio_buffer.commit" });
    send({ type: "response.create", response: {} });
  }

  function converse(topic, lines) {
    topic = topic.trim();
    const who = [...state.scene];
    audioContext(); // a user gesture: allowed to start audio now
    send({ type: "npc.converse", characters: who, topic, lines: Number(lines) || 4 });
  }

  function bindControls() {
    $("#converse").addEventListener("submit", (ev) => {
      ev.preventDefault();
      converse($("#topic").value, $("#lines").value);
    });
    $("#say").addEventListener("submit", (ev) => {
      ev.preventDefault();
      sayLine($("#line").value);
      $("#line").value = "";
    });
    const talk = $("#talk");
    talk.addEventListener("pointerdown", (ev) => { ev.preventDefault(); press(); });
    talk.addEventListener("pointerup", release);
    talk.addEventListener("pointerleave", release);
    window.addEventListener("keydown", (ev) => {
      if (ev.code === "Space" && document.activeElement !== $("#line") && !ev.repeat) { ev.preventDefault(); press(); }
    });
    window.addEventListener("keyup", (ev) => { if (ev.code === "Space" && holding) { ev.preventDefault(); release(); } });
    for (const radio of document.querySelectorAll("input[name=mode]")) {
      radio.addEventListener("change", (ev) => {
        state.mode = ev.target.value;
        updateSession({ turn_detection: state.mode === "vad" ? { type: "server_vad" } : null });
        $("#talk-label").textContent = state.mode === "vad" ? "Listening…" : "Hold to talk";
        if (state.mode === "vad") { audioContext(); startMic(); } else stopMic();
      });
    }
    $("#voice").addEventListener("change", (ev) => {
      state.speak = ev.target.checked;
      updateSession({ output_modalities: state.speak ? ["text", "audio"] : ["text"] });
    });
  }

  bindControls();
  setStatus("connecting");
  loadCast();
  connect();
})();

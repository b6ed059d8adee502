// The playground's mouth: npc.viseme events drawn as a mouth, in time with the audio.
//
// Each reply's audio chunks are scheduled on the AudioContext clock; `scheduled` records
// where each chunk of the reply's timeline plays, so the mouth shows the viseme of what
// is being heard now, not of what just arrived. Exposes counts for tests.
"use strict";

window.PersonaeMouth = (() => {
  // viseme -> [width, opening], relative to the canvas
  const SHAPES = {
    sil: [0.55, 0.04], PP: [0.5, 0.0], FF: [0.55, 0.1], TH: [0.55, 0.16], DD: [0.6, 0.24],
    kk: [0.55, 0.28], CH: [0.4, 0.28], SS: [0.62, 0.12], nn: [0.55, 0.2], RR: [0.42, 0.24],
    aa: [0.62, 0.62], E: [0.68, 0.4], ih: [0.68, 0.28], oh: [0.42, 0.5], ou: [0.3, 0.34],
  };

  function create(canvas, label) {
    const g = canvas.getContext("2d");
    const replies = new Map(); // response id -> {character, visemes: [], chunks: []}
    const stats = { events: 0, visemes: 0, drawn: new Set() };
    let shape = SHAPES.sil.slice();
    let clock = null;

    function reply(e) {
      let r = replies.get(e.response_id);
      if (!r) {
        r = { character: e.character, visemes: [], chunks: [] };
        replies.set(e.response_id, r);
        while (replies.size > 8) replies.delete(replies.keys().next().value);
      }
      return r;
    }

    // an npc.viseme event: its visemes, on the reply's audio timeline (ms)
    function add(e) {
      stats.events += 1;
      stats.visemes += e.visemes.length;
      reply(e).visemes.push(...e.visemes);
    }

    // an audio chunk of the reply starting at e.offset_ms plays at context time `at`
    function scheduled(e, ctx, at, seconds) {
      clock = ctx;
      reply(e).chunks.push({ offset: e.offset_ms, at, seconds });
    }

    function stop() {
      for (const r of replies.values()) { r.visemes = []; r.chunks = []; }
    }

    // the viseme being heard now, and whose
    function current() {
      if (!clock) return null;
      const now = clock.currentTime;
      for (const r of replies.values()) {
        const chunk = r.chunks.find((c) => c.at <= now && now < c.at + c.seconds);
        if (!chunk) continue;
        const heard = chunk.offset + (now - chunk.at) * 1000;
        const v = r.visemes.find((x) => x.start_ms <= heard && heard < x.start_ms + x.duration_ms);
        if (v) return { viseme: v.viseme, character: r.character };
      }
      return null;
    }

    function draw() {
      const now = current();
      const target = SHAPES[now ? now.viseme : "sil"] || SHAPES.sil;
      if (now) stats.drawn.add(now.viseme);
      shape = shape.map((s, i) => s + (target[i] - s) * 0.45);
      const w = canvas.width, h = canvas.height;
      g.clearRect(0, 0, w, h);
      g.beginPath();
      g.ellipse(w / 2, h / 2, (w * shape[0]) / 2, Math.max(2, (h * shape[1]) / 2), 0, 0, 2 * Math.PI);
      g.fillStyle = "#5a1418";
      g.fill();
      g.lineWidth = 4;
      g.strokeStyle = "#d46a6a";
      g.stroke();
      if (label) label.textContent = now ? `${now.character}: ${now.viseme}` : "–";
      requestAnimationFrame(draw);
    }
    requestAnimationFrame(draw);

    return { add, scheduled, stop, stats };
  }

  return { create, SHAPES };
})();

// rdam web demo: upload a video to POST /predict and show the answer.
"use strict";

const $ = (id) => document.getElementById(id);

function setStatus(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";

function svgAdder(svg) {
  // mk(tag, attrs, text): a new SVG element appended to svg
  return (tag, attrs, text) => {
    const n = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.append(n);
    return n;
  };
}

function showProbabilities(probabilities, label) {
  const table = $("probabilities");
  table.replaceChildren();
  const rows = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
  for (const [name, p] of rows) {
    const tr = el("tr", name === label ? { class: "top" } : {});
    tr.append(el("td", {}, name), el("td", {}, p.toFixed(3)));
    const barCell = el("td");
    barCell.append(el("span", { class: "bar", style: `width:${Math.max(1, Math.round(240 * p))}px` }));
    tr.append(barCell);
    table.append(tr);
  }
}

function showTimeline(points) {
  const svg = $("timeline");
  const ns = SVG_NS;
  svg.replaceChildren();
  const W = 640, H = 200, L = 44, R = 12, T = 12, B = 30;
  const ts = points.map((p) => p.timestamp);
  const t0 = Math.min(...ts), t1 = Math.max(...ts);
  const aMax = Math.max(1e-6, ...points.map((p) => p.alpha)) * 1.15;
  const x = (t) => L + (t1 > t0 ? (t - t0) / (t1 - t0) : 0.5) * (W - L - R);
  const y = (a) => H - B - (a / aMax) * (H - T - B);
  const mk = svgAdder(svg);
  mk("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" });
  mk("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#999" });
  mk("text", { x: 4, y: T + 10, "font-size": 11 }, aMax.toFixed(2));
  mk("text", { x: 4, y: H - B, "font-size": 11 }, "0");
  mk("text", { x: L, y: H - 8, "font-size": 11 }, `${t0.toFixed(1)} s`);
  mk("text", { x: W - R - 40, y: H - 8, "font-size": 11 }, `${t1.toFixed(1)} s`);
  mk("text", { x: W / 2 - 10, y: H - 8, "font-size": 11 }, "time");
  const path = points.map((p, i) => `${i ? "L" : "M"}${x(p.timestamp)},${y(p.alpha)}`).join(" ");
  mk("path", { d: path, fill: "none", stroke: "#4a7bd0", "stroke-width": 2 });
  for (const p of points) {
    const c = mk("circle", {
      cx: x(p.timestamp), cy: y(p.alpha), r: 4,
      fill: p.face === false ? "#d33" : "#4a7bd0", class: "alpha-point",
    });
    const title = document.createElementNS(ns, "title");
    title.textContent = `#${p.index} t=${p.timestamp.toFixed(2)} s α=${p.alpha.toFixed(3)}` +
      (p.face === false ? " (no face)" : "");
    c.append(title);
  }
}

function showHeatmaps(heatmaps) {
  const box = $("heatmaps");
  box.replaceChildren();
  const best = heatmaps.reduce((b, h) => (h.alpha > b.alpha ? h : b), heatmaps[0]);
  for (const h of heatmaps) {
    const fig = el("figure", h === best ? { class: "best" } : {});
    fig.append(el("img", { src: `data:image/png;base64,${h.png}`, alt: `frame ${h.index}` }));
    const note = h.face === false ? " · no face" : "";
    fig.append(el("figcaption", {},
      `#${h.index} · t = ${h.timestamp.toFixed(2)} s · α = ${h.alpha.toFixed(3)}${note}`));
    box.append(fig);
  }
}

// one colour per class index: rdam.explain.render.PALETTE (the annotated video, the reports)
const PALETTE = ["#e41a1c", "#984ea3", "#4daf4a", "#ffc800", "#a0a0a0", "#377eb8", "#ff7f00",
  "#a65628", "#f781bf", "#00c8c8"];

function probabilityChart(person, classNames) {
  // per sampled frame, the probability of each class (gaps where no face); weights as bars
  const ns = SVG_NS;
  const svg = document.createElementNS(ns, "svg");
  const W = 640, H = 190, L = 36, R = 10, T = 10, B = 46;
  svg.setAttribute("width", W);
  svg.setAttribute("height", H);
  svg.setAttribute("class", "person-timeline");
  const ts = person.timestamps;
  const t0 = Math.min(...ts), t1 = Math.max(...ts);
  const x = (t) => L + (t1 > t0 ? (t - t0) / (t1 - t0) : 0.5) * (W - L - R);
  const y = (p) => H - B - p * (H - T - B);
  const mk = svgAdder(svg);
  mk("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" });
  mk("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#999" });
  mk("text", { x: 4, y: T + 10, "font-size": 11 }, "1");
  mk("text", { x: 4, y: H - B, "font-size": 11 }, "0");
  mk("text", { x: L, y: H - 4, "font-size": 11 }, `${t0.toFixed(1)} s`);
  mk("text", { x: W - R - 40, y: H - 4, "font-size": 11 }, `${t1.toFixed(1)} s`);
  const wMax = Math.max(1e-6, ...person.frame_weights);
  person.frame_weights.forEach((w, i) => {
    const h = (w / wMax) * (B - 22);
    mk("rect", { x: x(ts[i]) - 3, y: H - 18 - h, width: 6, height: h, fill: "#999",
      class: "weight-bar" });
  });
  const frames = person.frame_probabilities || ts.map(() => null);
  classNames.forEach((name, c) => {
    let d = "", pen = "M";
    frames.forEach((p, i) => {
      if (p === null) { pen = "M"; return; }
      d += `${pen}${x(ts[i]).toFixed(1)},${y(p[name]).toFixed(1)} `;
      pen = "L";
    });
    if (d) {
      const line = mk("path", { d, fill: "none", stroke: PALETTE[c % PALETTE.length],
        "stroke-width": 1.6, class: "class-line" });
      const title = document.createElementNS(ns, "title");
      title.textContent = name;
      line.append(title);
    }
  });
  return svg;
}

function overridesNotice(data) {
  // the clip spec settings this answer was made with other than the model file's; "" for none
  const overrides = data.overrides || {};
  const model = data.model_values || {};
  const items = Object.keys(overrides).map((k) =>
    `${k}=${JSON.stringify(overrides[k])} (the model was trained with ${JSON.stringify(model[k])})`);
  if (!items.length) return "";
  return `Not the model's settings: run with ${items.join("; ")}. ` +
    "The answer may differ from the model's own.";
}

function showOverrides(id, data) {
  const text = overridesNotice(data);
  $(id).textContent = text;
  $(id).hidden = !text;
}

// as rdam explain words it (rdam/explain/report.py UNLEARNED_FRAME_WEIGHTS_NOTE)
const UNLEARNED_FRAME_WEIGHTS_NOTE = "This model was trained on single images (one-frame " +
  "clips), so its frame weights α were never learned: they single out no frame for a reason, " +
  "and the frame of highest α is not more important than the others.";

function showFrameWeightsNote(id, data) {
  // the model file says its frame weights were never learned (false; null: it does not say)
  $(id).textContent = UNLEARNED_FRAME_WEIGHTS_NOTE;
  $(id).hidden = data.frame_weights_learned !== false;
}

function showPeople(data) {
  showOverrides("people-overrides", data);
  showFrameWeightsNote("people-frame-weights-note", data);
  $("video-label").textContent = data.label === null ? "no answer" : data.label;
  $("video-note").textContent = data.label === null ? `(${data.reason})` :
    `(person ${data.person}, p = ${data.probabilities[data.label].toFixed(3)}; ${data.rule})`;
  const rules = Object.entries(data.evidence_rules).map(([k, v]) => `${k} ${v}`).join(", ");
  $("people-note").textContent = `${data.people.length} people (face tracks); an answer needs ` +
    `a clear face in enough sampled frames (${rules}); ${data.frames_searched} frames searched.`;
  const legend = el("div", { class: "legend" });
  data.class_names.forEach((name, c) => {
    const item = el("span");
    item.append(el("i", { style: `background:${PALETTE[c % PALETTE.length]}` }), name);
    legend.append(item);
  });
  const list = $("people-list");
  list.replaceChildren(legend);
  for (const person of data.people) {
    const card = el("div", { class: "person", "data-person": person.person });
    const head = el("h3");
    if (person.thumbnail) {
      head.append(el("img", { src: `data:image/png;base64,${person.thumbnail}`,
        alt: `person ${person.person}` }));
    }
    const answer = person.label === null ? el("span", { class: "reason" }, `no answer: ${person.reason}`)
      : el("span", { class: "answer" }, `${person.label} (p = ${person.score.toFixed(3)})`);
    head.append(el("span", {}, `Person ${person.person}`), answer);
    card.append(head);
    const cov = person.coverage;
    card.append(el("div", { class: "muted" }, `on screen ${person.start.toFixed(2)}–` +
      `${person.end.toFixed(2)} s · a face in ${cov.frames_with_face} of ${cov.frames} ` +
      "sampled frames · lines: per-frame probabilities; bars: frame weights"));
    card.append(probabilityChart(person, data.class_names));
    const faces = el("div", { class: "frames" });
    for (const h of person.heatmaps) {
      const fig = el("figure");
      fig.append(el("img", { src: `data:image/png;base64,${h.png}`, alt: `face ${h.index}` }));
      fig.append(el("figcaption", {}, `t = ${h.timestamp.toFixed(2)} s`));
      faces.append(fig);
    }
    card.append(faces);
    list.append(card);
  }
  const t = data.timing;
  $("people-timing").textContent = `tracks and crops ${(1000 * t.tracks_and_crops).toFixed(0)} ms · ` +
    `model ${(1000 * t.model).toFixed(0)} ms`;
  $("people-result").hidden = false;
}

async function loadInfo() {
  try {
    const r = await fetch("/health");
    const info = await r.json();
    const m = info.model;
    const spec = m.clip_spec;
    $("model-info").textContent =
      `Model: ${m.class_names.join(", ")} · ${spec.num_frames} frames of ${spec.frame_size}px · ` +
      `${spec.stream} stream · uploads up to ${Math.round(info.max_upload_bytes / 1048576)} MB`;
  } catch (e) {
    $("model-info").textContent = "";
  }
}

$("upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) {
    setStatus("Choose a video file first.", true);
    return;
  }
  $("result").hidden = true;
  $("people-result").hidden = true;
  $("submit").disabled = true;
  const everyone = $("people").checked;
  setStatus(`Uploading and analysing ${file.name} ...`, false);
  const form = new FormData();
  form.append("file", file);
  try {
    const response = await fetch(everyone ? "/people" : "/predict", { method: "POST", body: form });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      const detail = data && data.detail ? data.detail : response.statusText;
      setStatus(`Error ${response.status}: ${detail}`, true);
      return;
    }
    if (everyone) {
      showPeople(data);
      setStatus(`Done: ${data.filename}`, false);
      return;
    }
    showOverrides("overrides", data);
    showFrameWeightsNote("frame-weights-note", data);
    $("label").textContent = data.label;
    $("score").textContent = `(p = ${data.score.toFixed(3)})`;
    showProbabilities(data.probabilities, data.label);
    showTimeline(data.timeline);
    showHeatmaps(data.heatmaps);
    const t = data.timing;
    $("timing").textContent = `decode (and face search) ${(1000 * t.decode).toFixed(0)} ms · crops ${(1000 * t.faces).toFixed(0)} ms · ` +
      `model ${(1000 * t.model).toFixed(0)} ms`;
    $("result").hidden = false;
    setStatus(`Done: ${data.filename}`, false);
  } catch (e) {
    setStatus(`Error: ${e}`, true);
  } finally {
    $("submit").disabled = false;
  }
});

loadInfo();

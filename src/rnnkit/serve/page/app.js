// The rnnkit playground: plain JavaScript over the server's JSON API (/v1/models, /v1/generate
// streamed as Server-Sent Events, /v1/score, /v1/inspect). No build step, no dependencies.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: {}, running: [] };

// ------------------------------------------------------------------------------------ helpers

async function post(path, body, signal) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok) {
    const problem = await response.json().catch(() => ({ error: response.statusText }));
    throw new Error(problem.error || `HTTP ${response.status}`);
  }
  return response;
}

// Read a Server-Sent Events response: one JSON object per "data:" line, events split by a blank line.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of block.split("\n")) {
        if (line.startsWith("data: ")) onEvent(JSON.parse(line.slice(6)));
      }
    }
  }
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function numberOrNull(id) {
  const raw = $(id).value.trim();
  return raw === "" ? null : Number(raw);
}

function chosenModels() {
  const names = [$("model").value];
  if ($("compare").value && $("compare").value !== names[0]) names.push($("compare").value);
  return names;
}

function describe(model) {
  const size = model.layers ? `${model.layers}×${model.hidden} ${model.kind}` : model.order ? `${model.order}-gram` : model.kind;
  const results = model.results && model.results.val_bpc !== undefined
    ? `, validation ${model.results.val_bpc.toFixed(3)} bits/char` : "";
  const params = model.parameters ? `, ${model.parameters.toLocaleString()} parameters` : "";
  return `${size}, ${model.tokenizer} tokens (${model.vocab_size.toLocaleString()})${params}${results}, trained on ${model.data}`;
}

function column(container, name) {
  const box = element("div", "column");
  box.dataset.model = name;
  const title = element("h2", "", name + " ");
  title.append(element("small", "", describe(state.models[name])));
  box.append(title);
  container.append(box);
  return box;
}

// ------------------------------------------------------------------------------------ models

async function loadModels() {
  const response = await fetch("/v1/models");
  const { models } = await response.json();
  for (const model of models) {
    state.models[model.name] = model;
    $("model").append(new Option(model.name, model.name));
    $("compare").append(new Option(model.name, model.name));
  }
  showModel();
}

function showModel() {
  const model = state.models[$("model").value];
  if (!model) return;
  $("model-info").textContent = describe(model);
  $("layer").replaceChildren(...Array.from({ length: model.layers || 0 }, (_, i) => new Option(String(i), String(i))));
  $("signal").replaceChildren(...model.signals.map((s) => new Option(s, s)));
  $("units").disabled = !model.inspectable;
  $("units-status").textContent = model.inspectable ? "" : `${model.name} has no hidden units to show (a ${model.kind} model)`;
}

// ------------------------------------------------------------------------------------ generate

async function generate() {
  stopAll();
  const seed = numberOrNull("seed") ?? Math.floor(Math.random() * 2 ** 31);  // one seed for every column
  const settings = {
    prompt: $("prompt").value,
    max_new_tokens: numberOrNull("max_new_tokens") ?? 200,
    temperature: numberOrNull("temperature") ?? 1,
    top_k: numberOrNull("top_k"),
    top_p: numberOrNull("top_p"),
    num_return_sequences: numberOrNull("samples") ?? 1,
    seed,
    stream: true,
  };
  const out = $("generate-out");
  out.replaceChildren();
  $("generate").disabled = true;
  $("stop").disabled = false;
  $("generate-status").textContent = `generating (seed ${seed})…`;
  const runs = chosenModels().map((name) => streamInto(column(out, name), name, settings));
  const results = await Promise.all(runs);
  $("generate").disabled = false;
  $("stop").disabled = true;
  state.running = [];
  $("generate-status").textContent = `seed ${seed}: ` + results.join("; ");
}

async function streamInto(box, name, settings) {
  const controller = new AbortController();
  state.running.push(controller);
  const samples = [];
  const started = performance.now();
  let characters = 0;  // of the first sample, as they arrive (text events come up to 50 times a second)
  const stats = element("div", "stats");
  box.append(stats);
  try {
    const response = await post("/v1/generate", { ...settings, model: name }, controller.signal);
    let finished = null;
    await readEvents(response, (event) => {
      if (event.event === "start") {
        if (event.warning) box.append(element("p", "muted", event.warning));  // prompt tokens read as <unk>
        for (let row = 0; row < settings.num_return_sequences; row++) {
          const sample = element("div", "sample streaming");
          sample.dataset.state = "streaming";
          sample.append(element("span", "prompt", event.prompt), element("span", "continuation", ""));
          sample.dataset.text = event.prompt;
          box.append(sample);
          samples.push(sample);
        }
      } else if (event.event === "text") {
        characters += (event.pieces[0] || "").length;
        event.pieces.forEach((piece, row) => {
          if (!piece || !samples[row]) return;
          samples[row].lastChild.textContent += piece;
          samples[row].dataset.text += piece;
        });
        const seconds = (performance.now() - started) / 1000;
        stats.textContent = `${characters} characters, ${(characters / seconds).toFixed(0)}/s`;
      } else if (event.event === "done") {
        finished = event;
      } else if (event.event === "error") {
        throw new Error(event.error);
      }
    });
    if (!finished) throw new Error("the stream ended early");
    const seconds = (performance.now() - started) / 1000;
    stats.textContent = `${finished.new_tokens} tokens in ${seconds.toFixed(2)} s (${(finished.new_tokens / seconds).toFixed(0)}/s), ended by ${finished.reason}`;
    finished.texts.forEach((text, row) => {
      if (!samples[row]) return;
      samples[row].dataset.text = text;
      samples[row].dataset.state = "done";
      samples[row].classList.remove("streaming");
      samples[row].after(sampleActions(text));
    });
    if ($("colour").checked) await Promise.all(samples.map((sample) => colourSample(sample, name)));
    return `${name} ${finished.new_tokens} tokens (${finished.reason})`;
  } catch (error) {
    for (const sample of samples) {
      sample.classList.remove("streaming");
      sample.dataset.state = error.name === "AbortError" ? "stopped" : "failed";
    }
    if (error.name === "AbortError") {
      stats.textContent = `stopped after ${characters} characters`;
      return `${name} stopped`;
    }
    box.append(element("p", "error", error.message));
    return `${name} failed`;
  }
}

// Buttons under a finished sample: take its text to the score view or the hidden-unit view.
function sampleActions(text) {
  const bar = element("div", "sample-actions");
  const toScore = element("button", "", "score this text");
  toScore.addEventListener("click", () => { $("score-text").value = text; selectView("score"); score(); });
  const toUnits = element("button", "", "see its hidden units");
  toUnits.disabled = !state.models[$("model").value]?.inspectable;
  toUnits.addEventListener("click", () => { $("units-text").value = text; selectView("units"); units(); });
  bar.append(toScore, toUnits);
  return bar;
}

async function colourSample(sample, name) {
  const scored = await (await post("/v1/score", { model: name, text: sample.dataset.text, top_k: 5 })).json();
  sample.replaceChildren(tokenSpans(scored));
  sample.title = `${scored.bits_per_char.toFixed(3)} bits/char by ${name}`;
}

function stopAll() {
  for (const controller of state.running) controller.abort();
  state.running = [];
}

// ------------------------------------------------------------------------------------ score

// White at 0 bits, deepening orange up to 12 bits and more.
function surprisalColour(bits) {
  const t = Math.min(Math.max(bits, 0) / 12, 1);
  return `hsl(${28 - 18 * t}, 95%, ${100 - 48 * t}%)`;
}

function tokenSpans(scored) {
  const fragment = document.createDocumentFragment();
  let at = 0;
  scored.token_scores.forEach((token, index) => {
    if (token.start > at) fragment.append(scored.text.slice(at, token.start));
    const span = element("span", "tok", scored.text.slice(token.start, token.end));
    span.style.background = surprisalColour(token.surprisal);
    span.dataset.index = String(index);
    span.dataset.surprisal = String(token.surprisal);
    span.tip = () => tokenTip(token);
    fragment.append(span);
    at = token.end;
  });
  if (at < scored.text.length) fragment.append(scored.text.slice(at));
  return fragment;
}

function show(text) {
  return JSON.stringify(text).slice(1, -1);  // a newline as \n, a space visible between quotes
}

function tokenTip(token) {
  const rows = (token.top || []).map((t) =>
    `<tr><td>"${escapeHtml(show(t.token))}"</td><td>${(100 * Math.exp(t.logprob)).toFixed(1)}%</td></tr>`).join("");
  return `<b>"${escapeHtml(show(token.token))}"</b> ${token.surprisal.toFixed(2)} bits ` +
    `(p = ${Math.exp(token.logprob).toPrecision(3)})` + (rows ? `<table>${rows}</table>` : "");
}

function escapeHtml(text) {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

async function score() {
  const out = $("score-out");
  out.replaceChildren();
  $("score-status").textContent = "scoring…";
  const text = $("score-text").value;
  const results = await Promise.all(chosenModels().map(async (name) => {
    const box = column(out, name);
    try {
      const scored = await (await post("/v1/score", { model: name, text, top_k: 5 })).json();
      box.append(element("div", "stats",
        `${scored.bits_per_char.toFixed(4)} bits/char, perplexity ${scored.perplexity.toFixed(2)} per token, ` +
        `${scored.tokens} tokens`));
      box.append(legend());
      const tokens = element("div", "tokens");
      tokens.append(tokenSpans(scored));
      box.append(tokens);
      return `${name} ${scored.bits_per_char.toFixed(3)} bits/char`;
    } catch (error) {
      box.append(element("p", "error", error.message));
      return `${name} failed`;
    }
  }));
  $("score-status").textContent = results.join("; ");
}

function legend() {
  const bar = element("div", "legend");
  bar.append("surprisal:");
  for (const bits of [0, 2, 4, 6, 8, 10, 12]) {
    const swatch = element("i");
    swatch.style.background = surprisalColour(bits);
    bar.append(swatch, `${bits}${bits === 12 ? "+ bits" : ""}`);
  }
  return bar;
}

// ------------------------------------------------------------------------------------ units

async function units(unit) {
  const model = $("model").value;
  $("units-status").textContent = "reading…";
  try {
    const view = await (await post("/v1/inspect", {
      model,
      text: $("units-text").value,
      layer: Number($("layer").value || 0),
      signal: $("signal").value || "h",
      unit: unit ?? numberOrNull("unit"),
    })).json();
    $("unit").value = view.unit;
    const chips = view.varied_units.map((u) => {
      const chip = element("button", "", `${u.unit} (σ ${u.std.toFixed(2)})`);
      chip.setAttribute("aria-pressed", String(u.unit === view.unit));
      chip.addEventListener("click", () => units(u.unit));
      return chip;
    });
    $("varied").replaceChildren(...chips);
    const largest = Math.max(1e-6, ...view.values.map(Math.abs));
    const tokens = element("div", "tokens");
    view.pieces.forEach((piece, index) => {
      const value = view.values[index];
      const span = element("span", "tok", piece);
      const strength = Math.abs(value) / largest;
      span.style.background = value >= 0 ? `rgba(214, 39, 40, ${strength})` : `rgba(31, 119, 180, ${strength})`;
      span.dataset.value = String(value);
      span.tip = () => `<b>"${escapeHtml(show(piece))}"</b> unit ${view.unit}: ${value.toFixed(4)}`;
      tokens.append(span);
    });
    $("units-out").replaceChildren(tokens);
    $("units-status").textContent =
      `layer ${view.layer}, ${view.signal}, unit ${view.unit} of ${view.hidden} over ${view.tokens} tokens`;
  } catch (error) {
    $("units-status").textContent = error.message;
  }
}

// ------------------------------------------------------------------------------------ page

function selectView(name) {
  for (const tab of document.querySelectorAll("nav button")) {
    tab.setAttribute("aria-selected", String(tab.dataset.view === name));
  }
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `view-${name}`;
}

document.addEventListener("mouseover", (event) => {
  const tip = $("tooltip");
  if (!event.target.tip) { tip.hidden = true; return; }
  tip.innerHTML = event.target.tip();
  tip.hidden = false;
  const box = event.target.getBoundingClientRect();
  tip.style.left = `${Math.min(box.left, window.innerWidth - 360)}px`;
  tip.style.top = `${box.bottom + 6}px`;
});

for (const tab of document.querySelectorAll("nav button")) tab.addEventListener("click", () => selectView(tab.dataset.view));
$("model").addEventListener("change", showModel);
$("generate").addEventListener("click", generate);
$("stop").addEventListener("click", stopAll);
$("score").addEventListener("click", score);
$("units").addEventListener("click", () => units());
$("prompt").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) generate();
});
loadModels();

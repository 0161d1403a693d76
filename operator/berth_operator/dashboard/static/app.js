// The dashboard page: GPU panel and cards (with each model's requests through the gateway),
// from /api/events (SSE): a snapshot, then updates.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const withToken = (path) => (token ? `${path}?token=${encodeURIComponent(token)}` : path);
const cards = new Map();
let traffic = {};  // requests by gateway model name: {inFlight, perSecond}

function text(tag, content, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.textContent = content ?? "";
  return node;
}

function bytes(n) {
  if (n == null) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function duration(seconds) {
  if (seconds == null) return "";
  const m = Math.floor(seconds / 60), s = seconds % 60;
  return m ? `${m} min ${s} s` : `${s} s`;
}

function copyButton(value, label) {
  const button = text("button", "Copy");
  button.type = "button";
  button.setAttribute("aria-label", `Copy ${label}`);
  button.addEventListener("click", async () => {
    await navigator.clipboard.writeText(value);
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
  return button;
}

function row(list, term, value, className) {
  list.append(text("dt", term), text("dd", value ?? "—", className));
}

function render(card) {
  const article = document.createElement("article");
  article.className = "card";
  article.dataset.key = card.key;
  const title = text("h2", card.name);
  title.append(" ", text("span", card.phase, `phase ${card.phase}`));
  article.append(title, text("p", `${card.namespace} · ${card.engine} · ${card.model}@${card.revision} · ${card.gpus} GPU`, "sub"));

  const reason = document.createElement("p");
  reason.className = "reason";
  reason.append(text("b", card.ready.reason || "—"), " ", card.ready.message || "");
  article.append(reason);

  const d = card.download;
  if (d.bytesTotal) {
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = d.percent ?? 0;
    bar.setAttribute("aria-label", `Download of ${card.name}`);
    article.append(bar, text("p", `${d.percent ?? 0}% · ${bytes(d.bytesDone)} of ${bytes(d.bytesTotal)}` +
      (d.bytesPerSecond ? ` · ${bytes(d.bytesPerSecond)}/s` : "") + (d.etaSeconds != null ? ` · ${duration(d.etaSeconds)} left` : ""), "sub download"));
  }

  const facts = document.createElement("dl");
  row(facts, "Replicas", `${card.replicas.ready} ready of ${card.replicas.wanted}`);
  const requests = traffic[card.gatewayModel];
  if (requests) row(facts, "Requests", `${requests.inFlight} in flight · ${requests.perSecond}/s`, "requests");
  for (const gpu of card.runtime.gpus) {
    row(facts, `GPU ${gpu.index}`, `${gpu.name}: ${gpu.memoryUsedMiB} / ${gpu.memoryTotalMiB} MiB, ${gpu.utilizationPercent}% load, ${gpu.temperatureC} °C`);
  }
  for (const [name, info] of Object.entries(card.runtime.dependencies)) {
    const details = Object.entries(info).map(([k, v]) => `${k} ${v}`).join(", ");
    row(facts, name, details);
  }
  for (const mismatch of card.runtime.mismatches) row(facts, "Mismatch", mismatch, "mismatch");
  article.append(facts);

  if (card.runtime.lastError) {
    const e = card.runtime.lastError;
    article.append(text("p", `${e.reason}: ${e.message} (${e.pod || "?"}, ${e.time || "?"})`, "error"));
  }

  const endpoint = document.createElement("p");
  endpoint.append(text("code", card.endpoint || "—", "endpoint"), " ");
  if (card.endpoint) endpoint.append(copyButton(card.endpoint, `endpoint of ${card.name}`));
  article.append(endpoint);

  const commands = document.createElement("ul");
  commands.className = "commands";
  for (const [label, command] of Object.entries(card.commands)) {
    const item = document.createElement("li");
    item.append(text("code", command), copyButton(command, `${label} command for ${card.name}`));
    commands.append(item);
  }
  article.append(commands);
  return article;
}

function counts(resources) {
  const entries = Object.entries(resources);
  return entries.length ? entries.map(([resource, n]) => `${n} ${resource}`).join(", ") : "no GPU";
}

function cell(className, content) {
  const td = document.createElement("td");
  td.className = className;
  td.append(content);
  return td;
}

function renderGpuNode(node) {
  const tr = document.createElement("tr");
  tr.dataset.node = node.name;
  const requested = document.createElement("div");
  for (const [resource, allocatable] of Object.entries(node.allocatable)) {
    const used = node.requested[resource] ?? 0;
    const meter = document.createElement("meter");
    meter.min = 0;
    meter.max = Math.max(allocatable, 1);
    meter.value = used;
    meter.setAttribute("aria-label", `${resource} requested on ${node.name}`);
    requested.append(meter, text("span", `${used} of ${allocatable} ${resource}`), document.createElement("br"));
  }
  for (const [resource, used] of Object.entries(node.requested)) {
    if (!(resource in node.allocatable)) requested.append(text("span", `${used} ${resource} (none allocatable)`, "mismatch"));
  }
  const models = document.createElement("ul");
  for (const model of node.models) {
    const item = text("li", `${model.namespace}/${model.name}: ${counts(model.requested)}` + (model.pods > 1 ? ` (${model.pods} pods)` : ""));
    item.dataset.key = model.key;
    models.append(item);
  }
  tr.append(
    cell("node", node.name),
    cell("product", node.product || "—"),
    cell("allocatable", counts(node.allocatable)),
    cell("requested", requested),
    cell("models", node.models.length ? models : "—"),
  );
  return tr;
}

function redrawGpus(panel) {
  document.getElementById("gpu-nodes").replaceChildren(...panel.nodes.map(renderGpuNode));
  document.getElementById("no-gpus").hidden = panel.nodes.length > 0;
}

function redraw() {
  const section = document.getElementById("cards");
  section.replaceChildren(...[...cards.values()].sort((a, b) => a.key.localeCompare(b.key)).map(render));
  document.getElementById("empty").hidden = cards.size > 0;
}

function connect() {
  const events = new EventSource(withToken("/api/events"));
  const status = document.getElementById("connection");
  events.addEventListener("snapshot", (e) => {
    cards.clear();
    const snapshot = JSON.parse(e.data);
    for (const card of snapshot.items) cards.set(card.key, card);
    traffic = snapshot.traffic ?? {};
    status.textContent = "live";
    redraw();
    redrawGpus(snapshot.gpus);
  });
  events.addEventListener("gpus", (e) => { redrawGpus(JSON.parse(e.data)); });
  events.addEventListener("traffic", (e) => { traffic = JSON.parse(e.data); redraw(); });
  events.addEventListener("update", (e) => { const card = JSON.parse(e.data); cards.set(card.key, card); redraw(); });
  events.addEventListener("delete", (e) => { cards.delete(JSON.parse(e.data).key); redraw(); });
  events.onerror = () => { status.textContent = "reconnecting…"; };
}

connect();

// cxrlab serve page: no framework, no build step, nothing loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
let model = null;
let lastFile = null;

function token() { return sessionStorage.getItem("cxrlab-token") || ""; }

function headers() {
  const t = token();
  return t ? { Authorization: "Bearer " + t } : {};
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function api(path, options) {
  const response = await fetch(path, Object.assign({ headers: headers() }, options || {}));
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (response.status === 401) { $("token-row").hidden = false; }
  if (!response.ok) {
    const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : response.statusText;
    throw new Error(response.status + ": " + detail);
  }
  return body;
}

async function loadModel() {
  try {
    model = await api("/api/model");
  } catch (e) {
    $("model-line").textContent = "model information unavailable (" + e.message + ")";
    return;
  }
  const op = model.operating;
  const calib = op && op.temperature ? "calibrated (temperature fitted on validation)" : "uncalibrated";
  $("model-line").textContent = model.name + " \u2014 " + model.model_name + ", " + model.task + ", " +
    model.classes.length + " classes, engine " + model.engine + "; probabilities " + calib +
    (op ? "" : "; no validation thresholds available");
  const select = $("finding");
  select.replaceChildren();
  for (const c of model.classes) {
    const option = document.createElement("option");
    option.value = c;
    option.textContent = c;
    select.appendChild(option);
  }
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function renderTable(result) {
  const body = $("table").querySelector("tbody");
  body.replaceChildren();
  const multiclass = model && model.task === "multiclass";
  const withheld = result.calls === "withheld";
  $("table").className = withheld ? "withheld" : "";
  for (const f of result.findings) {
    const tr = document.createElement("tr");
    if (f.above) tr.className = "above";
    cell(tr, f.class);
    cell(tr, f.probability.toFixed(3), "num");
    const barCell = cell(tr, "");
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = Math.round(f.probability * 120) + "px";
    barCell.appendChild(bar);
    cell(tr, f.threshold === null ? "\u2014" : f.threshold.toFixed(3), "num");
    const call = f.withheld ? "withheld" : f.above === null ? (multiclass ? "" : "no threshold") : (f.above ? "above" : "below");
    cell(tr, call, f.above ? "call-above" : "call-below");
    body.appendChild(tr);
  }
  $("table-note").textContent = withheld
    ? "No calls: " + result.withheld_reason + "."
    : multiclass
      ? "Multi-class: the probabilities are a distribution over the classes (they sum to 1)."
      : "Each finding is compared with its operating threshold chosen on the run's validation images.";
}

function renderOod(ood) {
  const box = $("ood");
  box.className = ood.flagged ? "flagged" : "ok";
  const score = ood.score === null ? "n/a" : ood.score.toFixed(3);
  const threshold = ood.threshold === null ? "n/a" : ood.threshold.toFixed(3);
  box.textContent = (ood.flagged
    ? "Out of distribution: this does not look like the images the model was validated on. "
    : "In distribution: looks like the validation images. ") +
    "Score " + score + " (threshold " + threshold + ")" + (ood.reasons.length ? ". " + ood.reasons.join("; ") : "");
}

async function heatmap() {
  $("heat").hidden = true;
  if (!lastFile || !model) return;
  if (!model.heatmaps) {
    $("heat-note").textContent = "Heat maps need the run: serve the run directory instead of the ONNX file.";
    return;
  }
  $("heat-note").textContent = "computing heat map\u2026";
  const form = new FormData();
  form.append("file", lastFile);
  try {
    const finding = $("finding").value;
    const r = await api("/api/heatmap?finding=" + encodeURIComponent(finding), { method: "POST", body: form });
    $("heat").src = "data:image/png;base64," + r.heatmap_png;
    $("heat").hidden = false;
    $("heat-note").textContent = "Grad-CAM heat map for " + finding + ".";
  } catch (e) {
    $("heat-note").textContent = "heat map failed: " + e.message;
  }
}

async function upload(file) {
  lastFile = file;
  setStatus("scoring " + file.name + "\u2026", false);
  const form = new FormData();
  form.append("files", file);
  let r;
  try {
    r = await api("/api/predict", { method: "POST", body: form });
  } catch (e) {
    setStatus(e.message, true);
    return;
  }
  const result = r.results[0];
  $("preview").src = "data:image/png;base64," + result.preview_png;
  $("result").hidden = false;
  renderTable(result);
  renderOod(result.ood);
  setStatus(result.filename + ": " + result.format.toUpperCase() + ", " + result.width + "x" + result.height + " pixels", false);
  if (result.findings.length && model && model.classes.includes(result.findings[0].class)) {
    $("finding").value = result.findings[0].class;
  }
  heatmap();
}

function setup() {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) upload(e.dataTransfer.files[0]);
  });
  $("file").addEventListener("change", (e) => { if (e.target.files.length) upload(e.target.files[0]); });
  $("finding").addEventListener("change", heatmap);
  $("opacity").addEventListener("input", (e) => { $("heat").style.opacity = e.target.value / 100; });
  $("heat").style.opacity = 0.7;
  $("token-save").addEventListener("click", () => {
    sessionStorage.setItem("cxrlab-token", $("token").value);
    $("token-row").hidden = true;
    loadModel();
  });
  loadModel();
}

setup();

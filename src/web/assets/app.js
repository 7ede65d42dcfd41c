"use strict";
// The upframe web UI: browse the allowed folders, start jobs, watch them live (Server-Sent
// Events), and compare one frame before and after. Talks only to the API of docs/WEB.md.
const TOKEN = document.querySelector('meta[name="upframe-token"]').content;
const URL_TOKEN = new URLSearchParams(location.search).get("token");
const $ = (id) => document.getElementById(id);
const STAGES = ["decode", "detect", "upscale", "save"];
const STAT_STAGES = [["decode", "extraction_time"], ["detect", "detection_time"],
                     ["upscale", "upscale_time"], ["save", "save_time"], ["total", "total_time"]];

let cwd = null;            // folder shown in the browser
let currentJob = null;     // id of the job shown in the progress panel
let events = null;         // its EventSource
let mediaInfo = null;      // /api/info of the selected input
let jobsById = {};
let modelFiles = [];       // /api/models entries: one per model file, in search order
let namedModels = {};      // /api/roots's models (lanczos and bicubic are no file): NAME -> label

function withToken(url) {
  // With --token every request carries it; EventSource cannot set headers, so a query.
  if (!URL_TOKEN) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(URL_TOKEN);
}

async function api(method, url, body) {
  const options = { method, headers: { "X-Upframe-Token": TOKEN } };
  if (body instanceof FormData) options.body = body;
  else if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers["Content-Type"] = "application/json";
  }
  const res = await fetch(withToken(url), options);
  const type = res.headers.get("Content-Type") || "";
  const data = type.startsWith("application/json") ? await res.json() : await res.blob();
  if (!res.ok) throw new Error(data.error || res.status + " " + res.statusText);
  return data;
}

function humanSize(bytes) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; ++i; }
  return (i ? bytes.toFixed(1) : bytes) + " " + units[i];
}

// --- browsing and upload ---

async function showFolder(path) {
  try {
    const data = await api("GET", "/api/files?path=" + encodeURIComponent(path));
    cwd = data.path;
    $("cwd").textContent = cwd;
    $("up").disabled = !data.parent;
    $("up").dataset.parent = data.parent || "";
    const list = $("files");
    list.replaceChildren();
    for (const e of data.entries) {
      const li = document.createElement("li");
      li.dataset.path = e.path;
      li.className = e.dir ? "dir" : e.media ? "media" : "other";
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = e.name;
      name.title = e.name;
      li.append(name);
      if (!e.dir) {
        const size = document.createElement("span");
        size.className = "size";
        size.textContent = humanSize(e.size);
        li.append(size);
      }
      li.addEventListener("click", () => (e.dir ? showFolder(e.path) : selectInput(e.path, li)));
      list.append(li);
    }
  } catch (err) {
    $("cwd").textContent = err.message;
  }
}

async function selectInput(path, li) {
  for (const other of document.querySelectorAll("#files li.selected")) other.classList.remove("selected");
  if (li) li.classList.add("selected");
  $("input-path").value = path;
  await loadMediaInfo(path);
}

// A folder input (a batch): nothing to preview.
function selectFolder(path) {
  for (const other of document.querySelectorAll("#files li.selected")) other.classList.remove("selected");
  $("input-path").value = path;
  mediaInfo = null;
  $("frame-slider").disabled = $("preview").disabled = true;
  $("preview-status").textContent = "a folder: every image and video in it is upscaled; pick a file to preview one frame";
}

async function loadMediaInfo(path) {
  mediaInfo = null;
  $("frame-slider").disabled = $("preview").disabled = true;
  try {
    mediaInfo = await api("GET", "/api/info?path=" + encodeURIComponent(path));
    const last = Math.max(0, (mediaInfo.frames || 1) - 1);
    $("frame-slider").max = last;
    $("frame-slider").value = Math.min(Number($("frame-slider").value), last);
    $("frame-slider").disabled = last === 0;
    $("preview").disabled = false;
    $("preview-status").textContent = `${mediaInfo.width}x${mediaInfo.height}, ${mediaInfo.frames} frame(s)` +
        (mediaInfo.is_image ? "" : `, ${mediaInfo.fps.toFixed(2)} fps`);
    updateFrameLabel();
  } catch (err) {
    $("preview-status").textContent = "no preview: " + err.message;
  }
}

async function upload(event) {
  event.preventDefault();
  const file = $("upload-file").files[0];
  if (!file || !cwd) return;
  const form = new FormData();
  form.append("file", file);
  try {
    const data = await api("POST", "/api/upload?dir=" + encodeURIComponent(cwd), form);
    await showFolder(cwd);
    await selectInput(data.path, document.querySelector(`#files li[data-path="${CSS.escape(data.path)}"]`));
  } catch (err) {
    $("form-error").textContent = "upload: " + err.message;
  }
}

// --- models: the files of the models folders, and uploads into the user's ---

function modelInfoText(m) {
  // The row names the file: its error without the path in front.
  if (m.error) return m.error.startsWith(m.path + ": ") ? m.error.slice(m.path.length + 2) : m.error;
  const parts = [m.family === "ncnn graph" ? "ncnn" : m.family, "x" + m.scale];
  if (m.details) parts.push(m.details);
  if (m.format !== "ncnn") parts.push(m.format);
  return parts.join(", ");
}

// A model NAME's option: what it is for (a shipped model) or what its file is (the user's).
function modelLabel(name, files) {
  const good = files.filter((f) => !f.error);
  if (!good.length) return `${name} (unreadable)`;
  if (good[0].purpose) return `${name} (${good[0].purpose})`;
  if (good.length === 1) return `${name} (${good[0].family} x${good[0].scale}, ${good[0].format})`;
  return name;
}

async function loadModels(select) {
  const data = await api("GET", "/api/models");
  modelFiles = data.models;
  $("models-folder").textContent =
    `your models folder: ${data.folder} (uploads up to ${humanSize(data.max_upload_bytes)})`;
  const byName = new Map();
  for (const m of modelFiles) {
    if (!byName.has(m.name)) byName.set(m.name, []);
    byName.get(m.name).push(m);
  }
  // The CLI's default model until the user picks another.
  const chosen = select || $("model").value || "realesr-animevideov3";
  const options = [];
  for (const [name, files] of byName) {
    const option = new Option(modelLabel(name, files), name);
    option.disabled = files.every((f) => f.error);
    options.push(option);
  }
  for (const [name, label] of Object.entries(namedModels))
    if (!byName.has(name)) options.push(new Option(label ? `${name} (${label})` : name, name));
  $("model").replaceChildren(...options);
  if (chosen && options.some((o) => o.value === chosen && !o.disabled)) $("model").value = chosen;
  $("model-list").replaceChildren(...modelFiles.map((m) => {
    const li = document.createElement("li");
    li.dataset.file = m.file;
    li.className = (m.error ? "broken" : "") + (m.user ? " user" : "");
    li.title = m.path;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = m.file;
    const info = document.createElement("span");
    info.className = "info";
    info.textContent = modelInfoText(m);
    li.append(name, info);
    return li;
  }));
  if (select) modelChosen();
}

// A model file of one scale (a .pth, a plain NAME.param) gives its own: the scale follows it.
function modelChosen() {
  const files = modelFiles.filter((m) => m.name === $("model").value && !m.error);
  if (!files.length) return;
  const scales = files.map((m) => m.suffix_scale).filter((s) => s > 0);
  if (!scales.length) $("scale").value = "";
  else if (!scales.includes(Number($("scale").value))) $("scale").value = String(Math.min(...scales));
}

async function uploadModel(event) {
  event.preventDefault();
  const file = $("model-file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  const status = $("model-upload-status");
  status.className = "muted";
  status.textContent = `uploading ${file.name} ...`;
  try {
    const url = "/api/models" + ($("model-overwrite").checked ? "?overwrite=1" : "");
    const model = await api("POST", url, form);
    await loadModels(model.name);
    status.textContent = `${model.file}: ${modelInfoText(model)}; chosen as the model`;
  } catch (err) {
    status.className = "error";
    status.textContent = err.message;
  }
}

// --- the request a job or a preview sends ---

function jobRequest() {
  const request = {
    input: $('input-path').value.trim(),
    model: $('model').value,
    parallel: $('parallel').checked,
    skip_duplicates: $('skip-duplicates').checked,
    reuse_tiles: $('reuse-tiles').checked,
  };
  if ($("scale").value) request.scale = Number($("scale").value);
  if ($("output").value.trim()) request.output = $("output").value.trim();
  if ($("overwrite").checked) request.overwrite = true;
  for (const field of document.querySelectorAll("#advanced [data-key]")) {
    if (field.type === "checkbox") { if (field.checked) request[field.dataset.key] = true; }
    else if (field.value !== "") request[field.dataset.key] = field.value;
  }
  return request;
}

async function startJob(request) {
  $("form-error").textContent = "";
  try {
    const data = await api("POST", "/api/jobs", request);
    await refreshJobs();
    watchJob(data.id);
  } catch (err) {
    $("form-error").textContent = err.message;
  }
}

// --- the queue ---

// The files of a batch that failed ({"input", "error"}), from its stats.
function failedFiles(job) {
  const files = job.stats && job.stats.files;
  return files ? files.filter((f) => f.status === "failed") : [];
}

function stateText(job) {
  const failed = failedFiles(job).length;
  return failed && job.state === "done" ? `done, ${failed} failed` : job.state;
}

async function refreshJobs() {
  const data = await api("GET", "/api/jobs");
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren();
  jobsById = {};
  for (const job of data.jobs) {
    jobsById[job.id] = job;
    const tr = document.createElement("tr");
    tr.id = "job-row-" + job.id;
    if (job.id === currentJob) tr.className = "current";
    const p = job.progress;
    const cells = [String(job.id), job.input.split("/").pop(), stateText(job),
                   p ? `${p.frames_done}/${p.frames_total ?? "?"}` : ""];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (i === 1) { td.className = "input"; td.title = job.input; }
      if (i === 2) td.className = "state " + job.state + (failedFiles(job).length ? " failed" : "");
      tr.append(td);
    });
    const actions = document.createElement("td");
    actions.className = "actions";
    actions.append(...jobButtons(job, false));
    tr.append(actions);
    tr.addEventListener("click", (e) => { if (e.target.tagName !== "BUTTON") watchJob(job.id); });
    body.append(tr);
  }
  $("no-jobs").hidden = data.jobs.length > 0;
}

function jobButtons(job, big) {
  const buttons = [];
  const make = (label, id, action) => {
    const b = document.createElement("button");
    b.textContent = label;
    if (big) b.id = id;
    b.addEventListener("click", action);
    buttons.push(b);
  };
  if (job.state === "queued" || job.state === "running")
    make("Stop", "stop", () => api("POST", `/api/jobs/${job.id}/cancel`).then(refreshJobs));
  if ((job.state === "cancelled" || job.state === "failed") && job.partial_kept)
    make("Resume", "resume", () => startJob({ ...stripServerKeys(job.request), resume: true }));
  return buttons;
}

function stripServerKeys(request) {
  const copy = { ...request };
  delete copy.output_path;
  return copy;
}

// --- one job, live ---

function watchJob(id) {
  if (events) events.close();
  currentJob = id;
  $("progress-panel").hidden = false;
  $("job-id").textContent = id;
  $("log").textContent = "";
  $("stats").hidden = true;
  // Nothing of the job shown before stays on screen until this one's snapshot arrives.
  $("job-state").textContent = "";
  $("job-error").textContent = "";
  $("job-failures").replaceChildren();
  $("job-buttons").replaceChildren();
  $("frames-bar").style.width = "0";
  $("frames-text").textContent = "";
  for (const id of ["unique", "duplicates"]) $(id).textContent = "0";
  for (const id of ["fps", "eta"]) $(id).textContent = "-";
  $("stage-bars").replaceChildren();
  for (const row of document.querySelectorAll("#jobs tr.current")) row.classList.remove("current");
  const row = $("job-row-" + id);
  if (row) row.classList.add("current");
  events = new EventSource(withToken(`/api/jobs/${id}/events`));
  events.addEventListener("snapshot", (e) => {
    const job = JSON.parse(e.data);
    $("log").textContent = job.log.join("\n");
    showJob(job);
  });
  events.addEventListener("log", (e) => {
    const log = $("log");
    log.textContent += (log.textContent ? "\n" : "") + JSON.parse(e.data).line;
    log.scrollTop = log.scrollHeight;
  });
  events.addEventListener("progress", (e) => showProgress(JSON.parse(e.data)));
  events.addEventListener("end", (e) => {
    events.close();
    events = null;
    showJob(JSON.parse(e.data));
    refreshJobs();
  });
}

function showJob(job) {
  const failures = failedFiles(job);
  $("job-state").textContent = stateText(job);
  $("job-state").className = "state " + job.state + (failures.length ? " failed" : "");
  $("job-paths").textContent = job.input + " \u2192 " + job.output;
  $("job-error").textContent = job.error && job.state !== "cancelled" ? job.error : "";
  if (job.state === "cancelled") {
    const why = job.error && job.error !== "stopped" ? job.error + ": " : "stopped: ";
    $("job-error").textContent = job.partial_kept ? why + "the partial run is kept, Resume continues it" : "cancelled";
  }
  // A batch names each file that failed and why.
  $("job-failures").replaceChildren(...failures.map((f) => {
    const li = document.createElement("li");
    // The file's name once: its error starts with its path.
    const why = f.error.startsWith(f.input + ": ") ? f.error.slice(f.input.length + 2) : f.error;
    li.textContent = f.input.split("/").pop() + ": " + why;
    li.title = f.input;
    return li;
  }));
  if (job.progress) showProgress(job.progress);
  $("job-buttons").replaceChildren(...jobButtons(job, true));
  if (job.stats) showStats(job.stats);
  if (jobsById[job.id] && jobsById[job.id].state !== job.state) refreshJobs();
}

function showProgress(p) {
  const total = p.frames_total;
  $("frames-bar").style.width = total ? (100 * p.frames_done / total).toFixed(1) + "%" : "0";
  $("frames-text").textContent = `frames ${p.frames_done} / ${total ?? "?"}`;
  $("unique").textContent = p.unique;
  $("duplicates").textContent = p.duplicates;
  $("fps").textContent = p.fps.toFixed(1);
  $("eta").textContent = p.eta_s === null || p.eta_s === undefined ? "-" : p.eta_s.toFixed(0) + " s";
  const bars = $("stage-bars");
  if (!bars.children.length) {
    for (const stage of STAGES) {
      bars.insertAdjacentHTML("beforeend",
        `<div class="stage"><span>${stage}</span><div class="bar"><div id="busy-${stage}"></div></div><span id="busy-${stage}-text"></span></div>`);
    }
  }
  for (const stage of STAGES) {
    const fraction = Math.min(1, p.stage_busy[stage] || 0);
    $("busy-" + stage).style.width = (100 * fraction).toFixed(1) + "%";
    $("busy-" + stage + "-text").textContent = (100 * fraction).toFixed(0) + "% busy";
  }
}

function showStats(stats) {
  $("stats").hidden = false;
  $("stats-json").textContent = JSON.stringify(stats, null, 2);
  const one = stats.totals ? null : stats;  // a batch shows its JSON and failures only
  if (one) {
    $("unique").textContent = one.unique_frames;
    $("duplicates").textContent = one.duplicate_frames;
    $("fps").textContent = one.fps.toFixed(1);
    $("eta").textContent = "0 s";
    $("frames-bar").style.width = "100%";
    $("frames-text").textContent = `frames ${one.total_frames} / ${one.total_frames}`;
  }
  const svg = $("stats-chart");
  svg.replaceChildren();
  if (!one) { svg.style.display = "none"; return; }
  svg.style.display = "";
  const max = Math.max(...STAT_STAGES.map(([, key]) => one[key] || 0), 1e-9);
  const ns = "http://www.w3.org/2000/svg";
  const room = Math.max(100, (svg.clientWidth || 400) - 60 - 70);  // label, bar, value
  STAT_STAGES.forEach(([label, key], i) => {
    const y = 4 + i * 24, seconds = one[key] || 0, width = room * seconds / max;
    const text = document.createElementNS(ns, "text");
    text.setAttribute("x", 0); text.setAttribute("y", y + 13);
    text.textContent = label;
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", 60); rect.setAttribute("y", y);
    rect.setAttribute("height", 16);
    rect.setAttribute("width", width.toFixed(1));
    rect.setAttribute("fill", label === "total" ? "#1d2330" : "#7c3aed");
    const value = document.createElementNS(ns, "text");
    value.setAttribute("x", (64 + width).toFixed(1)); value.setAttribute("y", y + 13);
    value.textContent = seconds.toFixed(2) + " s";
    value.setAttribute("id", "chart-" + label);
    svg.append(text, rect, value);
  });
}

// --- before / after ---

function updateFrameLabel() {
  const frame = Number($("frame-slider").value);
  let text = "frame " + frame;
  if (mediaInfo && mediaInfo.fps > 0 && !mediaInfo.is_image) text += ` (${(frame / mediaInfo.fps).toFixed(2)} s)`;
  $("frame-label").textContent = text;
}

async function showPreview() {
  const request = jobRequest();
  const base = { input: request.input, frame: Number($("frame-slider").value) };
  const settings = { model: request.model, scale: request.scale, device: request.device,
                     precision: request.precision, tile: request.tile };
  $("preview").disabled = true;
  $("preview-status").textContent = "upscaling frame " + base.frame + " ...";
  const started = performance.now();
  try {
    const [before, after] = await Promise.all([
      api("POST", "/api/preview", { ...base, original: true }),
      api("POST", "/api/preview", { ...base, ...settings }),
    ]);
    await Promise.all([setImage($("before"), before), setImage($("after"), after)]);
    $("compare").hidden = false;
    setSplit(0.5);
    $("preview-status").textContent =
      `frame ${base.frame}: ${$("before").naturalWidth}x${$("before").naturalHeight} \u2192 ` +
      `${$("after").naturalWidth}x${$("after").naturalHeight} (${request.model}), ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s`;
  } catch (err) {
    $("preview-status").textContent = "preview failed: " + err.message;
  } finally {
    $("preview").disabled = false;
  }
}

function setImage(img, blob) {
  return new Promise((resolve, reject) => {
    if (img.src) URL.revokeObjectURL(img.src);
    img.onload = resolve;
    img.onerror = () => reject(new Error("the image did not load"));
    img.src = URL.createObjectURL(blob);
  });
}

function setSplit(fraction) {
  fraction = Math.max(0, Math.min(1, fraction));
  $("before-clip").style.width = (100 * fraction) + "%";
  $("split").style.left = (100 * fraction) + "%";
}

function dragSplit(event) {
  const box = $("compare").getBoundingClientRect();
  setSplit((event.clientX - box.left) / box.width);
}

// --- start ---

async function init() {
  $("upload-form").addEventListener("submit", upload);
  $("model-upload-form").addEventListener("submit", uploadModel);
  $("model").addEventListener("change", modelChosen);
  $("up").addEventListener("click", () => showFolder($("up").dataset.parent));
  $("root").addEventListener("change", () => showFolder($("root").value));
  $("use-folder").addEventListener("click", () => selectFolder(cwd));
  $("input-path").addEventListener("change", () => loadMediaInfo($("input-path").value.trim()));
  $("start").addEventListener("click", () => startJob(jobRequest()));
  $("frame-slider").addEventListener("input", updateFrameLabel);
  $("preview").addEventListener("click", showPreview);
  $("compare").addEventListener("pointerdown", (e) => {
    $("compare").setPointerCapture(e.pointerId);
    dragSplit(e);
    $("compare").onpointermove = dragSplit;
  });
  $("compare").addEventListener("pointerup", () => { $("compare").onpointermove = null; });
  try {
    const data = await api("GET", "/api/roots");
    for (const root of data.roots) $("root").append(new Option(root, root));
    for (const model of data.models) namedModels[model] = (data.model_labels || {})[model] || "";
    await loadModels();
    await showFolder(data.roots[0]);
    await refreshJobs();
    // After a reload: the running job (the queued ones wait behind it), else the newest.
    const jobs = Object.values(jobsById);
    const running = jobs.find((job) => job.state === "running");
    if (running) watchJob(running.id);
    else if (jobs.length) watchJob(jobs[jobs.length - 1].id);
  } catch (err) {
    $("server-status").textContent = "server: " + err.message;
  }
  // The queue table follows other tabs' and queued jobs' changes.
  setInterval(() => refreshJobs().catch(() => { $("server-status").textContent = "server not reachable"; }), 2000);
}

init();

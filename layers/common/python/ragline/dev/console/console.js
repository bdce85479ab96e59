// The ragline console: a playground for /query and a worklist for /reviews.
// Plain JavaScript, no build step and nothing fetched from the internet. It calls the API
// on its own origin (ragline dev serves it at /console; on AWS CloudFront puts the API
// behind the same distribution) with the API key typed in, kept for this tab only.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "ragline.apiKey";

function headers(json) {
  const h = { "x-api-key": $("api-key").value.trim() };
  if (json) h["Content-Type"] = "application/json";
  return h;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(`${response.status}: ${data.message || response.statusText}`);
  }
  return { status: response.status, data };
}

function status(id, text, error) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle("error", Boolean(error));
}

function pages(c) {
  if (!c.pages || !c.pages.length) return "";
  return c.pages.length === 1 ? ` · page ${c.pages[0]}` : ` · pages ${c.pages.join(", ")}`;
}

function renderCitations(list, citations, pick) {
  list.replaceChildren();
  for (const c of citations) {
    const li = document.createElement("li");
    li.value = c.n;
    li.dataset.n = c.n;
    if (pick) {
      const box = document.createElement("input");
      box.type = "checkbox";
      box.className = "pick";
      box.value = c.n;
      box.checked = pick.includes(c.n);
      li.append(box, " ");
    }
    const source = document.createElement("span");
    source.className = "source";
    source.textContent = (c.title || c.source) + pages(c);
    const origin = document.createElement("div");
    origin.className = "meta";
    origin.textContent = c.source;
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = c.text;
    li.append(source, origin, text);
    list.append(li);
  }
}

// --- playground ------------------------------------------------------------------------

function showAnswer(body) {
  $("answer-box").hidden = false;
  if (body.held) {
    $("answer").textContent = `Held for review: ${body.location || body.review_id}`;
  } else {
    $("answer").textContent = body.answer;
  }
  const usage = body.usage || {};
  const cost = usage.cost_usd === null || usage.cost_usd === undefined
    ? "unpriced" : `$${Number(usage.cost_usd).toFixed(6)}`;
  const m = body.model;
  const name = m && (m.provider === m.name ? m.provider : `${m.provider}:${m.name}`);
  const model = m ? `${name} · ${m.prompt}` : "";
  const total = body.latency_ms ? ` · ${Math.round(body.latency_ms.total)} ms` : "";
  const review = body.review_id ? ` · review ${body.review_id}` : "";
  $("answer-meta").textContent =
    `${body.profile || ""} · ${model} · cost ${cost}${total}${review}`;
  renderCitations($("citations"), body.citations || []);
}

function parseEvents(buffer, onEvent) {
  // Server-sent events: blocks separated by a blank line, "event:" and "data:" lines.
  let index;
  while ((index = buffer.indexOf("\n\n")) >= 0) {
    const block = buffer.slice(0, index);
    buffer = buffer.slice(index + 2);
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    if (data.length) onEvent(name, JSON.parse(data.join("\n")));
  }
  return buffer;
}

async function askStreamed(request) {
  const response = await fetch("/query", {
    method: "POST",
    headers: { ...headers(true), Accept: "text/event-stream" },
    body: JSON.stringify({ ...request, stream: true }),
  });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new Error(`${response.status}: ${data.message || response.statusText}`);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer = parseEvents(buffer + decoder.decode(value, { stream: true }), (name, data) => {
      if (name === "retrieval") {
        status("ask-status", `${data.citations.length} passages found; answering…`);
        $("answer-box").hidden = false;
        renderCitations($("citations"), data.citations);
      } else if (name === "delta") {
        text += data.text;
        $("answer").textContent = text;
      } else if (name === "final") {
        showAnswer(data);
        status("ask-status", "answered");
      } else if (name === "error") {
        status("ask-status", `${data.statusCode}: ${data.message}`, true);
      }
    });
  }
}

async function ask(event) {
  event.preventDefault();
  const request = { question: $("question").value };
  if ($("profile").value.trim()) request.profile = $("profile").value.trim();
  if ($("collection").value.trim()) request.collection = $("collection").value.trim();
  $("answer").textContent = "";
  status("ask-status", "asking…");
  try {
    if ($("stream").checked) {
      await askStreamed(request);
    } else {
      const { data } = await api("POST", "/query", request);
      showAnswer(data);
      status("ask-status", data.held ? "held for review" : "answered");
    }
  } catch (error) {
    status("ask-status", error.message, true);
  }
}

// --- review queue ----------------------------------------------------------------------

let current = null;

async function refresh(event) {
  if (event) event.preventDefault();
  const query = new URLSearchParams();
  if ($("filter-state").value) query.set("state", $("filter-state").value);
  if ($("filter-reason").value) query.set("reason", $("filter-reason").value);
  if ($("filter-profile").value.trim()) query.set("profile", $("filter-profile").value.trim());
  try {
    const { data } = await api("GET", `/reviews?${query}`);
    const list = $("queue");
    list.replaceChildren();
    for (const item of data.items) {
      const li = document.createElement("li");
      li.dataset.id = item.id;
      const reason = document.createElement("div");
      reason.className = "reason";
      reason.textContent = `${item.reason} · ${item.profile} · ${item.state}${item.held ? " · held" : ""}`;
      const question = document.createElement("div");
      question.textContent = item.question;
      li.append(reason, question);
      li.addEventListener("click", () => openItem(item.id));
      list.append(li);
    }
    status("review-status", `${data.items.length} items`);
  } catch (error) {
    status("review-status", error.message, true);
  }
}

async function openItem(id) {
  try {
    const { data } = await api("GET", `/reviews/${id}`);
    show(data);
  } catch (error) {
    status("review-status", error.message, true);
  }
}

function show(item) {
  current = item;
  for (const li of $("queue").children) li.classList.toggle("selected", li.dataset.id === item.id);
  $("item").hidden = false;
  $("item-question").textContent = item.question;
  const cost = item.cost_usd === null ? "unpriced" : `$${Number(item.cost_usd).toFixed(6)}`;
  $("item-meta").textContent =
    `${item.reason}${item.reason_detail ? ` (${item.reason_detail})` : ""} · ${item.profile} · ` +
    `${item.model} · ${item.prompt} · cost ${cost} · queued ${item.queued_at}`;
  $("item-answer").textContent = item.answer;
  const cited = item.citations.map((c) => c.n);
  renderCitations($("item-passages"), item.passages, cited);
  $("correct-answer").value = item.answer;
  const decided = item.decided_at !== null;
  $("decision").hidden = decided;
  $("item-outcome").textContent = decided
    ? `${item.state} by ${item.decided_by} at ${item.decided_at}` : "";
}

async function decide(action, body) {
  if (!current) return;
  try {
    const { data } = await api("POST", `/reviews/${current.id}/${action}`, body);
    show(data);
    status("review-status", `${data.state}`);
    await refresh();
    show(data);
  } catch (error) {
    status("review-status", error.message, true);
  }
}

function picked() {
  return [...$("item-passages").querySelectorAll("input.pick:checked")].map((b) => Number(b.value));
}

// --- wiring ----------------------------------------------------------------------------

function showView(name) {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.classList.toggle("active", tab.dataset.view === name);
  }
  $("view-playground").hidden = name !== "playground";
  $("view-reviews").hidden = name !== "reviews";
  if (name === "reviews") refresh();
}

$("api-key").value = sessionStorage.getItem(KEY) || "";
$("api-key").addEventListener("change", () => sessionStorage.setItem(KEY, $("api-key").value.trim()));
for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => showView(tab.dataset.view));
}
$("ask-form").addEventListener("submit", ask);
$("filter-form").addEventListener("submit", refresh);
$("approve").addEventListener("click", () => decide("approve"));
$("correct").addEventListener("click", () =>
  decide("correct", { answer: $("correct-answer").value, citations: picked() }));
$("reject").addEventListener("click", () =>
  decide("reject", { reason: $("reject-reason").value || "rejected", category: $("reject-category").value }));
if (location.hash === "#reviews") showView("reviews");

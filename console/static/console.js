// The console's behaviour: live regions fed by server-sent events, the
// task panel of the graph, confirmed actions through the REST API, tabs.
// Plain JavaScript, no build step; every request carries the session's
// CSRF token.

const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

async function api(method, url, body) {
  const headers = { "X-Baton-CSRF": csrf };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const resp = await fetch(url, init);
  const text = await resp.text();
  let doc = null;
  try { doc = text ? JSON.parse(text) : null; } catch { doc = null; }
  if (!resp.ok) {
    const p = doc ?? {};
    throw new Error([p.title || resp.statusText, p.detail].filter(Boolean).join(": "));
  }
  return doc;
}

// Live regions: a [data-live] element names its event stream and the
// fragment of the page to fetch again when the stream says "change".
function live(section) {
  const url = section.dataset.live;
  if (!url) return;
  const fragment = section.dataset.fragment;
  let pending = false, again = false;
  const refresh = async () => {
    if (pending) { again = true; return; }
    pending = true;
    try {
      const u = new URL(location.href);
      u.searchParams.set("fragment", fragment);
      const resp = await fetch(u, { credentials: "same-origin", headers: { "Accept": "text/html" } });
      if (resp.ok) {
        const region = section.querySelector("#live-region");
        const tpl = document.createElement("template");
        tpl.innerHTML = await resp.text();
        const next = tpl.content.querySelector("#live-region");
        if (region && next) {
          const openTab = section.querySelector("[data-tab][aria-selected=true]")?.dataset.tab;
          region.replaceWith(next);
          if (openTab) selectTab(section, openTab);
          markSelected();
          document.dispatchEvent(new CustomEvent("baton:updated", { detail: { status: next.dataset.status } }));
        }
      }
    } finally {
      pending = false;
      if (again) { again = false; refresh(); }
    }
  };
  const es = new EventSource(url, { withCredentials: true });
  es.addEventListener("change", refresh);
  es.addEventListener("final", () => { es.close(); refresh(); });
  es.addEventListener("failed", () => es.close());
}

// The task panel: a click on a task of the graph shows its details.
let selectedRef = null;
function markSelected() {
  document.querySelectorAll("svg.graph .selected").forEach(g => g.classList.remove("selected"));
  if (!selectedRef) return;
  document.querySelectorAll("svg.graph [data-ref]").forEach(g => {
    if (g.dataset.ref === selectedRef) g.classList.add("selected");
  });
}

async function showTask(ref) {
  const run = document.querySelector("[data-run]");
  const panel = document.getElementById("task-panel");
  if (!run || !panel || !ref) return;
  selectedRef = ref;
  markSelected();
  const resp = await fetch(`/runs/${encodeURIComponent(run.dataset.run)}/task?ref=${encodeURIComponent(ref)}`, { credentials: "same-origin" });
  panel.innerHTML = await resp.text();
  panel.hidden = false;
}

document.addEventListener("click", ev => {
  const close = ev.target.closest("[data-close]");
  if (close) { document.getElementById("task-panel").hidden = true; selectedRef = null; markSelected(); return; }
  const sel = ev.target.closest("[data-select]");
  if (sel && sel.dataset.select) { ev.preventDefault(); showTask(sel.dataset.select); return; }
  const node = ev.target.closest("svg.graph [data-ref]");
  if (node && document.querySelector("[data-run]")) { showTask(node.dataset.ref); return; }
  const tab = ev.target.closest("[data-tab]");
  if (tab) { selectTab(tab.closest("section").parentElement, tab.dataset.tab); return; }
  const action = ev.target.closest("button[data-action]");
  if (action) { ev.preventDefault(); confirmAction(action); }
});

document.addEventListener("keydown", ev => {
  if (ev.key === "Enter" && ev.target.matches?.("svg.graph [data-ref]")) showTask(ev.target.dataset.ref);
});

function selectTab(scope, name) {
  scope.querySelectorAll("[data-tab]").forEach(b => b.setAttribute("aria-selected", String(b.dataset.tab === name)));
  scope.querySelectorAll("[data-tab-panel]").forEach(p => {
    p.hidden = p.dataset.tabPanel !== name;
    // A panel with a source is fetched when first shown.
    if (!p.hidden && p.dataset.src && !p.dataset.loaded) {
      p.dataset.loaded = "true";
      fetch(p.dataset.src, { credentials: "same-origin" }).then(r => r.text()).then(html => { p.innerHTML = html; });
    }
  });
}

// Actions ask first, in a dialog that takes a reason or an input where
// the action has one, then call the API and show its problem if it fails.
function ask({ title, text, reason, input }) {
  const dlg = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text || "";
  document.getElementById("confirm-reason-label").hidden = !reason;
  document.getElementById("confirm-reason").value = "";
  document.getElementById("confirm-input-label").hidden = input === undefined;
  document.getElementById("confirm-input").value = input ?? "";
  document.getElementById("confirm-problem").hidden = true;
  return new Promise(resolve => {
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok" ? {
      reason: document.getElementById("confirm-reason").value,
      input: document.getElementById("confirm-input").value,
    } : null), { once: true });
    dlg.returnValue = "";
    dlg.showModal();
  });
}

function showProblem(msg) {
  let el = document.getElementById("action-problem");
  if (!el) {
    el = document.createElement("p");
    el.id = "action-problem"; el.className = "problem"; el.setAttribute("role", "alert");
    el.dataset.testid = "action-problem";
    document.querySelector("main").prepend(el);
  }
  el.textContent = msg;
}

async function confirmAction(btn) {
  const d = btn.dataset;
  const answer = await ask({ title: d.title, text: d.text, reason: d.reason === "true", input: d.input });
  if (!answer) return;
  try {
    if (d.action === "cancel") {
      await api("POST", d.url, answer.reason ? { reason: answer.reason } : {});
    } else if (d.action === "retry") {
      await api("POST", d.url, answer.reason ? { reason: answer.reason } : {});
    } else if (d.action === "rerun") {
      const input = JSON.parse(answer.input); // say so here when it is not JSON
      const check = await api("POST", d.check, answer.input);
      if (!check.valid) throw new Error(check.problem);
      // The API's rerun takes {"input": ...}; a plain start takes the input.
      const body = d.url.endsWith("/rerun") ? { input } : answer.input;
      const res = await api("POST", d.url, body);
      if (res?.id) { location.href = `/runs/${encodeURIComponent(res.id)}`; return; }
    }
    location.reload();
  } catch (err) {
    showProblem(`${d.action} failed: ${err.message}`);
  }
}

// Start a workflow from its page, and send events.
document.addEventListener("submit", async ev => {
  const form = ev.target;
  if (form.matches("form[data-start]")) {
    ev.preventDefault();
    const problem = form.querySelector(".problem");
    problem.hidden = true;
    try {
      const input = form.elements.input.value;
      JSON.parse(input);
      const check = await api("POST", form.dataset.check, input);
      if (!check.valid) throw new Error(check.problem);
      const res = await api("POST", form.dataset.start, input);
      location.href = `/runs/${encodeURIComponent(res.id)}`;
    } catch (err) { problem.textContent = err.message; problem.hidden = false; }
  } else if (form.matches("form.send-event")) {
    ev.preventDefault();
    const problem = form.querySelector(".problem"), ok = form.querySelector(".ok");
    problem.hidden = true; ok.hidden = true;
    try {
      const data = JSON.parse(form.elements.data.value || "null");
      const answer = await ask({ title: "Send this event?", text: `${form.elements.type.value} from ${form.elements.source.value}` });
      if (!answer) return;
      await api("POST", "/v1/events", {
        specversion: "1.0", id: crypto.randomUUID(), type: form.elements.type.value,
        source: form.elements.source.value, datacontenttype: "application/json", data,
      });
      ok.textContent = "Sent."; ok.hidden = false;
    } catch (err) { problem.textContent = err.message; problem.hidden = false; }
  }
});

document.querySelectorAll("[data-live]").forEach(live);
document.documentElement.dataset.ready = "true";

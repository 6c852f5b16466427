/// The demo page served at `/` with `--demo`: the four classic Flask-SSE demos, live.
///
/// Plain HTML and JavaScript, no build step; each panel opens its own EventSource and shows
/// which node serves its stream.
enum DemoPage {
    static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>sse-broker demo</title>
    <style>
      :root {
        --bg: #f4f5f7; --card: #ffffff; --text: #1f2328; --muted: #656d76;
        --border: #d8dee4; --accent: #0969da; --up: #1a7f37; --down: #cf222e; --warn: #9a6700;
      }
      * { box-sizing: border-box; }
      body {
        margin: 0; background: var(--bg); color: var(--text);
        font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
        font-size: 15px; line-height: 1.45;
      }
      header { padding: 20px 24px 4px; }
      header h1 { margin: 0; font-size: 1.6rem; }
      header p { margin: 4px 0 0; color: var(--muted); }
      main {
        display: grid; gap: 16px; padding: 16px 24px;
        grid-template-columns: repeat(auto-fit, minmax(340px, 1fr));
      }
      .card {
        background: var(--card); border: 1px solid var(--border); border-radius: 10px;
        padding: 16px 18px; display: flex; flex-direction: column; min-height: 260px;
        box-shadow: 0 1px 2px rgba(0, 0, 0, 0.04);
      }
      .card h2 { margin: 0; font-size: 1.15rem; }
      .card .desc { margin: 2px 0 10px; color: var(--muted); font-size: 0.9rem; }
      .status-line { font-size: 0.8rem; color: var(--muted); margin-bottom: 10px; }
      .status-line code, .node { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
      .state { font-weight: 600; }
      .state.open { color: var(--up); }
      .state.connecting { color: var(--warn); }
      .state.reconnecting { color: var(--down); }
      .gap { font-size: 0.8rem; color: var(--warn); margin: -6px 0 10px; }
      .small { font-size: 0.85rem; color: var(--muted); }
      #clock-time {
        font-size: 3.4rem; font-weight: 700; letter-spacing: 0.02em; text-align: center;
        font-variant-numeric: tabular-nums; margin: 18px 0 4px;
      }
      #clock-by { text-align: center; }
      form { display: flex; gap: 6px; flex-wrap: wrap; }
      input, button {
        font: inherit; padding: 6px 10px; border: 1px solid var(--border); border-radius: 6px;
      }
      #board-name { width: 8.5em; }
      #publish-key { width: 100%; margin-top: 4px; }
      #board-text { flex: 1; min-width: 8em; }
      button { background: var(--accent); color: #fff; border-color: var(--accent); cursor: pointer; }
      button:disabled { opacity: 0.6; cursor: default; }
      #board-error { color: var(--down); font-size: 0.85rem; min-height: 1.2em; margin: 4px 0; }
      #board-messages {
        list-style: none; margin: 0; padding: 0; overflow-y: auto; max-height: 260px; flex: 1;
        border-top: 1px solid var(--border);
      }
      #board-messages li { padding: 4px 2px; border-bottom: 1px solid #eef1f4; word-wrap: break-word; }
      #task-progress { width: 100%; height: 18px; margin: 14px 0 6px; }
      #task-text { font-variant-numeric: tabular-nums; }
      table { width: 100%; border-collapse: collapse; font-size: 0.88rem; font-variant-numeric: tabular-nums; }
      th, td { text-align: left; padding: 5px 6px; border-bottom: 1px solid #eef1f4; }
      th { color: var(--muted); font-weight: 600; }
      td.num { text-align: right; }
      .up { color: var(--up); font-weight: 600; }
      .down { color: var(--down); font-weight: 600; }
      tr.stale td, tr.stale td span { color: #9aa1a9; }
      tr.stale td:first-child::after { content: " (stale)"; font-size: 0.8em; }
      footer { padding: 4px 24px 24px; color: var(--muted); font-size: 0.88rem; }
    </style>
    </head>
    <body>
    <header>
      <h1>sse-broker demo</h1>
      <p>Four live Server-Sent Events demos, each on its own channel.</p>
    </header>
    <main>
      <section class="card" id="clock">
        <h2>Clock</h2>
        <p class="desc">Server time published once a second through Redis; every node fans it out.</p>
        <div class="status-line">stream <span id="clock-state" class="state connecting">connecting</span>
          &middot; node <span id="clock-node" class="node">?</span></div>
        <div id="clock-gap" class="gap" hidden></div>
        <div id="clock-time">--:--:--</div>
        <div id="clock-by" class="small">waiting for the first tick&hellip;</div>
      </section>

      <section class="card" id="board">
        <h2>Message board</h2>
        <p class="desc">Publish over HTTP (or <code>redis-cli PUBLISH demo.board hello</code>); every open page receives it.</p>
        <div class="status-line">stream <span id="board-state" class="state connecting">connecting</span>
          &middot; node <span id="board-node" class="node">?</span></div>
        <div id="board-gap" class="gap" hidden></div>
        <form id="board-form" autocomplete="off">
          <input id="board-name" placeholder="your name" maxlength="40">
          <input id="board-text" placeholder="message" required maxlength="500">
          <button id="board-send" type="submit">Send</button>
          <input id="publish-key" type="password" placeholder="publish key (if the node has one)" maxlength="200">
        </form>
        <div id="board-error"></div>
        <ul id="board-messages"></ul>
      </section>

      <section class="card" id="task">
        <h2>Background task</h2>
        <p class="desc">A server-side job reports its progress as events while it runs.</p>
        <div class="status-line">stream <span id="task-state" class="state connecting">connecting</span>
          &middot; node <span id="task-node" class="node">?</span></div>
        <div id="task-gap" class="gap" hidden></div>
        <div><button id="task-start" type="button">Start task</button></div>
        <progress id="task-progress" max="100" value="0"></progress>
        <div id="task-text" class="small">no task running</div>
      </section>

      <section class="card" id="status">
        <h2>Service status</h2>
        <p class="desc">Every broker node reports its health every 2 seconds; silent nodes turn stale.</p>
        <div class="status-line">stream <span id="status-state" class="state connecting">connecting</span>
          &middot; node <span id="status-node" class="node">?</span></div>
        <div id="status-gap" class="gap" hidden></div>
        <table id="status-table">
          <thead><tr><th>Node</th><th>Redis</th><th>Response</th><th>Streams</th><th>Last seen</th></tr></thead>
          <tbody id="status-rows"></tbody>
        </table>
      </section>
    </main>
    <footer>Each panel is its own EventSource stream; the node name shows which broker node serves it. Kill a node and watch the stream move.</footer>

    <script>
    (function () {
      "use strict";

      function $(id) { return document.getElementById(id); }

      function parseJSON(text) {
        try { return JSON.parse(text); } catch (err) { return null; }
      }

      function isObject(value) {
        return value !== null && typeof value === "object" && !Array.isArray(value);
      }

      function setState(panel, state) {
        var el = $(panel + "-state");
        el.textContent = state;
        el.className = "state " + state;
      }

      // Opens one EventSource for a panel; the browser reconnects by itself (with Last-Event-ID).
      function connect(panel, channel, handlers) {
        setState(panel, "connecting");
        var source = new EventSource("/stream?channel=" + channel);
        source.onopen = function () { setState(panel, "open"); };
        source.onerror = function () { setState(panel, "reconnecting"); };
        source.addEventListener("node", function (event) {
          var data = parseJSON(event.data);
          if (isObject(data) && data.node !== undefined) {
            $(panel + "-node").textContent = String(data.node);
          }
        });
        source.addEventListener("history-gap", function () {
          var gap = $(panel + "-gap");
          gap.textContent = "some events could not be replayed";
          gap.hidden = false;
        });
        Object.keys(handlers).forEach(function (type) {
          if (type === "message") {
            // Named "message" events and unnamed events both arrive here, exactly once each.
            source.onmessage = handlers[type];
          } else {
            source.addEventListener(type, handlers[type]);
          }
        });
        return source;
      }

      // Panel 1: clock.
      connect("clock", "demo.clock", {
        tick: function (event) {
          var data = parseJSON(event.data);
          if (!isObject(data)) { return; }
          $("clock-time").textContent = String(data.time);
          $("clock-by").textContent = "published by " + String(data.node);
        }
      });

      // Panel 2: message board.
      var MAX_MESSAGES = 200;
      var list = $("board-messages");

      function appendMessage(id, name, text) {
        var nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
        var li = document.createElement("li");
        li.setAttribute("data-id", id);
        var b = document.createElement("b");
        b.className = "name";
        b.textContent = name;
        var span = document.createElement("span");
        span.className = "text";
        span.textContent = text;
        li.appendChild(b);
        li.appendChild(document.createTextNode(" "));
        li.appendChild(span);
        list.appendChild(li);
        while (list.children.length > MAX_MESSAGES) {
          list.removeChild(list.firstElementChild);
        }
        if (nearBottom) { list.scrollTop = list.scrollHeight; }
      }

      connect("board", "demo.board", {
        message: function (event) {
          var data = parseJSON(event.data);
          var name = "redis";
          var text = event.data;
          if (isObject(data) && data.text !== undefined) {
            text = typeof data.text === "string" ? data.text : JSON.stringify(data.text);
            name = (typeof data.name === "string" && data.name !== "") ? data.name : "anonymous";
          }
          appendMessage(event.lastEventId, name, text);
        }
      });

      // Publishing (the form, the task button) needs the node's publish key unless it is open
      // (no auth, reached directly on loopback); the key stays in this tab only.
      var keyInput = $("publish-key");
      try { keyInput.value = sessionStorage.getItem("sse-publish-key") || ""; } catch (e) {}
      keyInput.addEventListener("change", function () {
        try { sessionStorage.setItem("sse-publish-key", keyInput.value); } catch (e) {}
      });
      function publishHeaders(headers) {
        var key = keyInput.value.trim();
        if (key !== "") { headers["Authorization"] = "Bearer " + key; }
        return headers;
      }

      $("board-form").addEventListener("submit", function (event) {
        event.preventDefault();
        var nameInput = $("board-name");
        var textInput = $("board-text");
        var sendButton = $("board-send");
        var errorBox = $("board-error");
        var name = nameInput.value.trim() || "anonymous";
        var text = textInput.value;
        if (text === "") { return; }
        errorBox.textContent = "";
        sendButton.disabled = true;
        fetch("/publish?channel=demo.board", {
          method: "POST",
          headers: publishHeaders({ "Content-Type": "application/json" }),
          body: JSON.stringify({ data: { name: name, text: text }, type: "message" })
        }).then(function (response) {
          if (response.ok) {
            textInput.value = "";
            textInput.focus();
            return;
          }
          return response.text().then(function (body) {
            var data = parseJSON(body);
            var message = isObject(data) && data.error !== undefined ? String(data.error) : body;
            errorBox.textContent = "Error " + response.status + ": " + (message || response.statusText);
          });
        }).catch(function (err) {
          errorBox.textContent = "Could not publish: " + err;
        }).then(function () {
          sendButton.disabled = false;
        });
      });

      // Panel 3: background task.
      connect("task", "demo.task", {
        progress: function (event) {
          var data = parseJSON(event.data);
          if (!isObject(data)) { return; }
          var pct = Math.max(0, Math.min(100, Number(data.progress) || 0));
          $("task-progress").value = pct;
          var line = "task " + String(data.task) + ": " + pct + "% (on " + String(data.node) + ")";
          if (pct >= 100) { line += " \u2014 done"; }
          $("task-text").textContent = line;
        }
      });

      $("task-start").addEventListener("click", function () {
        var button = $("task-start");
        var textEl = $("task-text");
        button.disabled = true;
        fetch("/demo/task", { method: "POST", headers: publishHeaders({}) }).then(function (response) {
          return response.text().then(function (body) {
            var data = parseJSON(body);
            if (response.ok && isObject(data) && data.task !== undefined) {
              $("task-progress").value = 0;
              textEl.textContent = "task " + String(data.task) + ": started";
            } else {
              var message = isObject(data) && data.error !== undefined ? String(data.error) : body;
              textEl.textContent = "Could not start task: " + (message || response.status);
            }
          });
        }).catch(function (err) {
          textEl.textContent = "Could not start task: " + err;
        }).then(function () {
          button.disabled = false;
        });
      });

      // Panel 4: service status.
      var STALE_MS = 6000;
      var rows = new Map();
      var tbody = $("status-rows");

      function cell(row, index) { return row.children[index]; }

      function rowFor(node) {
        var entry = rows.get(node);
        if (entry) { return entry; }
        var tr = document.createElement("tr");
        tr.setAttribute("data-node", node);
        for (var i = 0; i < 5; i++) { tr.appendChild(document.createElement("td")); }
        cell(tr, 0).textContent = node;
        cell(tr, 0).className = "node";
        cell(tr, 2).className = "num";
        cell(tr, 3).className = "num";
        var next = null;
        Array.prototype.forEach.call(tbody.children, function (other) {
          if (next === null && other.getAttribute("data-node") > node) { next = other; }
        });
        tbody.insertBefore(tr, next);
        entry = { row: tr, seen: 0 };
        rows.set(node, entry);
        return entry;
      }

      connect("status", "demo.status", {
        status: function (event) {
          var data = parseJSON(event.data);
          if (!isObject(data) || data.node === undefined) { return; }
          var entry = rowFor(String(data.node));
          var tr = entry.row;
          var redis = document.createElement("span");
          redis.textContent = String(data.redis);
          redis.className = data.redis === "up" ? "up" : "down";
          cell(tr, 1).textContent = "";
          cell(tr, 1).appendChild(redis);
          var ms = Number(data.responseMs);
          cell(tr, 2).textContent = isFinite(ms) ? ms.toFixed(2) + " ms" : "?";
          cell(tr, 3).textContent = String(data.streams);
          cell(tr, 4).textContent = String(data.time);
          entry.seen = Date.now();
          tr.classList.remove("stale");
        }
      });

      setInterval(function () {
        var now = Date.now();
        rows.forEach(function (entry) {
          entry.row.classList.toggle("stale", now - entry.seen > STALE_MS);
        });
      }, 1000);
    })();
    </script>
    </body>
    </html>
    """#
}

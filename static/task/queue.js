/*
 * The persistent response queue of the participant task.
 *
 * Every answer is written to localStorage (one key per session token) before
 * anything is sent, so a reload, a crash or a lost connection loses nothing.
 * One sender posts the items strictly in order, one at a time, because the
 * server refuses a step that is not the next one. Each item carries a
 * client_id: a retry of an answer the server already stored returns the stored
 * row (200) and writes nothing, so "sent twice" is harmless and "maybe sent" is
 * always retried.
 *
 * Outcomes of one POST:
 *   200/201                  stored: drop the item, resolve its promise
 *   network error, timeout,
 *   408, 429, 5xx            retry the same item with exponential backoff
 *   any other 4xx            the page's picture of the session is wrong (409
 *                            out_of_order / session_closed) or the item can
 *                            never be stored (400, 404, 413): the queue drops
 *                            that item and every later one (they were built on
 *                            the same stale picture), rejects their promises,
 *                            halts, and reports the error. The page then reloads
 *                            the session state from the server, which is the
 *                            truth, and calls resume().
 *
 * Exposed as the global BeliefQueue (no build step; loaded by a plain <script>).
 */
(function (root) {
  "use strict";

  var STORAGE_PREFIX = "belief-web:queue:v1:";
  // The server's answers to the last items sent, so that another tab of the same session,
  // whose items this tab's queue delivered (they share one list), can settle them too.
  var DELIVERED_PREFIX = "belief-web:delivered:v1:";
  var DELIVERED_KEPT = 50;

  function uuid4() {
    var c = root.crypto;
    if (c && typeof c.randomUUID === "function") {
      try {
        return c.randomUUID();
      } catch (e) {
        /* insecure context (plain http on a LAN address): fall through */
      }
    }
    var bytes = new Uint8Array(16);
    if (c && typeof c.getRandomValues === "function") {
      c.getRandomValues(bytes);
    } else {
      for (var i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = [];
    for (var j = 0; j < 16; j++) hex.push((bytes[j] + 0x100).toString(16).slice(1));
    return (
      hex.slice(0, 4).join("") + "-" + hex.slice(4, 6).join("") + "-" + hex.slice(6, 8).join("") +
      "-" + hex.slice(8, 10).join("") + "-" + hex.slice(10, 16).join("")
    );
  }

  /** An error answer of the API, or a network failure (status 0). */
  function ApiError(status, body, message) {
    var err = (body && body.error) || {};
    this.name = "ApiError";
    this.status = status;
    this.code = err.code || (status ? "http_" + status : "network");
    this.message = err.message || message || "HTTP " + status;
    this.body = body || null;
  }
  ApiError.prototype = Object.create(Error.prototype);
  ApiError.prototype.constructor = ApiError;

  function isRetryable(status) {
    return status === 0 || status === 408 || status === 429 || status >= 500;
  }

  /** Storage that survives a reload when localStorage works, memory otherwise. */
  function makeStore(key, storage) {
    var memory = [];
    var usable = true;
    function read() {
      if (!usable) return memory.slice();
      try {
        var raw = storage.getItem(key);
        var items = raw ? JSON.parse(raw) : [];
        return Array.isArray(items) ? items : [];
      } catch (e) {
        usable = false; // private mode, disabled storage, or corrupt JSON
        return memory.slice();
      }
    }
    function write(items) {
      memory = items.slice();
      if (!usable) return;
      try {
        if (items.length) storage.setItem(key, JSON.stringify(items));
        else storage.removeItem(key);
      } catch (e) {
        usable = false; // quota: keep going in memory rather than lose answers
      }
    }
    if (!storage) usable = false;
    return { read: read, write: write };
  }

  /**
   * create({token, apiBase, storage?, fetch?, baseDelayMs?, maxDelayMs?, timeoutMs?})
   */
  function create(options) {
    var token = options.token;
    var url = options.apiBase.replace(/\/$/, "") + "/sessions/" + encodeURIComponent(token) + "/responses";
    var storage = options.storage === undefined ? safeLocalStorage() : options.storage;
    var doFetch = options.fetch || root.fetch.bind(root);
    var baseDelay = options.baseDelayMs || 500;
    var maxDelay = options.maxDelayMs || 10000;
    var timeoutMs = options.timeoutMs || 20000;
    var store = makeStore(STORAGE_PREFIX + token, storage);

    var waiters = {}; // client_id -> {resolve, reject}, for items enqueued on this page load
    var statusListeners = [];
    var errorListeners = [];
    var flushWaiters = [];
    var running = false;
    var halted = null; // the ApiError that halted the queue
    var state = "idle"; // idle | saving | offline | error
    var wake = null; // cuts a backoff sleep short when the browser comes back online
    var inFlight = null; // the client_id this page is posting now
    var deliveredKey = DELIVERED_PREFIX + token;

    function recordDelivered(clientId, body) {
      if (!storage) return;
      try {
        var kept = JSON.parse(storage.getItem(deliveredKey) || "[]");
        if (!Array.isArray(kept)) kept = [];
        kept.push([clientId, body]);
        storage.setItem(deliveredKey, JSON.stringify(kept.slice(-DELIVERED_KEPT)));
      } catch (e) {
        /* best effort: the other tab then reads the base rate from the server */
      }
    }

    function deliveredBodies() {
      var found = {};
      if (!storage) return found;
      try {
        (JSON.parse(storage.getItem(deliveredKey) || "[]") || []).forEach(function (pair) {
          found[pair[0]] = pair[1];
        });
      } catch (e) {
        /* corrupt: nothing known */
      }
      return found;
    }

    /** Settle this page's answers that another tab's queue took out of the shared list. */
    function settleForeign() {
      var ids = Object.keys(waiters);
      if (!ids.length) return;
      var present = {};
      store.read().forEach(function (it) { present[it.client_id] = true; });
      var bodies = null;
      var dropped = null;
      ids.forEach(function (id) {
        if (present[id] || id === inFlight) return;
        bodies = bodies || deliveredBodies();
        var w = waiters[id];
        delete waiters[id];
        if (Object.prototype.hasOwnProperty.call(bodies, id)) {
          w.resolve(bodies[id] || {});
        } else {
          // Gone without being stored: the other tab's queue was refused and dropped it.
          dropped = dropped || new ApiError(409, null, "answered in another window");
          w.reject(dropped);
        }
      });
      if (dropped) {
        // As if our own answer had been refused, without touching the shared list.
        halted = dropped;
        setState("error");
        errorListeners.forEach(function (cb) {
          try {
            cb(dropped);
          } catch (e) {
            if (root.console) root.console.error(e);
          }
        });
        settleFlushWaiters();
        return;
      }
      if (!running && !halted && pending() === 0) {
        setState("idle");
        settleFlushWaiters();
      }
    }

    function pending() {
      return store.read().length;
    }

    function setState(next) {
      state = next;
      var snapshot = { state: state, pending: pending(), error: halted };
      statusListeners.forEach(function (cb) {
        try {
          cb(snapshot);
        } catch (e) {
          if (root.console) root.console.error(e);
        }
      });
    }

    function settleFlushWaiters() {
      var list = flushWaiters;
      flushWaiters = [];
      list.forEach(function (w) {
        if (halted) w.reject(halted);
        else w.resolve();
      });
    }

    function removeHead(clientId) {
      // Re-read: another tab on the same session may have changed the list.
      store.write(store.read().filter(function (it) { return it.client_id !== clientId; }));
    }

    function sleep(ms) {
      return new Promise(function (resolve) {
        var timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          wake = null;
          resolve();
        }
        wake = done;
      });
    }

    function backoff(attempt, retryAfterMs) {
      var ceiling = Math.min(maxDelay, baseDelay * Math.pow(2, attempt - 1));
      // "Equal jitter": half fixed, half random, so many clients do not retry in step.
      var delay = ceiling / 2 + Math.random() * (ceiling / 2);
      return Math.max(delay, retryAfterMs || 0);
    }

    function post(item) {
      var controller = typeof AbortController === "function" ? new AbortController() : null;
      var timer = controller ? setTimeout(function () { controller.abort(); }, timeoutMs) : null;
      return doFetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(item),
        credentials: "same-origin",
        cache: "no-store",
        signal: controller ? controller.signal : undefined,
      }).then(
        function (res) {
          if (timer) clearTimeout(timer);
          return res.text().then(function (text) {
            var body = null;
            try {
              body = text ? JSON.parse(text) : null;
            } catch (e) {
              body = null; // a proxy's HTML error page
            }
            var retryAfter = parseFloat(res.headers.get("Retry-After") || "");
            return {
              status: res.status,
              body: body,
              retryAfterMs: isFinite(retryAfter) ? Math.min(retryAfter * 1000, 60000) : 0,
            };
          });
        },
        function () {
          if (timer) clearTimeout(timer);
          return { status: 0, body: null, retryAfterMs: 0 };
        }
      );
    }

    function halt(error) {
      // Drop the refused item and everything after it: they rest on the same stale state.
      var dropped = store.read();
      store.write([]);
      halted = error;
      dropped.forEach(function (it) {
        var w = waiters[it.client_id];
        delete waiters[it.client_id];
        if (w) w.reject(error);
      });
      if (root.console) {
        root.console.warn("belief-web: answers refused by the server", error.status, error.code, dropped);
      }
      setState("error");
      errorListeners.forEach(function (cb) {
        try {
          cb(error);
        } catch (e) {
          if (root.console) root.console.error(e);
        }
      });
      settleFlushWaiters();
    }

    function pump() {
      if (running || halted) return;
      running = true;
      var attempt = 0;

      function step() {
        if (halted) return finish();
        var head = store.read()[0];
        if (!head) return finish();
        if (state !== "offline" || attempt === 0) setState("saving");
        inFlight = head.client_id;
        return post(head).then(function (out) {
          inFlight = null;
          if (out.status === 200 || out.status === 201) {
            attempt = 0;
            recordDelivered(head.client_id, out.body || {});
            removeHead(head.client_id);
            var w = waiters[head.client_id];
            delete waiters[head.client_id];
            if (w) w.resolve(out.body || {});
            return step();
          }
          if (isRetryable(out.status)) {
            settleForeign();
            attempt += 1;
            setState(out.status === 0 ? "offline" : "saving");
            return sleep(backoff(attempt, out.retryAfterMs)).then(step);
          }
          halt(new ApiError(out.status, out.body));
          return finish();
        });
      }

      function finish() {
        running = false;
        if (!halted && pending() === 0) {
          setState("idle");
          settleFlushWaiters();
        }
      }

      step();
    }

    function onOnline() {
      if (wake) wake();
    }
    if (root.addEventListener) {
      root.addEventListener("online", onOnline);
      root.addEventListener("storage", function (event) {
        if (event.key === deliveredKey || event.key === STORAGE_PREFIX + token) {
          settleForeign();
          if (wake) wake(); // the head may have changed: do not sleep on a stale item
        }
      });
    }

    return {
      /** Store an answer and send it after those before it; resolves with the server's row. */
      enqueue: function (item) {
        var entry = {
          client_id: item.client_id || uuid4(),
          event: item.event,
          phase: item.phase,
          value: item.value,
          rt_ms: item.rt_ms,
          onset_at: item.onset_at,
        };
        var promise = new Promise(function (resolve, reject) {
          waiters[entry.client_id] = { resolve: resolve, reject: reject };
        });
        var items = store.read();
        items.push(entry);
        store.write(items);
        if (!halted) setState(state === "offline" ? "offline" : "saving");
        pump();
        return promise;
      },
      /** How many answers are stored here and not yet confirmed by the server. */
      pending: pending,
      /** The current state: idle | saving | offline | error. */
      state: function () {
        return state;
      },
      /** cb({state, pending, error}) on every change; returns an unsubscribe function. */
      onStatusChange: function (cb) {
        statusListeners.push(cb);
        return function () {
          statusListeners = statusListeners.filter(function (x) { return x !== cb; });
        };
      },
      /** cb(ApiError) when the server refuses an answer and the queue halts. */
      onError: function (cb) {
        errorListeners.push(cb);
        return function () {
          errorListeners = errorListeners.filter(function (x) { return x !== cb; });
        };
      },
      /** Resolves once every stored answer is confirmed; rejects if the queue halts. */
      flush: function () {
        if (halted) return Promise.reject(halted);
        var promise = new Promise(function (resolve, reject) {
          flushWaiters.push({ resolve: resolve, reject: reject });
        });
        if (!running && pending() === 0) settleFlushWaiters();
        else pump();
        return promise;
      },
      /** Start (or restart after a halt) sending what is stored, e.g. leftovers of a previous page load. */
      resume: function () {
        halted = null;
        setState(pending() ? "saving" : "idle");
        pump();
      },
      /** Send now instead of waiting for the end of a backoff. */
      retryNow: onOnline,
    };
  }

  function safeLocalStorage() {
    try {
      return root.localStorage || null;
    } catch (e) {
      return null; // some browsers throw on access when storage is disabled
    }
  }

  root.BeliefQueue = { create: create, uuid4: uuid4, ApiError: ApiError, isRetryable: isRetryable };
})(typeof window !== "undefined" ? window : globalThis);

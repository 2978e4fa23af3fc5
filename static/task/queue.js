/*
 * The persistent response queue of the participant task.
 *
 * Every answer is written to localStorage before anything is sent, so a reload, a crash or
 * a lost connection loses nothing. Each unsent answer is a key of its own
 * (ANSWER_PREFIX + token + ":" + client_id), written once when the answer is given and
 * removed only once the server has answered it. No tab ever writes back a list it read:
 * two tabs of one session (which share localStorage, and see each other's writes a little
 * late) can each add and remove their own keys, and nothing one tab does can erase an
 * answer of the other.
 *
 * The sender collects the session's keys when it sends, and posts the first one (by the
 * step's position in the session, then by when it was given), one at a time, because the
 * server refuses a step that is not the next one. Any tab may send any tab's answer: each
 * carries a client_id, and a retry of an answer the server already stored returns the
 * stored row (200) and writes nothing, so "sent twice" (by two tabs, or after a lost reply)
 * is harmless and "maybe sent" is always retried. A tab leaves another live tab's answer to
 * that tab for GRACE_MS, so that normally each answer is posted once; after that, or when
 * that tab is gone (closed, reloaded), it sends it itself. When a tab sends another tab's
 * answer it leaves the server's reply under ACK_PREFIX + token + ":" + client_id for the
 * other tab (its E1 needs the base rate in it); that tab removes it.
 *
 * Outcomes of one POST:
 *   200/201                  stored: remove the key, resolve the answer's promise
 *   network error, timeout,
 *   408, 429, 5xx            retry the same answer with exponential backoff
 *   any other 4xx            the page's picture of the session is wrong (409
 *                            already_answered / out_of_order / session_closed) or the
 *                            answer can never be stored (400, 404, 413): that answer is
 *                            removed. If it is this page's, the queue also drops this page's
 *                            later answers (they were built on the same stale picture),
 *                            rejects their promises, halts, and reports the error; the page
 *                            then reloads the session state from the server, which is the
 *                            truth, and calls resume(). If it is another tab's, that tab
 *                            does the same when it sees the reply.
 *
 * onOtherTab(cb) tells the page when another tab of the session has given an answer (its
 * step's position, when that tab's page knew it), so that a page never keeps showing a step
 * answered elsewhere. An unsent queue of the previous format (one list under
 * OLD_QUEUE_PREFIX + token) is moved into keys of their own on load.
 *
 * Exposed as the global BeliefQueue (no build step; loaded by a plain <script>).
 */
(function (root) {
  "use strict";

  var ANSWER_PREFIX = "belief-web:answer:v2:"; // + token + ":" + client_id -> the unsent answer
  var ACK_PREFIX = "belief-web:ack:v2:"; // + token + ":" + client_id -> the server's reply
  var TAB_PREFIX = "belief-web:tab:v2:"; // + token + ":" + tab id -> while that page is open
  var OLD_QUEUE_PREFIX = "belief-web:queue:v1:"; // + token: the single list of earlier versions
  var OLD_DELIVERED_PREFIX = "belief-web:delivered:v1:";
  var GRACE_MS = 2500; // another open tab's answer is left to that tab this long
  var KEPT_MS = 24 * 3600 * 1000; // replies and tab marks nobody collected are removed after this

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

  /** Sending order: the step's position in the session, then when it was given. */
  function compareItems(a, b) {
    if (typeof a.step === "number" && typeof b.step === "number" && a.step !== b.step) {
      return a.step - b.step;
    }
    if (a.at !== b.at) return a.at - b.at;
    if (a.tab !== b.tab) return a.tab < b.tab ? -1 : 1;
    return a.seq - b.seq;
  }

  function parse(raw) {
    try {
      return raw ? JSON.parse(raw) : null;
    } catch (e) {
      return null;
    }
  }

  /**
   * The session's keys in localStorage when it works; this page's memory otherwise (private
   * mode, storage disabled, quota): answers are then kept for this page load only.
   */
  function makeStore(token, storage) {
    var answerPrefix = ANSWER_PREFIX + token + ":";
    var ackPrefix = ACK_PREFIX + token + ":";
    var tabPrefix = TAB_PREFIX + token + ":";
    var memory = {}; // client_id -> item this page could not write to storage
    // Only a Storage that can list its keys: the answers are found by listing them.
    var usable = !!storage && typeof storage.key === "function";

    function keysWith(prefix) {
      if (!usable) return [];
      var found = [];
      try {
        for (var i = 0; i < storage.length; i++) {
          var key = storage.key(i);
          if (key && key.indexOf(prefix) === 0) found.push(key);
        }
      } catch (e) {
        usable = false;
        return [];
      }
      return found;
    }

    function get(key) {
      if (!usable) return null;
      try {
        return storage.getItem(key);
      } catch (e) {
        usable = false;
        return null;
      }
    }

    function set(key, value) {
      if (!usable) return false;
      try {
        storage.setItem(key, value);
        return true;
      } catch (e) {
        return false; // quota: this write only; the caller keeps going in memory
      }
    }

    function remove(key) {
      if (!usable) return;
      try {
        storage.removeItem(key);
      } catch (e) {
        /* nothing to do */
      }
    }

    function list() {
      var byId = {};
      keysWith(answerPrefix).forEach(function (key) {
        var item = parse(get(key));
        if (item && item.client_id === key.slice(answerPrefix.length)) byId[item.client_id] = item;
        else remove(key); // unreadable: never sendable
      });
      Object.keys(memory).forEach(function (id) {
        byId[id] = memory[id];
      });
      return Object.keys(byId)
        .map(function (id) {
          return byId[id];
        })
        .sort(compareItems);
    }

    return {
      prefixes: { answer: answerPrefix, ack: ackPrefix, tab: tabPrefix },
      list: list,
      /** Write a new answer (once; its key is never written again). */
      put: function (item) {
        if (!set(answerPrefix + item.client_id, JSON.stringify(item))) memory[item.client_id] = item;
      },
      has: function (clientId) {
        return !!memory[clientId] || get(answerPrefix + clientId) !== null;
      },
      drop: function (clientId) {
        delete memory[clientId];
        remove(answerPrefix + clientId);
      },
      putAck: function (clientId, reply) {
        set(ackPrefix + clientId, JSON.stringify(reply));
      },
      takeAck: function (clientId) {
        var reply = parse(get(ackPrefix + clientId));
        remove(ackPrefix + clientId);
        return reply;
      },
      tabOpen: function (tabId, open) {
        if (open) set(tabPrefix + tabId, String(Date.now()));
        else remove(tabPrefix + tabId);
      },
      tabIsOpen: function (tabId) {
        return get(tabPrefix + tabId) !== null;
      },
      /** Remove replies and tab marks older than KEPT_MS (their page is long gone). */
      sweep: function (now) {
        keysWith(ackPrefix).forEach(function (key) {
          var reply = parse(get(key));
          if (!reply || !(now - reply.at < KEPT_MS)) remove(key);
        });
        keysWith(tabPrefix).forEach(function (key) {
          if (!(now - Number(get(key)) < KEPT_MS)) remove(key);
        });
      },
      get: get,
      set: set,
      remove: remove,
    };
  }

  /**
   * create({token, apiBase, storage?, fetch?, baseDelayMs?, maxDelayMs?, timeoutMs?, graceMs?})
   */
  function create(options) {
    var token = options.token;
    var url = options.apiBase.replace(/\/$/, "") + "/sessions/" + encodeURIComponent(token) + "/responses";
    var storage = options.storage === undefined ? safeLocalStorage() : options.storage;
    var doFetch = options.fetch || root.fetch.bind(root);
    var baseDelay = options.baseDelayMs || 500;
    var maxDelay = options.maxDelayMs || 10000;
    var timeoutMs = options.timeoutMs || 20000;
    var graceMs = options.graceMs === undefined ? GRACE_MS : options.graceMs;
    var store = makeStore(token, storage);
    var oldQueueKey = OLD_QUEUE_PREFIX + token;
    var tabId = uuid4();
    var seq = 0;

    var waiters = {}; // client_id -> {resolve, reject}, for answers given on this page load
    var firstSeen = {}; // client_id of another tab's answer -> when this page first saw it
    var statusListeners = [];
    var errorListeners = [];
    var otherTabListeners = [];
    var flushWaiters = [];
    var running = false;
    var halted = null; // the ApiError that halted the queue
    var state = "idle"; // idle | saving | offline | error
    var wake = null; // cuts a sleep short (back online, another tab changed the keys)
    var inFlight = null; // the client_id this page is posting now

    function notify(list, value) {
      list.forEach(function (cb) {
        try {
          cb(value);
        } catch (e) {
          if (root.console) root.console.error(e);
        }
      });
    }

    function pending() {
      return store.list().length;
    }

    function setState(next) {
      state = next;
      notify(statusListeners, { state: state, pending: pending(), error: halted });
    }

    function settleFlushWaiters() {
      var list = flushWaiters;
      flushWaiters = [];
      list.forEach(function (w) {
        if (halted) w.reject(halted);
        else w.resolve();
      });
    }

    /**
     * Refused: drop this page's answers still waiting (they rest on the same stale picture
     * of the session), reject their promises, halt and tell the page. Other tabs' answers
     * stay: they are theirs to keep or lose.
     */
    function halt(error) {
      var dropped = [];
      Object.keys(waiters).forEach(function (id) {
        if (id === inFlight) return;
        if (store.has(id)) store.drop(id);
        dropped.push(id);
      });
      halted = error;
      dropped.forEach(function (id) {
        var w = waiters[id];
        delete waiters[id];
        w.reject(error);
      });
      if (root.console) root.console.warn("belief-web: answers refused by the server", error.status, error.code);
      setState("error");
      notify(errorListeners, error);
      settleFlushWaiters();
    }

    /** This page's answers that another tab sent (or had refused) meanwhile. */
    function settleOwn() {
      var refused = null;
      Object.keys(waiters).forEach(function (id) {
        if (id === inFlight || store.has(id)) return;
        var reply = store.takeAck(id);
        var w = waiters[id];
        if (reply && reply.ok) {
          delete waiters[id];
          w.resolve(reply.body || {});
        } else if (!refused) {
          delete waiters[id];
          refused = new ApiError(reply ? reply.status : 409, reply ? reply.body : null, "answered in another window");
          w.reject(refused);
        }
      });
      if (refused && !halted) halt(refused);
      else if (!running && !halted && pending() === 0) {
        setState("idle");
        settleFlushWaiters();
      }
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

    /** What is sent of a stored answer: a task answer names its event, a questionnaire
     *  item its instrument and item. */
    function wireBody(item) {
      var fields = item.instrument !== undefined
        ? { client_id: item.client_id, phase: item.phase, instrument: item.instrument, item: item.item }
        : { client_id: item.client_id, event: item.event, phase: item.phase };
      fields.value = item.value;
      fields.rt_ms = item.rt_ms;
      fields.onset_at = item.onset_at;
      return fields;
    }

    function post(item) {
      var controller = typeof AbortController === "function" ? new AbortController() : null;
      var timer = controller ? setTimeout(function () { controller.abort(); }, timeoutMs) : null;
      return doFetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(wireBody(item)),
        credentials: "same-origin",
        cache: "no-store",
        signal: controller ? controller.signal : undefined,
      }).then(
        function (res) {
          if (timer) clearTimeout(timer);
          return res.text().then(function (text) {
            var body = parse(text); // null for a proxy's HTML error page
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

    /** How long to leave the head to the open tab that gave it (0: send it now). */
    function leaveToOwner(item) {
      if (item.tab === tabId || !graceMs) return 0;
      var now = Date.now();
      if (!firstSeen[item.client_id]) firstSeen[item.client_id] = now;
      if (!store.tabIsOpen(item.tab)) return 0;
      // The earlier of "given" and "first seen here": a clock set back cannot stall it.
      var since = Math.min(item.at, firstSeen[item.client_id]);
      return Math.max(0, since + graceMs - now);
    }

    function pump() {
      if (running || halted) return;
      running = true;
      var attempt = 0;

      function next() {
        if (halted) return finish();
        var head = store.list()[0];
        if (!head) return finish();
        var wait = leaveToOwner(head);
        if (wait > 0) {
          return sleep(wait).then(function () {
            settleOwn();
            return next();
          });
        }
        if (state !== "offline" || attempt === 0) setState("saving");
        inFlight = head.client_id;
        return post(head).then(function (out) {
          inFlight = null;
          var own = head.tab === tabId;
          if (out.status === 200 || out.status === 201) {
            attempt = 0;
            var body = out.body || {};
            if (!own && store.has(head.client_id)) {
              // Its tab needs the reply (the base rate of an E1): written before the key goes.
              store.putAck(head.client_id, { ok: true, status: out.status, body: body, at: Date.now() });
            }
            store.drop(head.client_id);
            var w = waiters[head.client_id];
            delete waiters[head.client_id];
            if (w) w.resolve(body);
            return next();
          }
          if (isRetryable(out.status)) {
            settleOwn();
            if (halted) return finish();
            attempt += 1;
            setState(out.status === 0 ? "offline" : "saving");
            return sleep(backoff(attempt, out.retryAfterMs)).then(next);
          }
          var error = new ApiError(out.status, out.body);
          if (!own) {
            // Another tab's answer, refused: its tab learns why and starts again from the
            // server's state; this page carries on with the rest.
            if (store.has(head.client_id)) {
              store.putAck(head.client_id, { ok: false, status: out.status, body: out.body, at: Date.now() });
            }
            store.drop(head.client_id);
            attempt = 0;
            return next();
          }
          store.drop(head.client_id);
          var mine = waiters[head.client_id];
          delete waiters[head.client_id];
          if (mine) mine.reject(error);
          halt(error);
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

      next();
    }

    /** Move a queue of the previous format (one shared list) into keys of their own. */
    function migrate() {
      var old = parse(store.get(oldQueueKey));
      if (!old) return;
      if (Array.isArray(old)) {
        old.forEach(function (it, i) {
          if (!it || typeof it.client_id !== "string" || store.has(it.client_id)) return;
          store.put({
            client_id: it.client_id,
            event: it.event,
            phase: it.phase,
            value: it.value,
            rt_ms: it.rt_ms,
            onset_at: it.onset_at,
            step: null,
            at: i, // before any answer given since: they were given earlier
            seq: i,
            tab: "v1", // no open tab owns them: sent at once
          });
        });
      }
      store.remove(oldQueueKey);
      store.remove(OLD_DELIVERED_PREFIX + token);
    }

    function onStorage(event) {
      var key = event.key;
      if (key === null) {
        // storage.clear() in another tab: whatever this page gave is gone from storage.
        settleOwn();
      } else if (key === oldQueueKey) {
        if (event.newValue) migrate(); // a page of the previous version, still open
      } else if (key.indexOf(store.prefixes.answer) === 0) {
        if (event.newValue && !event.oldValue) {
          var item = parse(event.newValue);
          if (item && item.tab !== tabId) {
            notify(otherTabListeners, {
              client_id: item.client_id,
              event: item.event,
              phase: item.phase,
              step: typeof item.step === "number" ? item.step : null,
            });
          }
        } else if (!event.newValue) {
          settleOwn();
        }
      } else if (key.indexOf(store.prefixes.ack) !== 0 && key.indexOf(store.prefixes.tab) !== 0) {
        return;
      }
      if (wake) wake(); // the head may have changed: do not sleep on a stale picture
      // Any tab sends what is stored (another tab's answers after GRACE_MS, or at once when
      // that tab is closed), so that an answer never waits for its own tab to come back.
      if (!running && !halted && pending() > 0) pump();
    }

    function onOnline() {
      if (wake) wake();
    }

    migrate();
    store.sweep(Date.now());
    store.tabOpen(tabId, true);
    if (root.addEventListener) {
      root.addEventListener("online", onOnline);
      root.addEventListener("storage", onStorage);
      // Closed or reloaded: another tab may send this page's answers at once.
      root.addEventListener("pagehide", function () {
        store.tabOpen(tabId, false);
      });
      root.addEventListener("pageshow", function (event) {
        if (event.persisted) store.tabOpen(tabId, true);
      });
    }

    return {
      /**
       * Store an answer and send it after those before it; resolves with the server's row.
       * item.step: the step's position in the session (the order of sending), when known.
       */
      enqueue: function (item) {
        var entry = {
          client_id: item.client_id || uuid4(),
          event: item.event,
          phase: item.phase,
          value: item.value,
          rt_ms: item.rt_ms,
          onset_at: item.onset_at,
          step: typeof item.step === "number" ? item.step : null,
          at: Date.now(),
          seq: seq++,
          tab: tabId,
        };
        // A questionnaire item names its instrument and item instead of an event.
        if (item.instrument !== undefined) {
          delete entry.event;
          entry.instrument = item.instrument;
          entry.item = item.item;
        }
        var promise = new Promise(function (resolve, reject) {
          waiters[entry.client_id] = { resolve: resolve, reject: reject };
        });
        store.put(entry);
        if (!halted) setState(state === "offline" ? "offline" : "saving");
        pump();
        return promise;
      },
      /** How many answers of the session (of any tab) are stored and not yet confirmed. */
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
      /** cb(ApiError) when the server refuses an answer of this page and the queue halts. */
      onError: function (cb) {
        errorListeners.push(cb);
        return function () {
          errorListeners = errorListeners.filter(function (x) { return x !== cb; });
        };
      },
      /** cb({client_id, event, phase, step}) when another tab of the session gives an answer. */
      onOtherTab: function (cb) {
        otherTabListeners.push(cb);
        return function () {
          otherTabListeners = otherTabListeners.filter(function (x) { return x !== cb; });
        };
      },
      /** Resolves once every stored answer (any tab's) is confirmed; rejects if the queue halts. */
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

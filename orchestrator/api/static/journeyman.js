/*
 * journeyman.js: page views, track and identify calls from a web page to Journeyman.
 *
 *   <script src="https://journeyman.example.com/js/journeyman.js"></script>
 *   <script>
 *     journeyman.load({ writeKey: "YOUR_WRITE_KEY" });
 *     journeyman.page();
 *     journeyman.track("Product Viewed", { product_id: "serum-30", category: "anti-aging" });
 *     journeyman.identify("customer-42", { email: "mei@example.com" });
 *   </script>
 *
 * Messages follow the Segment spec and go to `${host}/v1/batch` as text/plain JSON with the
 * write key in the body, so a browser sends them cross-origin without a CORS preflight.
 * Every message waits in localStorage until the API has accepted it: a reload, a closed tab or
 * an API that is away for a while loses nothing. Delivery is at least once; the API drops a
 * message whose messageId it already has, so a message sent twice is stored once.
 *
 * Plain ES2017, no dependencies, no build step. Documentation: docs/browser.md.
 */
(() => {
  "use strict";

  const VERSION = "0.1.0";
  const LIBRARY = { name: "journeyman.js", version: VERSION };

  // Small batches on a short timer: a click reaches the API within about a second.
  const FLUSH_DELAY_MS = 500;
  const MAX_BATCH_MESSAGES = 20;
  // Browsers give keepalive requests and beacons 64 KiB in flight at once, all pages together.
  const MAX_BATCH_BYTES = 32 * 1024;
  const KEEPALIVE_LIMIT_BYTES = 60 * 1024;
  const RETRY_BASE_MS = 1000;
  const RETRY_MAX_MS = 60 * 1000;
  // A Retry-After beyond this is taken as this: the page may stay open, and storage keeps the rest.
  const RETRY_AFTER_MAX_MS = 10 * 60 * 1000;
  // Unsent messages kept at most (the oldest go first); bounds storage if the API is gone for good.
  const MAX_STORED_MESSAGES = 500;

  const ANONYMOUS_ID_KEY = "journeyman.anonymousId";
  const USER_ID_KEY = "journeyman.userId";
  const QUEUE_KEY_PREFIX = "journeyman.queue.";
  // Used only where localStorage is unavailable: the one cookie this script may set.
  const ANONYMOUS_ID_COOKIE = "journeyman_anonymous_id";
  const COOKIE_MAX_AGE_SECONDS = 365 * 24 * 60 * 60;

  // The origin this script was loaded from: the API host when load() names none.
  const scriptOrigin = (() => {
    try {
      return new URL(document.currentScript.src).origin;
    } catch (err) {
      return window.location.origin;
    }
  })();

  /* ---------------------------------------------------------------------------------------
   * Storage: localStorage when the browser allows it, else memory (and a cookie for the id).
   * ------------------------------------------------------------------------------------- */

  const localStore = (() => {
    try {
      const probe = "journeyman.probe";
      window.localStorage.setItem(probe, probe);
      window.localStorage.removeItem(probe);
      return window.localStorage;
    } catch (err) {
      return null; // disabled by the visitor, sandboxed iframe, or full
    }
  })();
  const memoryStore = new Map();

  function getItem(key) {
    try {
      if (localStore) return localStore.getItem(key);
    } catch (err) {
      // fall through to memory
    }
    return memoryStore.has(key) ? memoryStore.get(key) : null;
  }

  /** Store a value; false when only memory could keep it. */
  function setItem(key, value) {
    memoryStore.set(key, value);
    try {
      if (localStore) {
        localStore.setItem(key, value);
        return true;
      }
    } catch (err) {
      // quota exceeded: memory keeps it for this page
    }
    return false;
  }

  function removeItem(key) {
    memoryStore.delete(key);
    try {
      if (localStore) localStore.removeItem(key);
    } catch (err) {
      // nothing to do: the key is gone from memory
    }
  }

  function storedKeys(prefix) {
    const keys = new Set();
    try {
      if (localStore) {
        for (let i = 0; i < localStore.length; i++) {
          const key = localStore.key(i);
          if (key && key.indexOf(prefix) === 0) keys.add(key);
        }
      }
    } catch (err) {
      // storage went away: memory still lists what this page stored
    }
    memoryStore.forEach((_, key) => {
      if (key.indexOf(prefix) === 0) keys.add(key);
    });
    return Array.from(keys);
  }

  function readCookie(name) {
    const prefix = `${name}=`;
    for (const part of document.cookie ? document.cookie.split(";") : []) {
      const item = part.trim();
      if (item.indexOf(prefix) === 0) return decodeURIComponent(item.slice(prefix.length));
    }
    return null;
  }

  function writeCookie(name, value) {
    const secure = window.location.protocol === "https:" ? "; Secure" : "";
    document.cookie =
      `${name}=${encodeURIComponent(value)}; path=/; max-age=${COOKIE_MAX_AGE_SECONDS}` +
      `; SameSite=Lax${secure}`;
  }

  /* ---------------------------------------------------------------------------------------
   * Identity: a random anonymous id kept across visits, and the userId given to identify().
   * ------------------------------------------------------------------------------------- */

  function uuid4() {
    const cryptoApi = window.crypto;
    // randomUUID exists only on https pages (and localhost); getRandomValues everywhere.
    if (cryptoApi && typeof cryptoApi.randomUUID === "function") return cryptoApi.randomUUID();
    const bytes = new Uint8Array(16);
    if (cryptoApi && typeof cryptoApi.getRandomValues === "function") {
      cryptoApi.getRandomValues(bytes);
    } else {
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return [
      hex.slice(0, 8),
      hex.slice(8, 12),
      hex.slice(12, 16),
      hex.slice(16, 20),
      hex.slice(20),
    ].join("-");
  }

  function saveAnonymousId(id) {
    if (!setItem(ANONYMOUS_ID_KEY, id)) writeCookie(ANONYMOUS_ID_COOKIE, id);
  }

  function anonymousId() {
    let id = getItem(ANONYMOUS_ID_KEY) || readCookie(ANONYMOUS_ID_COOKIE);
    if (!id) {
      id = uuid4();
      saveAnonymousId(id);
    } else if (getItem(ANONYMOUS_ID_KEY) !== id) {
      saveAnonymousId(id); // found in the cookie: keep it in storage too
    }
    return id;
  }

  function userId() {
    return getItem(USER_ID_KEY);
  }

  /* ---------------------------------------------------------------------------------------
   * Messages: the Segment spec's common fields and the context of the page they come from.
   * ------------------------------------------------------------------------------------- */

  function pageInfo() {
    const location = window.location;
    const canonical = document.querySelector("link[rel='canonical']");
    // The canonical URL, when the page names one, is the one reports should group by.
    const url = ((canonical && canonical.href) || location.href).split("#")[0];
    let path = location.pathname;
    try {
      path = new URL(url).pathname;
    } catch (err) {
      // keep location.pathname
    }
    return {
      path,
      referrer: document.referrer,
      search: location.search,
      title: document.title,
      url,
    };
  }

  /** utm_* parameters of the page's address, named as Segment names them. */
  function campaign() {
    const found = {};
    new URLSearchParams(window.location.search).forEach((value, key) => {
      if (key.indexOf("utm_") !== 0 || key.length === 4) return;
      const name = key.slice(4);
      found[name === "campaign" ? "name" : name] = value;
    });
    return Object.keys(found).length ? found : null;
  }

  function timezone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone;
    } catch (err) {
      return undefined;
    }
  }

  function context() {
    const ctx = {
      library: LIBRARY,
      page: pageInfo(),
      userAgent: navigator.userAgent,
      locale: navigator.language,
      timezone: timezone(),
    };
    const utm = campaign();
    if (utm) ctx.campaign = utm;
    return ctx;
  }

  function isPlainObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function isId(value) {
    return (typeof value === "string" && value.trim() !== "") || typeof value === "number";
  }

  function build(type, fields) {
    const message = Object.assign(
      {
        type,
        messageId: uuid4(),
        anonymousId: anonymousId(),
        timestamp: new Date().toISOString(),
        context: context(),
      },
      fields
    );
    const user = userId();
    if (user) message.userId = user;
    return message;
  }

  /* ---------------------------------------------------------------------------------------
   * The queue: every message under its own storage key (tabs of one site never overwrite each
   * other's), removed once the API answers 2xx, or refuses it for good.
   * ------------------------------------------------------------------------------------- */

  let config = null; // {writeKey, host} once load() is called
  // Calls made before load(): kept in memory only, so nothing is stored or sent before it.
  let beforeLoad = [];
  let pending = []; // messages not yet accepted, oldest first
  const inFlight = new Set(); // messageIds of the batch being sent
  let sending = null; // the promise of the request in flight
  let timer = null;
  let timerDue = 0;
  let retryAt = 0; // no request before this time (backoff or Retry-After)
  let failures = 0; // consecutive failed attempts, for the backoff

  function storageKey(message) {
    return QUEUE_KEY_PREFIX + message.messageId;
  }

  function forget(messages) {
    const gone = new Set(messages.map((m) => m.messageId));
    pending = pending.filter((m) => !gone.has(m.messageId));
    messages.forEach((m) => removeItem(storageKey(m)));
  }

  function enqueue(message) {
    let text;
    try {
      text = JSON.stringify(message);
    } catch (err) {
      console.error("journeyman: properties or traits cannot be sent as JSON:", err);
      return;
    }
    setItem(storageKey(message), text);
    pending.push(message);
    if (pending.length > MAX_STORED_MESSAGES) {
      forget(pending.slice(0, pending.length - MAX_STORED_MESSAGES));
    }
    schedule(pending.length >= MAX_BATCH_MESSAGES ? 0 : FLUSH_DELAY_MS);
  }

  /** Messages a previous page (or another tab) left unsent, oldest first. */
  function restore() {
    const known = new Set(pending.map((m) => m.messageId));
    const found = [];
    for (const key of storedKeys(QUEUE_KEY_PREFIX)) {
      try {
        const message = JSON.parse(getItem(key));
        if (isPlainObject(message) && message.messageId && !known.has(message.messageId)) {
          found.push(message);
        }
      } catch (err) {
        removeItem(key); // unreadable: nothing can ever send it
      }
    }
    found.sort((a, b) => String(a.timestamp).localeCompare(String(b.timestamp)));
    pending = found.concat(pending);
  }

  function schedule(delay) {
    const due = Math.max(Date.now() + delay, retryAt);
    if (timer !== null && timerDue <= due) return; // an earlier flush is already planned
    if (timer !== null) clearTimeout(timer);
    timerDue = due;
    timer = setTimeout(() => {
      timer = null;
      flushNow();
    }, due - Date.now());
  }

  /** The next batch: the oldest messages, within the count and size limits. */
  function nextBatch(from) {
    const batch = [];
    let bytes = 0;
    for (const message of from) {
      const size = JSON.stringify(message).length + 1;
      if (batch.length && (batch.length >= MAX_BATCH_MESSAGES || bytes + size > MAX_BATCH_BYTES)) {
        break;
      }
      batch.push(message);
      bytes += size;
    }
    return batch;
  }

  function body(batch) {
    const sentAt = new Date().toISOString();
    return JSON.stringify({
      batch: batch.map((m) => Object.assign({}, m, { sentAt })),
      writeKey: config.writeKey,
      sentAt,
    });
  }

  /** Milliseconds a Retry-After header asks for (seconds or an HTTP date), or null. */
  function retryAfterMs(header) {
    if (!header) return null;
    const seconds = Number(header);
    const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(header) - Date.now();
    if (!Number.isFinite(ms)) return null;
    return Math.min(Math.max(ms, 0), RETRY_AFTER_MAX_MS);
  }

  function backOff(askedMs) {
    failures += 1;
    // Doubling waits, each cut by up to half at random, so that the many pages waiting out an
    // outage do not all come back at the same moment.
    const exponential = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (failures - 1));
    // A Retry-After of 0 must not turn into a tight loop: a second at least.
    const wait =
      askedMs !== null ? Math.max(askedMs, RETRY_BASE_MS) : exponential * (0.5 + Math.random() / 2);
    retryAt = Date.now() + wait;
    schedule(0);
  }

  function retryable(status) {
    return status === 408 || status === 429 || status >= 500;
  }

  async function describe(response) {
    try {
      const answer = await response.json();
      return answer.message || JSON.stringify(answer);
    } catch (err) {
      return response.statusText;
    }
  }

  /** The API accepts a batch's valid messages and lists the others: they will not improve. */
  async function reportRejected(response) {
    try {
      const answer = await response.json();
      for (const item of answer.rejected || []) {
        console.warn(`journeyman: the API refused message ${item.messageId}: ${item.message}`);
      }
    } catch (err) {
      // an answer without a JSON body: nothing was listed
    }
  }

  /** Send one batch; resolves true when the API accepted it. */
  async function sendBatch(batch) {
    const payload = body(batch);
    batch.forEach((m) => inFlight.add(m.messageId));
    try {
      let response;
      try {
        response = await fetch(`${config.host}/v1/batch`, {
          method: "POST",
          // text/plain keeps this a "simple" request: no preflight round trip.
          headers: { "Content-Type": "text/plain" },
          body: payload,
          credentials: "omit",
          mode: "cors",
          // Lets the request finish if the visitor leaves the page meanwhile.
          keepalive: payload.length <= KEEPALIVE_LIMIT_BYTES,
        });
      } catch (err) {
        backOff(null); // offline, API down, DNS, or a CORS refusal
        return false;
      }
      if (response.ok) {
        failures = 0;
        retryAt = 0;
        forget(batch);
        await reportRejected(response);
        return true;
      }
      if (retryable(response.status)) {
        backOff(retryAfterMs(response.headers.get("Retry-After")));
        return false;
      }
      // Any other 4xx will not change by asking again: say why, and drop the batch.
      failures = 0;
      console.warn(
        `journeyman: the API refused ${batch.length} message(s) ` +
          `(${response.status}): ${await describe(response)}`
      );
      forget(batch);
      return false;
    } finally {
      batch.forEach((m) => inFlight.delete(m.messageId));
    }
  }

  /** Send what is pending, batch after batch, until done, refused or backing off. */
  function flushNow() {
    if (sending) return sending;
    sending = (async () => {
      try {
        while (config && pending.length && Date.now() >= retryAt) {
          const batch = nextBatch(pending);
          const accepted = await sendBatch(batch);
          if (!accepted && retryAt > Date.now()) break; // backOff() planned the next try
        }
      } finally {
        sending = null;
      }
      if (config && pending.length) schedule(0);
      return pending.length === 0 && beforeLoad.length === 0;
    })();
    return sending;
  }

  /**
   * The page is going away (or hidden, which on phones may be the last chance): hand what is
   * left to the browser as beacons. They stay in storage, so if a beacon is lost the next page
   * sends them again; the API keeps one copy of each messageId.
   */
  function sendBeacons() {
    if (!config || typeof navigator.sendBeacon !== "function") return;
    let rest = pending.filter((m) => !inFlight.has(m.messageId));
    while (rest.length) {
      const batch = nextBatch(rest);
      const blob = new Blob([body(batch)], { type: "text/plain" });
      let queued = false;
      try {
        queued = navigator.sendBeacon(`${config.host}/v1/batch`, blob);
      } catch (err) {
        queued = false;
      }
      if (!queued) return; // over the browser's budget: storage keeps them for the next page
      const beaconed = new Set(batch.map((m) => m.messageId));
      pending = pending.filter((m) => !beaconed.has(m.messageId));
      rest = rest.slice(batch.length);
    }
  }

  window.addEventListener("pagehide", sendBeacons);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") sendBeacons();
  });
  window.addEventListener("online", () => {
    retryAt = 0;
    schedule(0);
  });

  /* ---------------------------------------------------------------------------------------
   * The public API.
   * ------------------------------------------------------------------------------------- */

  function later(method, args) {
    beforeLoad.push([method, args]);
    return journeyman;
  }

  const journeyman = {
    VERSION,

    /**
     * Start sending. writeKey: a write key of the Journeyman API (public, like Segment's).
     * host: the API's address; by default the origin this script was loaded from.
     */
    load(options) {
      const opts = options || {};
      if (typeof opts.writeKey !== "string" || opts.writeKey.trim() === "") {
        console.error("journeyman.load: a writeKey is required");
        return journeyman;
      }
      config = {
        writeKey: opts.writeKey,
        host: String(opts.host || scriptOrigin).replace(/\/+$/, ""),
      };
      restore();
      const calls = beforeLoad;
      beforeLoad = [];
      calls.forEach(([method, args]) => journeyman[method](...args));
      schedule(0);
      return journeyman;
    },

    /** A page view: page(), page(name), page(properties) or page(name, properties). */
    page(name, properties) {
      if (!config) return later("page", [name, properties]);
      if (isPlainObject(name)) return journeyman.page(undefined, name);
      if (name !== undefined && name !== null && typeof name !== "string") {
        console.error("journeyman.page: the name must be a string");
        return journeyman;
      }
      if (properties !== undefined && !isPlainObject(properties)) {
        console.error("journeyman.page: properties must be an object");
        return journeyman;
      }
      // As in Segment: the page's details are properties too, and the caller's win.
      const fields = { properties: Object.assign(pageInfo(), properties || {}) };
      if (name) {
        fields.name = name;
        fields.properties.name = name;
      }
      enqueue(build("page", fields));
      return journeyman;
    },

    /** Something the visitor did: track("Product Added", {product_id: "serum-30"}). */
    track(event, properties) {
      if (!config) return later("track", [event, properties]);
      if (typeof event !== "string" || event.trim() === "") {
        console.error("journeyman.track: the event name must be a non-empty string");
        return journeyman;
      }
      if (properties !== undefined && !isPlainObject(properties)) {
        console.error("journeyman.track: properties must be an object");
        return journeyman;
      }
      enqueue(build("track", { event, properties: properties || {} }));
      return journeyman;
    },

    /**
     * Who the visitor is: identify(userId, traits), or identify(traits) for the known user.
     * The userId is kept, so every later message carries it beside the anonymous id.
     */
    identify(id, traits) {
      if (!config) return later("identify", [id, traits]);
      if (isPlainObject(id)) return journeyman.identify(userId(), id);
      if (traits !== undefined && !isPlainObject(traits)) {
        console.error("journeyman.identify: traits must be an object");
        return journeyman;
      }
      if (id !== undefined && id !== null) {
        if (!isId(id)) {
          console.error("journeyman.identify: the userId must be a non-empty string");
          return journeyman;
        }
        setItem(USER_ID_KEY, String(id));
      }
      enqueue(build("identify", { traits: traits || {} }));
      return journeyman;
    },

    /** Forget the visitor (at sign-out): no userId, and a new anonymous id from now on. */
    reset() {
      if (!config) return later("reset", []);
      removeItem(USER_ID_KEY);
      saveAnonymousId(uuid4());
      return journeyman;
    },

    /**
     * Send everything pending now; resolves true when nothing is left to send, false while the
     * API is away or has asked to wait (the retries go on by themselves).
     */
    flush() {
      return flushNow();
    },

    /** The anonymous id this browser sends (null before load() on a first visit). */
    anonymousId() {
      return config ? anonymousId() : getItem(ANONYMOUS_ID_KEY) || readCookie(ANONYMOUS_ID_COOKIE);
    },

    /** The userId given to identify(), or null. */
    userId,
  };

  // Calls made before the script arrived (the asynchronous loader in docs/browser.md queues
  // them as [method, ...arguments]) run now, in order.
  const early = window.journeyman;
  window.journeyman = journeyman;
  if (Array.isArray(early)) {
    for (const [method, ...args] of early) {
      if (typeof journeyman[method] === "function") journeyman[method](...args);
    }
  }
})();

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
 * journeyman.inApp lists the visitor's in-app messages (`${host}/v1/in-app`, the same kind of
 * text/plain POST), marks them read or acknowledged, polls while something listens, and can
 * draw a small inbox into an element:
 *
 *     journeyman.inApp.render(document.getElementById("inbox"));
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
  // A send that gets no answer in this long is abandoned and retried with backoff.
  const REQUEST_TIMEOUT_MS = 15000;
  const RETRY_BASE_MS = 1000;
  const RETRY_MAX_MS = 60 * 1000;
  // A Retry-After beyond this is taken as this: the page may stay open, and storage keeps the rest.
  const RETRY_AFTER_MAX_MS = 10 * 60 * 1000;
  // Unsent messages kept at most (the oldest go first); bounds storage if the API is gone for good.
  const MAX_STORED_MESSAGES = 500;

  // In-app messages: a listing every 30 s while something listens and the tab is visible.
  const IN_APP_POLL_SECONDS = 30;
  const IN_APP_MIN_POLL_SECONDS = 1;
  const IN_APP_LIMIT = 20; // the API's default page
  const IN_APP_MAX_LIMIT = 100;
  // How long in-app requests wait for an identify() on its way (it normally takes one batch).
  const IN_APP_IDENTIFY_WAIT_MS = 5000;

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
      // A connection that hangs (a half-dead proxy, an API restarting behind a load
      // balancer) would hold the queue forever: give up after a while and retry.
      const abort = typeof AbortController === "function" ? new AbortController() : null;
      const timer = abort ? setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS) : null;
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
          signal: abort ? abort.signal : undefined,
        });
      } catch (err) {
        backOff(null); // offline, API down, DNS, a CORS refusal, or no answer in time
        return false;
      } finally {
        if (timer !== null) clearTimeout(timer);
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
   * In-app messages: the visitor's inbox, listed for the id the events carry (the userId once
   * identify() named the visitor, else the anonymous id), polled while something listens.
   * ------------------------------------------------------------------------------------- */

  // Resolved by load(): in-app requests made before it wait, as events do, until consent.
  let markLoaded;
  const loaded = new Promise((resolve) => {
    markLoaded = resolve;
  });

  const inApp = {
    pollSeconds: IN_APP_POLL_SECONDS, // 0: no polling, only listings asked for
    limit: IN_APP_LIMIT,
    token: null, // a customer token for the id the page sends (docs/in-app.md)
    listeners: new Set(),
    messages: [], // the last listing the listeners saw
    shown: "[]", // its JSON: a listing that is the same again calls no one
    known: false, // whether `messages` is a listing of the current visitor (not a placeholder)
    // Bumped when the visitor changes: an answer asked as the previous visitor is dropped.
    epoch: 0,
    asked: 0, // listings asked so far, so that a slow answer never replaces a newer one
    applied: 0,
    listedAt: 0, // when the last listing was asked (Date.now())
    timer: null,
    // A refusal that asking again will not change (revoked key, missing token): no more polls
    // until the visitor, the token or the page changes.
    stopped: false,
    identifyId: null, // the messageId of the last identify(), which in-app requests wait for
  };

  /** Read the `inApp` options of load(); a bad value is logged and the default kept. */
  function configureInApp(options) {
    if (options === undefined || options === null) return;
    if (!isPlainObject(options)) {
      console.error("journeyman.load: inApp must be an object");
      return;
    }
    const { pollSeconds, limit, token } = options;
    if (pollSeconds !== undefined) {
      if (pollSeconds === 0 || pollSeconds === false) inApp.pollSeconds = 0;
      else if (Number.isFinite(pollSeconds) && pollSeconds >= IN_APP_MIN_POLL_SECONDS) {
        inApp.pollSeconds = pollSeconds;
      } else {
        console.error(
          `journeyman.load: inApp.pollSeconds must be 0 (no polling) or at least ` +
            `${IN_APP_MIN_POLL_SECONDS}; polling every ${inApp.pollSeconds} s`
        );
      }
    }
    if (limit !== undefined) {
      if (validLimit(limit)) inApp.limit = limit;
      else console.error(`journeyman.load: inApp.limit must be from 1 to ${IN_APP_MAX_LIMIT}`);
    }
    if (token !== undefined) setInAppToken(token);
  }

  function validLimit(limit) {
    return Number.isInteger(limit) && limit >= 1 && limit <= IN_APP_MAX_LIMIT;
  }

  function setInAppToken(token) {
    if (token !== null && (typeof token !== "string" || token.trim() === "")) {
      console.error("journeyman.inApp: a token must be a non-empty string (or null for none)");
      return false;
    }
    inApp.token = token;
    return true;
  }

  /** Who is asking: the write key, the visitor's ids, and the customer token if there is one. */
  function inAppCredentials() {
    const who = { writeKey: config.writeKey, anonymousId: anonymousId() };
    const user = userId();
    if (user) who.userId = user; // the API lists the userId's messages when both are given
    if (inApp.token) who.token = inApp.token;
    return who;
  }

  /** POST text/plain JSON to the in-app API (no preflight); resolves the answer's JSON. */
  async function inAppPost(path, payload) {
    let response;
    try {
      response = await fetch(`${config.host}/v1/in-app${path}`, {
        method: "POST",
        headers: { "Content-Type": "text/plain" },
        body: JSON.stringify(payload),
        credentials: "omit",
        mode: "cors",
      });
    } catch (err) {
      const error = new Error(`journeyman.inApp: the API cannot be reached (${err.message})`);
      error.status = 0;
      throw error;
    }
    if (!response.ok) {
      const error = new Error(
        `journeyman.inApp: the API refused ${path ? path.slice(1) : "the listing"} ` +
          `(${response.status}): ` +
          (await describe(response))
      );
      error.status = response.status;
      error.retryAfterMs = retryAfterMs(response.headers.get("Retry-After"));
      throw error;
    }
    return response.json();
  }

  function copy(messages) {
    return JSON.parse(JSON.stringify(messages));
  }

  /**
   * Keep the visitor's messages and tell the listeners when they changed. fromApi: a listing
   * the API answered, which a listener that has not been called yet gets even if unchanged.
   */
  function showInApp(messages, fromApi) {
    const shown = JSON.stringify(messages);
    const changed = shown !== inApp.shown;
    inApp.shown = shown;
    inApp.messages = messages;
    inApp.listeners.forEach((listener) => {
      if (changed || (fromApi && !listener.called)) callListener(listener, copy(messages));
    });
  }

  function callListener(listener, messages) {
    listener.called = true;
    try {
      listener(messages);
    } catch (err) {
      console.error("journeyman.inApp: an onMessages callback failed:", err);
    }
  }

  /** The visitor changed (reset, or identify() as someone else): forget the last one's list. */
  function newInAppVisitor() {
    inApp.epoch += 1;
    inApp.stopped = false;
    inApp.known = false;
    // At once, not at the next answer: on a shared computer the next person must not see it.
    showInApp([], false);
  }

  function clearInAppPoll() {
    if (inApp.timer !== null) clearTimeout(inApp.timer);
    inApp.timer = null;
  }

  /** Plan the next poll, unless nothing listens, polling is off or the tab is hidden. */
  function scheduleInAppPoll(delayMs) {
    clearInAppPoll();
    if (!config || !inApp.listeners.size || inApp.stopped || !inApp.pollSeconds) return;
    if (document.visibilityState === "hidden") return; // visibilitychange resumes it
    inApp.timer = setTimeout(() => {
      inApp.timer = null;
      refreshInApp();
    }, Math.max(delayMs, 0));
  }

  function inAppRetryable(status) {
    return status === 0 || retryable(status);
  }

  /**
   * Wait, a little, for the last identify() to reach the API. It joins the anonymous visitor
   * to the user, and with them the messages left before sign-in: asked sooner, the API would
   * not list them for the user, nor let the user read them.
   */
  async function identifySent() {
    const id = inApp.identifyId;
    const deadline = Date.now() + IN_APP_IDENTIFY_WAIT_MS;
    // Not a flush of its own: the identify goes in its usual batch, with the calls made right
    // after it, so that the API stores them in the order they were made.
    while (id && pending.some((m) => m.messageId === id) && Date.now() < deadline) {
      if (retryAt > Date.now()) return; // the API is away: ask what it can tell anyway
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** List the visitor's messages for the listeners now; the next poll is planned from here. */
  async function refreshInApp() {
    if (!config || !inApp.listeners.size || inApp.stopped) return;
    clearInAppPoll();
    await identifySent();
    if (!inApp.listeners.size || inApp.stopped) return;
    const epoch = inApp.epoch;
    const ticket = ++inApp.asked;
    const pollMs = inApp.pollSeconds * 1000;
    let nextMs = pollMs;
    inApp.listedAt = Date.now();
    try {
      const answer = await inAppPost("", Object.assign(inAppCredentials(), { limit: inApp.limit }));
      if (epoch === inApp.epoch && ticket > inApp.applied) {
        inApp.applied = ticket;
        inApp.known = true;
        showInApp(answer.messages, true);
      }
    } catch (err) {
      if (epoch !== inApp.epoch) return; // asked for a visitor who is gone
      if (!inAppRetryable(err.status)) {
        // Asking every 30 s would only repeat the refusal: say it once and stop.
        inApp.stopped = true;
        console.warn(`${err.message}; in-app messages are not polled until this changes`);
        return;
      }
      // Away, overloaded or asking to wait: the next poll tries again, as late as asked.
      if (err.retryAfterMs !== null && err.retryAfterMs !== undefined) {
        nextMs = Math.max(pollMs, err.retryAfterMs);
      }
    }
    // Another listing may have started meanwhile; the latest one plans the next poll.
    if (ticket === inApp.asked) scheduleInAppPoll(nextMs);
  }

  /** Mark one message read or acknowledged; the listeners see the change at once. */
  async function inAppAct(id, action) {
    if (typeof id !== "string" || id.trim() === "") {
      throw new TypeError(`journeyman.inApp.${action}: the message id must be a non-empty string`);
    }
    await loaded;
    await identifySent();
    const epoch = inApp.epoch;
    const path = `/${encodeURIComponent(id)}/${action}`;
    const message = await inAppPost(path, inAppCredentials());
    if (epoch === inApp.epoch && inApp.known) {
      // An acknowledged message is no longer pending; a read one stays, with its read_at.
      const messages =
        action === "ack"
          ? inApp.messages.filter((m) => m.id !== message.id)
          : inApp.messages.map((m) => (m.id === message.id ? message : m));
      showInApp(messages, false);
    }
    return message;
  }

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") {
      clearInAppPoll(); // a hidden tab does not poll
    } else if (inApp.pollSeconds && !inApp.timer) {
      // Back on screen: list now if a poll fell due while hidden, else when it falls due.
      scheduleInAppPoll(inApp.listedAt + inApp.pollSeconds * 1000 - Date.now());
    }
  });

  /* ---------------------------------------------------------------------------------------
   * The default inbox: title, body and a dismiss button per message, drawn with textContent
   * only (a message's text is never parsed as HTML), styled by the page through its classes.
   * ------------------------------------------------------------------------------------- */

  const INBOX_TEXT = { label: "Messages", empty: "No messages", dismiss: "Dismiss", unread: "New" };

  function makeNode(tag, className, text) {
    const node = document.createElement(tag);
    node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderInbox(target, options) {
    if (!target || typeof target.appendChild !== "function") {
      console.error("journeyman.inApp.render: give it an element to draw the inbox into");
      return () => {};
    }
    const opts = isPlainObject(options) ? options : {};
    const text = Object.assign({}, INBOX_TEXT);
    Object.keys(INBOX_TEXT).forEach((key) => {
      if (typeof opts[key] === "string") text[key] = opts[key];
    });
    const markRead = opts.markRead !== false;

    const inbox = makeNode("section", "journeyman-inbox");
    inbox.setAttribute("aria-label", text.label);
    inbox.setAttribute("aria-busy", "true"); // until the first listing arrives
    inbox.tabIndex = -1; // where focus goes when the last message is dismissed
    const list = makeNode("ul", "journeyman-inbox-list");
    list.setAttribute("aria-live", "polite"); // new messages are announced
    const empty = makeNode("p", "journeyman-inbox-empty", text.empty);
    empty.hidden = true;
    inbox.appendChild(list);
    inbox.appendChild(empty);
    target.textContent = "";
    target.appendChild(inbox);

    const items = new Map(); // message id -> its <li>
    const current = new Map(); // message id -> the message as last drawn
    const onScreen = new Set(); // ids of messages at least half visible
    const reading = new Set(); // ids whose read is under way

    // "Read" means the visitor could see it: on screen in a visible tab.
    function readWhatIsShown() {
      if (!markRead || document.visibilityState === "hidden") return;
      onScreen.forEach((id) => {
        const message = current.get(id);
        if (!message || message.read_at || reading.has(id)) return;
        reading.add(id);
        journeyman.inApp
          .read(id)
          .catch((err) => console.warn(err.message))
          .then(() => reading.delete(id));
      });
    }

    const observer =
      typeof window.IntersectionObserver === "function"
        ? new IntersectionObserver(
            (entries) => {
              entries.forEach((entry) => {
                const id = entry.target.dataset.id;
                if (entry.isIntersecting) onScreen.add(id);
                else onScreen.delete(id);
              });
              readWhatIsShown();
            },
            { threshold: 0.5 }
          )
        : null;
    document.addEventListener("visibilitychange", readWhatIsShown);

    function dismiss(item, button) {
      const id = item.dataset.id;
      button.disabled = true;
      // Focus must not fall to the top of the page when the item goes.
      const next = item.nextElementSibling || item.previousElementSibling;
      const hadFocus = item.contains(document.activeElement);
      journeyman.inApp.ack(id).then(
        () => {
          if (!hadFocus) return;
          const nextButton = next && next.isConnected && next.querySelector("button");
          (nextButton || inbox).focus();
        },
        (err) => {
          button.disabled = false;
          console.warn(err.message);
        }
      );
    }

    function newItem(message) {
      const item = makeNode("li", "journeyman-message");
      item.dataset.id = message.id;
      const title = makeNode("p", "journeyman-message-title");
      const badge = makeNode("span", "journeyman-message-unread", text.unread);
      const titleText = makeNode("span", "journeyman-message-title-text");
      title.appendChild(badge);
      title.appendChild(document.createTextNode(" "));
      title.appendChild(titleText);
      const bodyText = makeNode("p", "journeyman-message-body");
      const button = makeNode("button", "journeyman-message-dismiss", text.dismiss);
      button.type = "button";
      button.addEventListener("click", () => dismiss(item, button));
      item.appendChild(title);
      item.appendChild(bodyText);
      item.appendChild(button);
      items.set(message.id, item);
      if (observer) observer.observe(item);
      else onScreen.add(message.id); // no way to tell: drawn counts as seen
      return item;
    }

    function fill(item, message) {
      const read = Boolean(message.read_at);
      item.dataset.read = String(read);
      item.querySelector(".journeyman-message-unread").hidden = read;
      item.querySelector(".journeyman-message-title-text").textContent = String(message.title);
      item.querySelector(".journeyman-message-body").textContent = String(message.body);
      // The button's name says which message it dismisses, for screen readers.
      const button = item.querySelector(".journeyman-message-dismiss");
      button.setAttribute("aria-label", `${text.dismiss}: ${message.title}`);
    }

    function draw(messages) {
      inbox.removeAttribute("aria-busy");
      const wanted = new Set(messages.map((m) => m.id));
      items.forEach((item, id) => {
        if (wanted.has(id)) return;
        if (observer) observer.unobserve(item);
        item.remove();
        items.delete(id);
        current.delete(id);
        onScreen.delete(id);
      });
      // Nodes already in place stay put: moving one would take the focus off its button.
      let next = list.firstElementChild;
      messages.forEach((message) => {
        const item = items.get(message.id) || newItem(message);
        fill(item, message);
        current.set(message.id, message);
        if (item === next) next = next.nextElementSibling;
        else list.insertBefore(item, next);
      });
      empty.hidden = messages.length > 0;
      readWhatIsShown();
    }

    const unsubscribe = journeyman.inApp.onMessages(draw);
    return function stop() {
      unsubscribe();
      if (observer) observer.disconnect();
      document.removeEventListener("visibilitychange", readWhatIsShown);
      inbox.remove();
    };
  }

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
     * inApp: {pollSeconds, limit, token} for in-app messages (see journeyman.inApp).
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
      configureInApp(opts.inApp);
      restore();
      const calls = beforeLoad;
      beforeLoad = [];
      calls.forEach(([method, args]) => journeyman[method](...args));
      schedule(0);
      markLoaded();
      refreshInApp(); // for listeners that subscribed before load()
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
      const previous = userId();
      if (id !== undefined && id !== null) {
        if (!isId(id)) {
          console.error("journeyman.identify: the userId must be a non-empty string");
          return journeyman;
        }
        setItem(USER_ID_KEY, String(id));
      }
      const message = build("identify", { traits: traits || {} });
      enqueue(message);
      if (id !== undefined && id !== null) {
        inApp.identifyId = message.messageId;
        // Someone else than the signed-in user: their messages go at once. An anonymous
        // visitor who signs in keeps theirs (the API joins them to the user).
        if (previous && previous !== String(id)) newInAppVisitor();
        refreshInApp(); // once the identify has reached the API
      }
      return journeyman;
    },

    /** Forget the visitor (at sign-out): no userId, and a new anonymous id from now on. */
    reset() {
      if (!config) return later("reset", []);
      removeItem(USER_ID_KEY);
      saveAnonymousId(uuid4());
      // A customer token names the person who signed out.
      inApp.token = null;
      newInAppVisitor();
      refreshInApp();
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

    /**
     * In-app messages of the visitor (the userId's once identify() has named them, else the
     * anonymous id's). Requests made before load() wait for it. docs/browser.md, docs/in-app.md.
     */
    inApp: {
      /** A promise of the visitor's pending messages, unread first, newest first. */
      async list(options) {
        const opts = options || {};
        const limit = opts.limit === undefined ? inApp.limit : opts.limit;
        if (!validLimit(limit)) {
          throw new RangeError(
            `journeyman.inApp.list: limit must be an integer from 1 to ${IN_APP_MAX_LIMIT}`
          );
        }
        await loaded;
        await identifySent();
        const answer = await inAppPost("", Object.assign(inAppCredentials(), { limit }));
        return answer.messages;
      },

      /** The visitor saw the message: a promise of the message as it is now. */
      read(id) {
        return inAppAct(id, "read");
      },

      /** The visitor dismissed or acted on the message: it is no longer listed. */
      ack(id) {
        return inAppAct(id, "ack");
      },

      /**
       * Call callback(messages) with the visitor's messages, and again whenever they change
       * (a poll, read, ack, identify, reset). While any callback listens, the messages are
       * polled every pollSeconds in a visible tab. Returns a function that stops listening.
       */
      onMessages(callback) {
        if (typeof callback !== "function") {
          console.error("journeyman.inApp.onMessages: the callback must be a function");
          return () => {};
        }
        // A wrapper, so that the same function given twice is two listeners, stopped apart.
        const listener = (messages) => callback(messages);
        inApp.listeners.add(listener);
        if (inApp.known) {
          const messages = copy(inApp.messages);
          Promise.resolve().then(() => {
            if (inApp.listeners.has(listener)) callListener(listener, messages);
          });
        }
        if (inApp.listeners.size === 1) refreshInApp();
        return function stop() {
          inApp.listeners.delete(listener);
          if (!inApp.listeners.size) {
            clearInAppPoll();
            inApp.known = false; // unpolled, the listing goes stale: the next listener re-lists
          }
        };
      },

      /**
       * Draw an inbox into element, kept up to date: each message's title, body and a dismiss
       * button (which acknowledges it); a message on screen is marked read. options: label,
       * empty, dismiss, unread (texts), markRead (false: leave reads to the page). Returns a
       * function that removes the inbox.
       */
      render(element, options) {
        return renderInbox(element, options);
      },

      /** Use a new customer token (one for the id the page now sends), or null for none. */
      setToken(token) {
        if (setInAppToken(token)) {
          inApp.stopped = false;
          refreshInApp();
        }
        return journeyman;
      },
    },
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

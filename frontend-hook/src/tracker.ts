import type { ActivityEvent, ErrorReport, EventData, Tracker, TrackerOptions } from './types.js'

/** Time on a page must exceed this (ms) for a `page_exit` to be recorded. */
export const MIN_EXIT_MS = 1000
/**
 * Longest body (UTF-16 units) we hand to sendBeacon / keepalive fetch: their quota, and the
 * backend's body limit, is 64 KiB, and a unit takes at most 3 bytes of UTF-8.
 */
const MAX_BODY = 20000
/** Events kept in memory at most; the oldest are dropped past this. */
const MAX_QUEUE = 500
/** Distinct errors reported per page load at most. */
const MAX_ERRORS = 20
const TYPE_RE = /^[a-z][a-z0-9_]{0,63}$/

/** Run `f`, swallowing anything it throws: tracking must never break the app. */
const safe = <A extends unknown[]>(f: (...a: A) => void) => (...a: A) => {
  try {
    f(...a)
  } catch {
    /* silent by design */
  }
}

/**
 * A time-ordered (version 7) uuid: 48 bits of Unix milliseconds, then random bits from
 * `crypto.getRandomValues` (every browser, also on plain http). Ids made one after another
 * append to the right edge of the server's event_id index, whose pages then stay ~90 % full
 * instead of ~70 % for random v4 ids (bench/README.md, bytes per event); the millisecond is
 * the event's own `occurred_at`, so the id tells the server nothing new.
 */
export function uuid(): string {
  // 12 hex digits of milliseconds (a leading 0 until the year 2527), the version digit 7,
  // then random digits; each 8 becomes 8-b (the variant bits), each 0 any hex digit
  return ('0' + Date.now().toString(16)).replace(/^.{8}/, '$&-') +
    '-7000-8000-000000000000'.replace(/[08]/g, (d: any) =>
      (d ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (d / 4)))).toString(16),
    )
}

/** Milliseconds to wait from a `Retry-After` header (seconds or HTTP date); 5 s when absent, at most 1 h. */
export function retryDelay(h: string | null | undefined): number {
  return h ? Math.min(Math.max(+h * 1000 || Date.parse(h) - Date.now() || 0, 0), 3600e3) : 5000
}

/** Drop query string and fragment: they often carry tokens, e-mails or search terms. */
const bare = (u: string) => u.split(/[?#]/)[0]

/** Pass `v` through the user's hook `f`; a hook that throws drops the item. */
const through = <T>(f: ((v: T) => T | null | undefined | false) | undefined, v: T) => {
  try {
    return f ? f(v) : v
  } catch {}
}

/**
 * Create a tracker: an in-memory queue (no cookies, no storage) flushed in
 * batches to `{endpoint}/activity/batch`, by sendBeacon when the page hides.
 */
export function createTracker(o: TrackerOptions = {}): Tracker {
  const base = (o.endpoint ?? '/api/analytics').replace(/\/+$/, '')
  const every = o.flushInterval ?? 5000
  const max = Math.min(Math.max(o.maxBatch || 20, 1), 100)
  const w = globalThis.window as Window | undefined // undefined during server rendering
  const nav: any = w?.navigator
  let off =
    !w ||
    (o.respectDoNotTrack !== false &&
      (nav?.doNotTrack == '1' || !!nav?.globalPrivacyControl))
  let queue: ActivityEvent[] = []
  let timer: ReturnType<typeof setTimeout> | undefined
  let retryAt = 0
  let fails = 0
  let token: string | null | undefined
  let path: string | undefined
  let start = 0
  const seen = new Set<string>()

  const arm = (ms: number) => {
    clearTimeout(timer)
    timer = setTimeout(() => {
      timer = undefined
      t.flush()
    }, ms)
  }

  const refreshToken = () =>
    Promise.resolve()
      .then(o.getToken)
      .then((v) => (token = v), () => (token = null))

  /** Put a batch back at the head of the queue; try again after `ms` (default: capped exponential backoff). */
  const later = (events: ActivityEvent[], ms = Math.min(1000 * 2 ** ++fails, 60e3)) => {
    queue = events.concat(queue).slice(0, MAX_QUEUE)
    retryAt = Date.now() + ms
    arm(ms)
  }

  /**
   * Send one body. When the page hides and there is no token: sendBeacon, or fetch
   * if the beacon is missing, refused or throws. Otherwise fetch (keepalive, no cookies,
   * the bearer token when there is one). Failed batches (`events`) are retried.
   */
  const send = (url: string, body: string, hide?: boolean, events?: ActivityEvent[]) => {
    if (hide && !token)
      try {
        if (nav.sendBeacon(url, body)) return
      } catch {}
    ;(hide ? Promise.resolve() : refreshToken())
      .then(() =>
        fetch(url, {
          method: 'POST',
          body,
          keepalive: true,
          credentials: 'omit',
          headers: token ? { Authorization: `Bearer ${token}` } : {},
        }),
      )
      .then(
        (r) => {
          if (!events) return
          if (r.status == 503 || r.status == 429) later(events, retryDelay(r.headers.get('Retry-After')))
          else if (r.status >= 500) later(events)
          else fails = 0 // done; a 4xx means bad data, which retrying would not fix
        },
        () => events && later(events),
      )
  }

  /** Send a batch, split in halves while its body is over the beacon/keepalive limit. */
  const ship = (events: ActivityEvent[], hide?: boolean) => {
    const body = JSON.stringify({ events })
    if (body.length > MAX_BODY && events[1]) {
      const h = events.length >> 1
      ship(events.slice(0, h), hide)
      ship(events.slice(h), hide)
    } else send(`${base}/activity/batch`, body, hide, events)
  }

  const push = (ev: ActivityEvent) => {
    const e = !off && TYPE_RE.test(ev.event_type) && through(o.beforeSend, ev)
    if (!e) return
    queue.push(e)
    if (queue.length > MAX_QUEUE) queue.shift()
    if (queue.length >= max) t.flush()
    else if (!timer) arm(Math.max(every, retryAt - Date.now()))
    return e
  }

  const event = (type: string, data?: EventData, fields?: Partial<ActivityEvent>): ActivityEvent => ({
    event_type: type,
    event_id: uuid(),
    occurred_at: new Date().toISOString(),
    page_path: w?.location.pathname,
    event_data: data,
    ...fields,
  })

  /** Close the current page: `page_exit` with the visible time on it, if over MIN_EXIT_MS. */
  const exit = () => {
    const d = Date.now() - start
    if (start && d > MIN_EXIT_MS) push(event('page_exit', undefined, { page_path: path, duration_ms: d }))
    start = 0
  }

  /** Page load time from Navigation Timing; set on `ev` now, or once the load event is over. */
  const loadTime = safe((ev: ActivityEvent, retry?: boolean) => {
    const n: any = performance.getEntriesByType?.('navigation')[0]
    if (n?.loadEventEnd > 0) ev.load_time_ms = Math.round(n.loadEventEnd - n.startTime)
    else if (retry) w!.addEventListener('load', () => setTimeout(loadTime, 0, ev), { once: true })
  })

  const leave = safe(() => {
    exit()
    t.flush(true)
  })
  const onVis = safe(() => {
    if (document.visibilityState == 'hidden') leave()
    else if (path != null && !start) start = Date.now() // visible again: time on page restarts
  })
  // Uncaught error or unhandled rejection. Cross-origin "Script error." events carry no error: skipped.
  // Reported on the next tick so that an error boundary reports it first, with its component.
  const onError = safe((e: any) => {
    const err = e.reason ?? e.error
    if (err != null) setTimeout(t.error, 0, err)
  })

  const t: Tracker = {
    track: safe((type, data, fields) => push(event(type, data, fields))),

    page: safe((p?: string) => {
      p ??= w?.location.pathname
      if (p == path) return
      exit()
      const first = path == null
      const ev = push(
        event('page_view', undefined, {
          page_path: p,
          page_title: document.title,
          referrer: (first ? bare(document.referrer) : path) || undefined,
        }),
      )
      path = p
      start = Date.now()
      if (first && ev) loadTime(ev, true)
    }),

    error: safe((error: any, info = {}) => {
      const message = String(error?.message ?? error).slice(0, 2000)
      const stack = error?.stack ? String(error.stack).slice(0, 8000) : undefined
      const key = message + stack?.split('\n', 3) // same message thrown at the same place: same error
      if (off || seen.has(key) || seen.size >= MAX_ERRORS) return
      seen.add(key)
      const r = through<ErrorReport>(o.beforeSendError, {
        error_type: 'javascript_error',
        message,
        stack,
        component_name: info.componentName,
        page_path: w?.location.pathname,
        ...(info.componentStack && { event_data: { component_stack: info.componentStack.slice(0, 8000) } }),
      })
      if (r) send(`${base}/errors`, JSON.stringify(r))
    }),

    flush: safe((hide?: boolean) => {
      if (!hide && Date.now() < retryAt) return arm(retryAt - Date.now())
      const all = queue
      queue = []
      for (let i = 0; i < all.length; i += max) ship(all.slice(i, i + max), hide)
    }),

    destroy: safe(() => {
      leave()
      off = true
      clearTimeout(timer)
      listen('removeEventListener')
    }),
  }

  const listen = (m: 'addEventListener' | 'removeEventListener') => {
    document[m]('visibilitychange', onVis)
    w![m]('pagehide', leave)
    if (o.captureErrors !== false) {
      w![m]('error', onError)
      w![m]('unhandledrejection', onError as any)
    }
  }

  if (!off) {
    listen('addEventListener')
    if (o.getToken) refreshToken()
  }
  return t
}

let shared: Tracker | undefined

/** The page's shared tracker, created from `options` on first call (later options are ignored). */
export function getTracker(options?: TrackerOptions): Tracker {
  return (shared ??= createTracker(options))
}

import { vi } from 'vitest'
import { createTracker } from '../src/tracker'
import type { ActivityEvent, Tracker, TrackerOptions } from '../src/types'

export const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

export interface Reply {
  status?: number
  headers?: Record<string, string>
}

/** A fake `fetch` answering 202 unless told otherwise, and a `sendBeacon` spy answering true. */
export function network(beacon: boolean | 'missing' | 'throws' = true) {
  const replies: (Reply | Error)[] = []
  const fetch = vi.fn(async (_url: string, _init?: RequestInit) => {
    const r = replies.shift() ?? {}
    if (r instanceof Error) throw r
    return new Response(null, { status: r.status ?? 202, headers: r.headers })
  })
  vi.stubGlobal('fetch', fetch)
  const sendBeacon = vi.fn((_url: string, _body?: BodyInit | null) => {
    if (beacon === 'throws') throw new TypeError('beacon quota')
    return beacon === true
  })
  Object.defineProperty(navigator, 'sendBeacon', {
    configurable: true,
    value: beacon === 'missing' ? undefined : sendBeacon,
  })
  /** Events of every request so far, by transport, in order. */
  const sent = () => ({
    fetch: fetch.mock.calls.map(([url, init]) => ({ url, init: init!, body: JSON.parse(String(init!.body)) })),
    beacon: sendBeacon.mock.calls.map(([url, body]) => ({ url, body: JSON.parse(String(body)) })),
  })
  const fetchedEvents = (): ActivityEvent[] =>
    sent().fetch.filter((r) => r.url.endsWith('/activity/batch')).flatMap((r) => r.body.events)
  const beaconEvents = (): ActivityEvent[] => sent().beacon.flatMap((r) => r.body.events)
  return { fetch, sendBeacon, replies, sent, fetchedEvents, beaconEvents }
}

/** Make `document.visibilityState` report `state` and dispatch `visibilitychange`. */
export function setVisibility(state: 'hidden' | 'visible') {
  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => state })
  document.dispatchEvent(new Event('visibilitychange'))
}

const live: Tracker[] = []

/** A tracker that the suite's afterEach destroys. */
export function tracker(options: TrackerOptions = {}): Tracker {
  const t = createTracker(options)
  live.push(t)
  return t
}

export function destroyTrackers() {
  while (live.length) live.pop()!.destroy()
}

/** Let pending promise callbacks run (fake timers included). */
export const settle = () => vi.advanceTimersByTimeAsync(0)

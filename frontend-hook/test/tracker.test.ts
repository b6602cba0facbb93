import { describe, expect, it, vi } from 'vitest'
import { retryDelay, uuid } from '../src/tracker'
import { network, setVisibility, settle, tracker, UUID_V7 } from './helpers'

describe('queue and batching', () => {
  it('holds events in memory and posts them as one batch after flushInterval', async () => {
    const net = network()
    const t = tracker({ flushInterval: 5000 })
    t.track('quest_started', { quest_id: 'q1' })
    t.track('badge_viewed', { badge_id: 'b1' })
    await vi.advanceTimersByTimeAsync(4999)
    expect(net.fetch).not.toHaveBeenCalled()
    await vi.advanceTimersByTimeAsync(1)
    expect(net.fetch).toHaveBeenCalledTimes(1)
    const [{ url, init, body }] = net.sent().fetch
    expect(url).toBe('/api/analytics/activity/batch')
    expect(init).toMatchObject({ method: 'POST', keepalive: true, credentials: 'omit' })
    expect(typeof init.body).toBe('string')
    expect(init.headers).toEqual({}) // anonymous: no Authorization header
    expect(body.events).toHaveLength(2)
    const [a, b] = body.events
    expect(a).toMatchObject({ event_type: 'quest_started', page_path: '/', event_data: { quest_id: 'q1' } })
    expect(b.event_type).toBe('badge_viewed')
    expect(a.event_id).toMatch(UUID_V7)
    expect(a.event_id).not.toBe(b.event_id)
    expect(new Date(a.occurred_at).toISOString()).toBe(a.occurred_at)
  })

  it('uses the endpoint option without a trailing slash', async () => {
    const net = network()
    const t = tracker({ endpoint: 'https://api.example.org/api/analytics/' })
    t.track('logout')
    t.flush()
    await settle()
    expect(net.sent().fetch[0].url).toBe('https://api.example.org/api/analytics/activity/batch')
  })

  it('flushes as soon as maxBatch events are queued', async () => {
    const net = network()
    const t = tracker({ maxBatch: 3, flushInterval: 60_000 })
    t.track('task_viewed')
    t.track('task_viewed')
    await settle()
    expect(net.fetch).not.toHaveBeenCalled()
    t.track('task_completed')
    await settle()
    expect(net.fetch).toHaveBeenCalledTimes(1)
    expect(net.fetchedEvents().map((e) => e.event_type)).toEqual(['task_viewed', 'task_viewed', 'task_completed'])
  })

  it('never puts more than 100 events in one request', async () => {
    const net = network()
    net.replies.push({ status: 503, headers: { 'Retry-After': '10' } })
    const t = tracker({ maxBatch: 500 })
    for (let i = 0; i < 100; i++) t.track('quest_viewed', { quest_id: `q${i}` }) // flushes at 100: answered 503
    await settle()
    for (let i = 100; i < 250; i++) t.track('quest_viewed', { quest_id: `q${i}` }) // queued while backing off
    await vi.advanceTimersByTimeAsync(10_000)
    const sizes = net.sent().fetch.map((r) => r.body.events.length)
    expect(Math.max(...sizes)).toBeLessThanOrEqual(100)
    const delivered = net.sent().fetch.slice(1).flatMap((r) => r.body.events)
    expect(new Set(delivered.map((e: { event_data: { quest_id: string } }) => e.event_data.quest_id)).size).toBe(250)
  })

  it.each([
    ['ASCII', 'x', 10_000],
    ['non-ASCII (3 bytes per character in UTF-8)', '漢', 5_000],
  ])('splits a batch whose %s body would exceed the 64 KiB beacon/keepalive limit', async (_l, ch, n) => {
    const net = network()
    const t = tracker({ maxBatch: 10 })
    for (let i = 0; i < 10; i++) t.track('evidence_uploaded', { note: ch.repeat(n), i })
    await settle()
    const bodies = net.fetch.mock.calls.map(([, init]) => String(init!.body))
    expect(bodies.length).toBeGreaterThan(1)
    for (const b of bodies) expect(new TextEncoder().encode(b).length).toBeLessThan(64 * 1024)
    expect(net.fetchedEvents().map((e) => e.event_data!.i)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  })

  it('drops events whose type the backend would reject', async () => {
    const net = network()
    const t = tracker()
    t.track('Bad Type')
    t.track('9lives')
    t.track('my_custom_thing', { ok: true })
    t.flush()
    await settle()
    expect(net.fetchedEvents().map((e) => e.event_type)).toEqual(['my_custom_thing'])
  })

  it('does not send an empty batch', async () => {
    const net = network()
    const t = tracker()
    t.flush()
    setVisibility('hidden')
    await vi.advanceTimersByTimeAsync(10_000)
    expect(net.fetch).not.toHaveBeenCalled()
    expect(net.sendBeacon).not.toHaveBeenCalled()
  })
})

describe('page hide: sendBeacon, with fetch as the fallback', () => {
  it('sends the queue with sendBeacon as a text string when the tab is hidden', async () => {
    const net = network()
    const t = tracker()
    t.track('tutor_opened')
    setVisibility('hidden')
    expect(net.sendBeacon).toHaveBeenCalledTimes(1)
    const [url, body] = net.sendBeacon.mock.calls[0]
    expect(url).toBe('/api/analytics/activity/batch')
    expect(typeof body).toBe('string') // a string body goes as text/plain: no CORS preflight
    expect(net.beaconEvents().map((e) => e.event_type)).toEqual(['tutor_opened'])
    await vi.advanceTimersByTimeAsync(10_000)
    expect(net.fetch).not.toHaveBeenCalled() // nothing left to send
  })

  it('sends on pagehide too', () => {
    const net = network()
    const t = tracker()
    t.track('logout')
    window.dispatchEvent(new Event('pagehide'))
    expect(net.beaconEvents().map((e) => e.event_type)).toEqual(['logout'])
  })

  it('does not flush when the tab becomes visible', async () => {
    const net = network()
    const t = tracker()
    t.track('logout')
    setVisibility('visible')
    await settle()
    expect(net.sendBeacon).not.toHaveBeenCalled()
    expect(net.fetch).not.toHaveBeenCalled()
  })

  it.each([
    ['returns false', false],
    ['is missing', 'missing'],
    ['throws', 'throws'],
  ] as const)('falls back to fetch keepalive when sendBeacon %s', async (_label, beacon) => {
    const net = network(beacon)
    const t = tracker()
    t.track('logout')
    expect(() => setVisibility('hidden')).not.toThrow()
    await settle()
    expect(net.fetch).toHaveBeenCalledTimes(1)
    expect(net.sent().fetch[0].init.keepalive).toBe(true)
    expect(net.fetchedEvents().map((e) => e.event_type)).toEqual(['logout'])
  })
})

describe('authorization', () => {
  it('adds the bearer token from getToken (async) to fetch batches', async () => {
    const net = network()
    const t = tracker({ getToken: async () => 'tok-1' })
    t.track('login_success')
    t.flush()
    await settle()
    expect(net.sent().fetch[0].init.headers).toEqual({ Authorization: 'Bearer tok-1' })
  })

  it('on hide, signed-in users are sent by keepalive fetch with the token, not by an anonymous beacon', async () => {
    const net = network()
    const t = tracker({ getToken: () => 'tok-2' })
    await settle() // the tracker fetches the token at start
    t.track('quest_completed', { quest_id: 'q', pillar: 'art', xp: 5 })
    setVisibility('hidden')
    await settle()
    expect(net.sendBeacon).not.toHaveBeenCalled()
    expect(net.sent().fetch[0].init).toMatchObject({ keepalive: true, headers: { Authorization: 'Bearer tok-2' } })
  })

  it('asks getToken again before each send, so a refreshed token is used', async () => {
    const net = network()
    let n = 0
    const t = tracker({ getToken: () => `tok-${++n}` })
    t.track('logout')
    t.flush()
    await settle()
    t.track('login_success')
    t.flush()
    await settle()
    const auth = net.sent().fetch.map((r) => (r.init.headers as Record<string, string>).Authorization)
    expect(auth).toEqual(['Bearer tok-2', 'Bearer tok-3']) // tok-1 was fetched at start
  })

  it('a getToken that throws or yields null means anonymous, not a failure', async () => {
    const net = network()
    const t = tracker({
      getToken: () => {
        throw new Error('no session')
      },
    })
    t.track('logout')
    t.flush()
    await settle()
    expect(net.sent().fetch[0].init.headers).toEqual({})
    t.track('logout')
    setVisibility('hidden')
    expect(net.sendBeacon).toHaveBeenCalledTimes(1)
  })
})

describe('retries', () => {
  it('respects Retry-After on 503 and resends the same events (same event_id)', async () => {
    const net = network()
    net.replies.push({ status: 503, headers: { 'Retry-After': '30' } })
    const t = tracker({ flushInterval: 1000 })
    t.track('quest_viewed', { quest_id: 'q1' })
    await vi.advanceTimersByTimeAsync(1000)
    expect(net.fetch).toHaveBeenCalledTimes(1)
    t.track('quest_viewed', { quest_id: 'q2' })
    await vi.advanceTimersByTimeAsync(29_999) // the interval passes, but the server asked for 30 s
    expect(net.fetch).toHaveBeenCalledTimes(1)
    await vi.advanceTimersByTimeAsync(1000)
    expect(net.fetch).toHaveBeenCalledTimes(2)
    const [first, second] = net.sent().fetch.map((r) => r.body.events)
    expect(second.map((e: { event_id: string }) => e.event_id)).toEqual([first[0].event_id, expect.stringMatching(UUID_V7)])
    expect(second[1].event_data).toEqual({ quest_id: 'q2' })
    await vi.advanceTimersByTimeAsync(60_000)
    expect(net.fetch).toHaveBeenCalledTimes(2) // 202: done, nothing resent
  })

  it('retries a rejected fetch (network down) with backoff, keeping event ids', async () => {
    const net = network()
    net.replies.push(new TypeError('Failed to fetch'), new TypeError('Failed to fetch'))
    const t = tracker()
    t.track('logout')
    t.flush()
    await settle()
    await vi.advanceTimersByTimeAsync(2000) // 1st backoff: 2 s
    expect(net.fetch).toHaveBeenCalledTimes(2)
    await vi.advanceTimersByTimeAsync(3999) // 2nd backoff: 4 s
    expect(net.fetch).toHaveBeenCalledTimes(2)
    await vi.advanceTimersByTimeAsync(1)
    expect(net.fetch).toHaveBeenCalledTimes(3)
    const ids = net.sent().fetch.map((r) => r.body.events[0].event_id)
    expect(new Set(ids).size).toBe(1)
  })

  it('does not retry a 400: the data is bad', async () => {
    const net = network()
    net.replies.push({ status: 400 })
    const t = tracker()
    t.track('logout')
    t.flush()
    await vi.advanceTimersByTimeAsync(120_000)
    expect(net.fetch).toHaveBeenCalledTimes(1)
  })

  it('reads Retry-After as seconds or an HTTP date, with safe defaults', () => {
    vi.setSystemTime(new Date('2026-01-01T00:00:00Z'))
    expect(retryDelay('30')).toBe(30_000)
    expect(retryDelay('Thu, 01 Jan 2026 00:00:12 GMT')).toBe(12_000)
    expect(retryDelay(null)).toBe(5000)
    expect(retryDelay('garbage')).toBe(0)
    expect(retryDelay('999999')).toBe(3_600_000)
  })
})

describe('beforeSend', () => {
  it('can scrub an event and can drop one', async () => {
    const net = network()
    const t = tracker({
      beforeSend: (e) =>
        e.event_type === 'profile_viewed'
          ? null
          : { ...e, event_data: { ...e.event_data, email: undefined, scrubbed: true } },
    })
    t.track('tutor_message_sent', { email: 'kid@example.org', length: 12 })
    t.track('profile_viewed', { profile: 'p' })
    t.flush()
    await settle()
    const events = net.fetchedEvents()
    expect(events).toHaveLength(1)
    expect(events[0].event_data).toEqual({ length: 12, scrubbed: true })
    expect(JSON.stringify(net.sent().fetch[0].body)).not.toContain('kid@example.org')
  })

  it('drops the event when beforeSend throws, without throwing', async () => {
    const net = network()
    const t = tracker({
      beforeSend: () => {
        throw new Error('bug in scrubber')
      },
    })
    expect(() => t.track('logout')).not.toThrow()
    t.flush()
    await settle()
    expect(net.fetch).not.toHaveBeenCalled()
  })
})

describe('failures stay inside the tracker', () => {
  it('a fetch that throws synchronously neither escapes nor loses the batch', async () => {
    const net = network()
    let calls = 0
    vi.stubGlobal('fetch', () => {
      calls++
      if (calls === 1) throw new TypeError('keepalive quota')
      return Promise.resolve(new Response(null, { status: 202 }))
    })
    const t = tracker()
    t.track('logout')
    expect(() => t.flush()).not.toThrow()
    await vi.advanceTimersByTimeAsync(2000)
    expect(calls).toBe(2)
    expect(net.sendBeacon).not.toHaveBeenCalled()
  })

  it('nothing escapes when both sendBeacon and fetch fail on hide', async () => {
    network('throws')
    vi.stubGlobal('fetch', () => Promise.reject(new TypeError('offline')))
    const unhandled = vi.fn()
    process.on('unhandledRejection', unhandled)
    const t = tracker()
    t.track('logout')
    expect(() => setVisibility('hidden')).not.toThrow()
    expect(() => window.dispatchEvent(new Event('pagehide'))).not.toThrow()
    await vi.advanceTimersByTimeAsync(5000)
    process.off('unhandledRejection', unhandled)
    expect(unhandled).not.toHaveBeenCalled()
  })

  it('works without window.fetch at all', () => {
    network(false)
    vi.stubGlobal('fetch', undefined)
    const t = tracker()
    t.track('logout')
    expect(() => setVisibility('hidden')).not.toThrow()
  })
})

describe('destroy', () => {
  it('sends what is queued, then stops listening and sending', async () => {
    const net = network()
    const t = tracker()
    t.page('/a')
    t.destroy()
    expect(net.beaconEvents().map((e) => e.event_type)).toEqual(['page_view'])
    t.track('logout')
    setVisibility('hidden')
    window.dispatchEvent(new Event('pagehide'))
    await vi.advanceTimersByTimeAsync(60_000)
    expect(net.sendBeacon).toHaveBeenCalledTimes(1)
    expect(net.fetch).not.toHaveBeenCalled()
  })
})

describe('privacy', () => {
  it('never touches cookies, localStorage or sessionStorage', async () => {
    const net = network()
    const storage = (['getItem', 'setItem', 'removeItem', 'clear', 'key'] as const).map((m) =>
      vi.spyOn(Storage.prototype, m),
    )
    const proto = Document.prototype
    const cookie = Object.getOwnPropertyDescriptor(proto, 'cookie')!
    const cookieGet = vi.fn(cookie.get!)
    const cookieSet = vi.fn(cookie.set!)
    Object.defineProperty(proto, 'cookie', { configurable: true, get: cookieGet, set: cookieSet })
    try {
      const t = tracker({ getToken: () => 'tok' })
      t.page('/quests')
      t.track('quest_viewed', { quest_id: 'q' })
      t.error(new Error('boom'))
      await vi.advanceTimersByTimeAsync(6000)
      t.page('/badges')
      setVisibility('hidden')
      await settle()
      expect(net.fetch).toHaveBeenCalled() // it did work…
    } finally {
      Object.defineProperty(proto, 'cookie', cookie)
    }
    for (const s of storage) expect(s).not.toHaveBeenCalled() // …without any storage
    expect(cookieGet).not.toHaveBeenCalled()
    expect(cookieSet).not.toHaveBeenCalled()
  })

  it('sends nothing when the browser says Do Not Track, unless told to ignore it', async () => {
    const net = network()
    Object.defineProperty(navigator, 'doNotTrack', { configurable: true, value: '1' })
    try {
      const quiet = tracker()
      quiet.page('/x')
      quiet.track('logout')
      quiet.error(new Error('e'))
      quiet.flush()
      setVisibility('hidden')
      await settle()
      expect(net.fetch).not.toHaveBeenCalled()
      expect(net.sendBeacon).not.toHaveBeenCalled()
      const loud = tracker({ respectDoNotTrack: false })
      loud.track('logout')
      loud.flush()
      await settle()
      expect(net.fetchedEvents().map((e) => e.event_type)).toEqual(['logout'])
    } finally {
      Object.defineProperty(navigator, 'doNotTrack', { configurable: true, value: null })
    }
  })

  it('strips the query string and fragment from the external referrer', async () => {
    const net = network()
    Object.defineProperty(document, 'referrer', {
      configurable: true,
      value: 'https://search.example/?q=my+name@example.org#x',
    })
    try {
      const t = tracker()
      t.page('/a')
      t.flush()
      await settle()
      expect(net.fetchedEvents()[0].referrer).toBe('https://search.example/')
    } finally {
      Object.defineProperty(document, 'referrer', { configurable: true, value: '' })
    }
  })
})

describe('uuid', () => {
  it('gives version 7 uuids whose first 48 bits are the millisecond, in time order', () => {
    const before = Date.now()
    const id = uuid()
    expect(id).toMatch(UUID_V7)
    const ms = parseInt(id.replace(/-/g, '').slice(0, 12), 16)
    expect(ms).toBeGreaterThanOrEqual(before)
    expect(ms).toBeLessThanOrEqual(Date.now())
    vi.useFakeTimers({ now: before + 1000 })
    try {
      expect(uuid() > id).toBe(true) // a later id sorts after: appends to the index
    } finally {
      vi.useRealTimers()
    }
  })

  it('uses getRandomValues only (no randomUUID on plain http): 50 distinct ids', () => {
    const real = crypto
    const bytes = vi.fn((a: Uint8Array) => real.getRandomValues(a))
    vi.stubGlobal('crypto', { getRandomValues: bytes })
    const ids = new Set(Array.from({ length: 50 }, uuid))
    expect(ids.size).toBe(50)
    for (const id of ids) expect(id).toMatch(UUID_V7)
    expect(bytes).toHaveBeenCalled()
  })
})

import { describe, expect, it, vi } from 'vitest'
import { MIN_EXIT_MS } from '../src/tracker'
import { network, setVisibility, settle, tracker } from './helpers'

/** Every event sent so far, by either transport, in order. */
const all = (net: ReturnType<typeof network>) => [...net.fetchedEvents(), ...net.beaconEvents()]

describe('page views and time on page', () => {
  it('records one page_view per distinct path, with title and the previous path as referrer', async () => {
    const net = network()
    const t = tracker()
    document.title = 'Quests'
    t.page('/quests')
    t.page('/quests') // same page again (re-render, StrictMode): ignored
    document.title = 'Badges'
    t.page('/badges')
    t.flush()
    await settle()
    const views = net.fetchedEvents().filter((e) => e.event_type === 'page_view')
    expect(views).toHaveLength(2)
    expect(views[0]).toMatchObject({ page_path: '/quests', page_title: 'Quests' })
    expect(views[0].referrer).toBeUndefined() // direct visit: document.referrer is empty
    expect(views[1]).toMatchObject({ page_path: '/badges', page_title: 'Badges', referrer: '/quests' })
  })

  it(`records page_exit only when more than ${MIN_EXIT_MS} ms were spent on the page`, async () => {
    const net = network()
    const t = tracker()
    t.page('/a')
    vi.advanceTimersByTime(MIN_EXIT_MS) // exactly 1 s: not enough
    t.page('/b')
    vi.advanceTimersByTime(MIN_EXIT_MS + 1) // 1.001 s: counts
    t.page('/c')
    t.flush()
    await settle()
    const exits = net.fetchedEvents().filter((e) => e.event_type === 'page_exit')
    expect(exits).toHaveLength(1)
    expect(exits[0]).toMatchObject({ page_path: '/b', duration_ms: MIN_EXIT_MS + 1 })
    expect(net.fetchedEvents().map((e) => `${e.event_type} ${e.page_path}`)).toEqual([
      'page_view /a',
      'page_view /b',
      'page_exit /b',
      'page_view /c',
    ])
  })

  it('closes the page with page_exit when the tab is hidden, and restarts the clock when it is visible again', async () => {
    const net = network()
    const t = tracker()
    t.page('/lesson')
    vi.advanceTimersByTime(4000)
    setVisibility('hidden') // page_exit 4 s, sent by beacon
    vi.advanceTimersByTime(60_000) // time spent hidden is not time on page
    setVisibility('visible')
    vi.advanceTimersByTime(2500)
    window.dispatchEvent(new Event('pagehide'))
    await settle()
    const exits = all(net).filter((e) => e.event_type === 'page_exit')
    expect(exits.map((e) => e.duration_ms)).toEqual([4000, 2500])
    expect(exits.every((e) => e.page_path === '/lesson')).toBe(true)
    expect(net.beaconEvents().map((e) => e.event_type)).toEqual(['page_view', 'page_exit', 'page_exit'])
  })

  it('a hide right after arriving sends the page_view but no page_exit', () => {
    const net = network()
    const t = tracker()
    t.page('/quick')
    vi.advanceTimersByTime(800)
    setVisibility('hidden')
    expect(net.beaconEvents().map((e) => e.event_type)).toEqual(['page_view'])
  })

  it('puts the Navigation Timing load time on the first page_view only', async () => {
    const net = network()
    const entries = vi.spyOn(performance, 'getEntriesByType').mockReturnValue([{ startTime: 0, loadEventEnd: 812.6 }] as never)
    const t = tracker()
    t.page('/a')
    t.page('/b')
    t.flush()
    await settle()
    const [a, b] = net.fetchedEvents()
    expect(a.load_time_ms).toBe(813)
    expect(b.load_time_ms).toBeUndefined()
    expect(entries).toHaveBeenCalledWith('navigation')
  })

  it('fills the load time in after the load event when the page view comes first', async () => {
    const net = network()
    const entry = { startTime: 0, loadEventEnd: 0 }
    vi.spyOn(performance, 'getEntriesByType').mockReturnValue([entry] as never)
    const t = tracker()
    t.page('/early')
    entry.loadEventEnd = 1500
    window.dispatchEvent(new Event('load'))
    await vi.advanceTimersByTimeAsync(5000)
    expect(net.fetchedEvents()[0]).toMatchObject({ event_type: 'page_view', load_time_ms: 1500 })
  })

  it('survives a browser without performance.getEntriesByType', async () => {
    const net = network()
    vi.spyOn(performance, 'getEntriesByType').mockImplementation(() => {
      throw new Error('unsupported')
    })
    const t = tracker()
    expect(() => t.page('/a')).not.toThrow()
    t.flush()
    await settle()
    expect(net.fetchedEvents()[0]).toMatchObject({ event_type: 'page_view', page_path: '/a' })
    expect(net.fetchedEvents()[0].load_time_ms).toBeUndefined()
  })

  it('defaults page_path to location.pathname, never the query string', async () => {
    const net = network()
    history.replaceState(null, '', '/reset?token=secret#frag')
    const t = tracker()
    t.page()
    t.track('quest_viewed', { quest_id: 'q' })
    t.flush()
    await settle()
    expect(net.fetchedEvents().map((e) => e.page_path)).toEqual(['/reset', '/reset'])
    expect(JSON.stringify(net.sent().fetch)).not.toContain('secret')
  })
})

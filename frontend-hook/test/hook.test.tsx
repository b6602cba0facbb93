import { act, render, renderHook } from '@testing-library/react'
import { StrictMode, useEffect, useState } from 'react'
import { describe, expect, it, vi } from 'vitest'
import { useActivityTracking, type ActivityTrackingOptions } from '../src/hook'
import { network, setVisibility, settle, tracker } from './helpers'

const sentPages = async (net: ReturnType<typeof network>) => {
  await settle()
  return [...net.fetchedEvents(), ...net.beaconEvents()]
    .filter((e) => e.event_type.startsWith('page_'))
    .map((e) => `${e.event_type} ${e.page_path}${e.duration_ms ? ` ${e.duration_ms}` : ''}`)
}

describe('useActivityTracking with a router location (React Router style)', () => {
  it('records a page view on mount and on every pathname change, with page_exit in between', async () => {
    const net = network()
    const t = tracker()
    const { rerender } = renderHook((props: ActivityTrackingOptions) => useActivityTracking(props), {
      initialProps: { tracker: t, location: { pathname: '/quests' } },
    })
    vi.advanceTimersByTime(3000)
    rerender({ tracker: t, location: { pathname: '/quests' } }) // same route, new object: nothing
    rerender({ tracker: t, location: { pathname: '/badges' } })
    vi.advanceTimersByTime(500)
    rerender({ tracker: t, location: { pathname: '/profile' } })
    t.flush()
    expect(await sentPages(net)).toEqual([
      'page_view /quests',
      'page_exit /quests 3000',
      'page_view /badges', // only 0.5 s on /badges: no page_exit
      'page_view /profile',
    ])
  })

  it('does not patch history when a location is given', () => {
    network()
    const push = history.pushState
    renderHook(() => useActivityTracking({ tracker: tracker(), location: { pathname: '/' } }))
    expect(history.pushState).toBe(push)
  })
})

describe('useActivityTracking with the plain History API', () => {
  it('records one page view under StrictMode (effects run twice in development)', async () => {
    const net = network()
    const t = tracker()
    const push = history.pushState
    history.replaceState(null, '', '/strict')
    const { unmount } = renderHook(() => useActivityTracking({ tracker: t }), { wrapper: StrictMode })
    act(() => history.pushState(null, '', '/strict/next'))
    unmount()
    expect(history.pushState).toBe(push) // both mounts cleaned up
    t.flush()
    expect(await sentPages(net)).toEqual(['page_view /strict', 'page_view /strict/next'])
  })

  it('follows pushState, replaceState and popstate, and restores history on unmount', async () => {
    const net = network()
    const t = tracker()
    const push = history.pushState
    history.replaceState(null, '', '/home')
    const { unmount } = renderHook(() => useActivityTracking({ tracker: t }))
    expect(history.pushState).not.toBe(push)
    vi.advanceTimersByTime(2000)
    act(() => history.pushState(null, '', '/quests/42'))
    expect(location.pathname).toBe('/quests/42') // the real pushState still ran
    act(() => history.replaceState(null, '', '/quests/42?tab=tasks')) // same path: no new view
    act(() => history.replaceState(null, '', '/quests/43'))
    // Back button: the browser changes the URL, then fires popstate.
    Reflect.apply(push, history, [null, '', '/home'])
    act(() => {
      window.dispatchEvent(new PopStateEvent('popstate'))
    })
    unmount()
    expect(history.pushState).toBe(push)
    history.pushState(null, '', '/after-unmount')
    t.flush()
    expect(await sentPages(net)).toEqual([
      'page_view /home',
      'page_exit /home 2000',
      'page_view /quests/42',
      'page_view /quests/43',
      'page_view /home',
    ])
  })

  it('sends page_exit with the time on page by beacon when the tab is hidden', async () => {
    const net = network()
    const t = tracker()
    history.replaceState(null, '', '/lesson')
    renderHook(() => useActivityTracking({ tracker: t }))
    vi.advanceTimersByTime(42_000) // the page_view went by fetch at the 5 s flush
    setVisibility('hidden')
    expect(net.beaconEvents().map((e) => [e.event_type, e.page_path, e.duration_ms])).toEqual([
      ['page_exit', '/lesson', 42_000],
    ])
    await settle()
    expect(net.fetchedEvents().map((e) => [e.event_type, e.page_path])).toEqual([['page_view', '/lesson']])
  })
})

describe('trackEvent', () => {
  it('is stable across renders and sends typed and custom events', async () => {
    const net = network()
    const t = tracker()
    const { result, rerender } = renderHook(() => useActivityTracking({ tracker: t, trackPageViews: false }))
    const first = result.current.trackEvent
    rerender()
    expect(result.current.trackEvent).toBe(first)
    result.current.trackEvent('quest_completed', { quest_id: 'q7', pillar: 'stem', xp: 50 })
    result.current.trackEvent('confetti_clicked', { colour: 'gold' }) // custom type: the escape hatch
    t.flush()
    await settle()
    expect(net.fetchedEvents().map((e) => [e.event_type, e.event_data])).toEqual([
      ['quest_completed', { quest_id: 'q7', pillar: 'stem', xp: 50 }],
      ['confetti_clicked', { colour: 'gold' }],
    ])
  })

  it('sends no page views when trackPageViews is false', async () => {
    const net = network()
    const t = tracker()
    renderHook(() => useActivityTracking({ tracker: t, trackPageViews: false }))
    act(() => history.pushState(null, '', '/elsewhere'))
    t.flush()
    expect(await sentPages(net)).toEqual([])
  })

  it('uses one shared tracker, created from the options, when none is passed', async () => {
    const net = network()
    const a = renderHook(() => useActivityTracking({ endpoint: '/custom/analytics', trackPageViews: false }))
    const b = renderHook(() => useActivityTracking({ endpoint: '/ignored', trackPageViews: false }))
    a.result.current.trackEvent('logout')
    b.result.current.trackEvent('login_success')
    setVisibility('hidden') // one tracker: one beacon with both events
    expect(net.sendBeacon).toHaveBeenCalledTimes(1)
    expect(net.sendBeacon.mock.calls[0][0]).toBe('/custom/analytics/activity/batch')
    expect(net.beaconEvents().map((e) => e.event_type)).toEqual(['logout', 'login_success'])
  })
})

describe('page titles', () => {
  it("records the new page's document.title, set by the page in an effect, with the History API", async () => {
    const net = network()
    const t = tracker()
    history.replaceState(null, '', '/home')
    function Page({ title }: { title: string }) {
      useEffect(() => {
        document.title = title
      }, [title])
      return null
    }
    function App() {
      const [path, setPath] = useState(location.pathname)
      useEffect(() => {
        const f = () => setPath(location.pathname)
        addEventListener('navigate-test', f)
        return () => removeEventListener('navigate-test', f)
      }, [])
      useActivityTracking({ tracker: t })
      return <Page title={path === '/home' ? 'Home' : 'Quests'} />
    }
    render(<App />)
    act(() => {
      history.pushState(null, '', '/quests')
      dispatchEvent(new Event('navigate-test'))
    })
    t.flush()
    await settle()
    expect(net.fetchedEvents().map((e) => [e.page_path, e.page_title])).toEqual([
      ['/home', 'Home'],
      ['/quests', 'Quests'],
    ])
  })
})

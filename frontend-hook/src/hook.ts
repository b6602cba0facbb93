import { useCallback, useEffect, useRef } from 'react'
import { getTracker } from './tracker'
import type { DataFor, EventType, Tracker, TrackerOptions } from './types'

export interface ActivityTrackingOptions extends TrackerOptions {
  /** Tracker to use; default: the page's shared tracker, created from these options on first use. */
  tracker?: Tracker
  /**
   * The router's location (React Router: `useLocation()`). When given, a page view is
   * recorded whenever `location.pathname` changes; when absent, on `history.pushState`,
   * `replaceState` and `popstate`.
   */
  location?: { pathname: string }
  /** Record page views (and page exits). Default true; pass false in components that only send events. */
  trackPageViews?: boolean
}

export type TrackEvent = <T extends EventType>(type: T, data?: DataFor<T>) => void

/**
 * Record page views on mount and on every route change, and return a stable
 * `trackEvent(type, data)` for custom events.
 */
export function useActivityTracking(options: ActivityTrackingOptions = {}): { trackEvent: TrackEvent } {
  const tracker = options.tracker ?? getTracker(options)
  const ref = useRef(tracker)
  ref.current = tracker
  const pages = options.trackPageViews !== false
  const pathname = options.location?.pathname
  const routed = options.location != null

  useEffect(() => {
    if (!pages) return
    // Router-driven: one page view per distinct pathname (the tracker ignores repeats).
    if (routed) return tracker.page(pathname)
    // Plain History API: follow pushState / replaceState / popstate while mounted.
    const h = history
    const push = h.pushState
    const replace = h.replaceState
    const onChange = () => tracker.page()
    const wrap =
      (f: History['pushState']): History['pushState'] =>
      function (this: History, ...a) {
        f.apply(this, a)
        onChange()
      }
    const p = (h.pushState = wrap(push))
    const r = (h.replaceState = wrap(replace))
    addEventListener('popstate', onChange)
    onChange()
    return () => {
      if (h.pushState == p) h.pushState = push
      if (h.replaceState == r) h.replaceState = replace
      removeEventListener('popstate', onChange)
    }
  }, [tracker, pages, routed, pathname])

  // Stable across renders: reads the current tracker through a ref.
  return { trackEvent: useCallback<TrackEvent>((type, data) => ref.current.track(type, data), []) }
}

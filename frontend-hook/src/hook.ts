import { useCallback, useEffect, useState } from 'react'
import { getTracker } from './tracker.js'
import type { DataFor, EventType, Tracker, TrackerOptions } from './types.js'

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
  const pages = options.trackPageViews !== false
  const routed = options.location != null
  const [current, setCurrent] = useState<string>()
  const path = routed ? options.location!.pathname : current

  // One page view per distinct path (the tracker ignores repeats). Recorded in an effect,
  // after the render, so that the new page's document.title is the one recorded.
  useEffect(() => {
    if (pages && path != null) tracker.page(path)
  }, [tracker, pages, path])

  // Without a router location: follow pushState / replaceState / popstate while mounted.
  useEffect(() => {
    if (!pages || routed) return
    const h = history
    const push = h.pushState
    const replace = h.replaceState
    const sync = () => setCurrent(location.pathname)
    const wrap =
      (f: History['pushState']): History['pushState'] =>
      function (this: History, ...a) {
        f.apply(this, a)
        sync()
      }
    const p = (h.pushState = wrap(push))
    const r = (h.replaceState = wrap(replace))
    addEventListener('popstate', sync)
    sync()
    return () => {
      if (h.pushState == p) h.pushState = push
      if (h.replaceState == r) h.replaceState = replace
      removeEventListener('popstate', sync)
    }
  }, [pages, routed])

  // Stable across renders (the tracker is created once per page, or passed in from module scope).
  return { trackEvent: useCallback<TrackEvent>((type, data) => tracker.track(type, data), [tracker]) }
}

// @vitest-environment node
// Server rendering: no window, no document. Creating and using a tracker must be harmless.
import { describe, expect, it, vi } from 'vitest'
import { createTracker, getTracker } from '../src/tracker'

describe('without a browser (server rendering)', () => {
  it('creates an inert tracker that sends nothing and never throws', async () => {
    const fetch = vi.fn()
    vi.stubGlobal('fetch', fetch)
    expect(typeof window).toBe('undefined')
    const t = createTracker()
    expect(() => {
      t.page('/x')
      t.track('logout')
      t.error(new Error('e'))
      t.flush()
      t.flush(true)
      t.destroy()
    }).not.toThrow()
    expect(getTracker()).toBe(getTracker())
    await vi.advanceTimersByTimeAsync(10_000)
    expect(fetch).not.toHaveBeenCalled()
  })
})

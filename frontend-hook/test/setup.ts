import { afterEach, beforeEach, vi } from 'vitest'
import { destroyTrackers } from './helpers'

const browser = typeof document != 'undefined' // false in the `node` environment (SSR tests)

beforeEach(() => {
  vi.useFakeTimers()
  if (browser) history.replaceState(null, '', '/')
})

afterEach(() => {
  destroyTrackers()
  vi.useRealTimers()
  vi.unstubAllGlobals()
  if (browser) Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' })
})

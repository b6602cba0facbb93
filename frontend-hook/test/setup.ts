import { afterEach, beforeEach, vi } from 'vitest'
import { destroyTrackers } from './helpers'

beforeEach(() => {
  vi.useFakeTimers()
  history.replaceState(null, '', '/')
})

afterEach(() => {
  destroyTrackers()
  vi.useRealTimers()
  vi.unstubAllGlobals()
  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' })
})

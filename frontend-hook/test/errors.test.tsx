import { render, screen } from '@testing-library/react'
import { describe, expect, it, vi } from 'vitest'
import { ActivityErrorBoundary, firstComponent } from '../src/boundary'
import { network, settle, tracker } from './helpers'

/** The keys the backend's /errors endpoint validates; nothing else may be sent. */
const ALLOWED = ['error_type', 'message', 'stack', 'component_name', 'page_path', 'event_data']

const errorReports = (net: ReturnType<typeof network>) =>
  net.sent().fetch.filter((r) => r.url === '/api/analytics/errors')

/** React's development build re-throws caught errors on window; keep jsdom from printing them. */
const silence = () => {
  const hush = (e: Event) => e.preventDefault()
  window.addEventListener('error', hush)
  vi.spyOn(console, 'error').mockImplementation(() => {})
  return () => window.removeEventListener('error', hush)
}

function Bomb(): JSX.Element {
  throw new Error('quest list exploded')
}

describe('error reporting', () => {
  it('reports what an ActivityErrorBoundary catches, with the component, and shows the fallback', async () => {
    const net = network()
    const t = tracker()
    history.replaceState(null, '', '/quests')
    const unsilence = silence()
    render(
      <ActivityErrorBoundary tracker={t} fallback={<p>Something went wrong</p>}>
        <Bomb />
      </ActivityErrorBoundary>,
    )
    expect(screen.getByText('Something went wrong')).toBeTruthy()
    await vi.advanceTimersByTimeAsync(10)
    const reports = errorReports(net)
    expect(reports).toHaveLength(1) // React's dev re-throw reaches window 'error' too: deduplicated
    const { init, body } = reports[0]
    expect(init).toMatchObject({ method: 'POST', keepalive: true, credentials: 'omit' })
    expect(Object.keys(body).every((k) => ALLOWED.includes(k))).toBe(true)
    expect(body).toMatchObject({
      error_type: 'javascript_error',
      message: 'quest list exploded',
      component_name: 'Bomb',
      page_path: '/quests',
    })
    expect(body.stack).toContain('quest list exploded')
    expect(Object.keys(body.event_data)).toEqual(['component_stack'])
    expect(body.event_data.component_stack).toContain('Bomb')
    unsilence()
  })

  it('uses the name prop as component_name and offers reset to a fallback function', async () => {
    const net = network()
    const t = tracker()
    const unsilence = silence()
    render(
      <ActivityErrorBoundary tracker={t} name="QuestPanel" fallback={(e) => <p>Oops: {e.message}</p>}>
        <Bomb />
      </ActivityErrorBoundary>,
    )
    expect(screen.getByText('Oops: quest list exploded')).toBeTruthy()
    await vi.advanceTimersByTimeAsync(10)
    expect(errorReports(net)[0].body.component_name).toBe('QuestPanel')
    unsilence()
  })

  it('renders its children when nothing throws, and reports nothing', async () => {
    const net = network()
    render(
      <ActivityErrorBoundary tracker={tracker()}>
        <p>fine</p>
      </ActivityErrorBoundary>,
    )
    expect(screen.getByText('fine')).toBeTruthy()
    await vi.advanceTimersByTimeAsync(10)
    expect(errorReports(net)).toHaveLength(0)
  })

  it('reports uncaught errors and unhandled rejections from the window, once each', async () => {
    const net = network()
    tracker()
    const unsilence = silence()
    const boom = new TypeError('x is undefined')
    window.dispatchEvent(new ErrorEvent('error', { error: boom, message: boom.message }))
    window.dispatchEvent(new ErrorEvent('error', { error: boom, message: boom.message })) // repeat: once
    const rejected = Promise.reject(new Error('api down'))
    rejected.catch(() => {})
    window.dispatchEvent(new PromiseRejectionEvent('unhandledrejection', { promise: rejected, reason: new Error('api down') }))
    window.dispatchEvent(new ErrorEvent('error', { message: 'Script error.' })) // cross-origin: no detail, skipped
    await vi.advanceTimersByTimeAsync(10)
    const bodies = errorReports(net).map((r) => r.body)
    expect(bodies.map((b) => b.message)).toEqual(['x is undefined', 'api down'])
    for (const b of bodies) {
      expect(b.error_type).toBe('javascript_error')
      expect(Object.keys(b).every((k) => ALLOWED.includes(k))).toBe(true)
      expect(b.event_data).toBeUndefined()
    }
    unsilence()
  })

  it('reports a rejection with a non-Error reason as its string', async () => {
    const net = network()
    tracker()
    const p = Promise.reject('plain string')
    p.catch(() => {})
    window.dispatchEvent(new PromiseRejectionEvent('unhandledrejection', { promise: p, reason: 'plain string' }))
    await vi.advanceTimersByTimeAsync(10)
    expect(errorReports(net)[0].body).toMatchObject({ message: 'plain string' })
    expect(errorReports(net)[0].body.stack).toBeUndefined()
  })

  it('lets beforeSendError scrub or drop a report, and does not listen when captureErrors is false', async () => {
    const net = network()
    const t = tracker({
      captureErrors: false,
      beforeSendError: (r) => (r.message.includes('drop me') ? null : { ...r, message: r.message.replace(/\S+@\S+/, '[email]') }),
    })
    t.error(new Error('no user kid@example.org'))
    t.error(new Error('drop me'))
    const unsilence = silence()
    window.dispatchEvent(new ErrorEvent('error', { error: new Error('global') }))
    unsilence()
    await vi.advanceTimersByTimeAsync(10)
    expect(errorReports(net).map((r) => r.body.message)).toEqual(['no user [email]'])
  })

  it('does not throw when reporting fails', async () => {
    network()
    vi.stubGlobal('fetch', () => Promise.reject(new TypeError('offline')))
    const t = tracker()
    expect(() => t.error(new Error('a'))).not.toThrow()
    expect(() => t.error(undefined)).not.toThrow()
    await settle()
  })

  it('finds the first component in both React component stack formats', () => {
    expect(firstComponent('\n    in Bomb (created by App)\n    in App')).toBe('Bomb')
    expect(firstComponent('\n    at Bomb (http://x/app.js:1:2)\n    at div')).toBe('Bomb')
    expect(firstComponent(undefined)).toBeUndefined()
  })
})

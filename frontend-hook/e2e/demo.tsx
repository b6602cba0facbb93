// Demo page for the end-to-end test (tests/e2e/test_browser_tracking.py): a tiny
// pushState router with two routes, a custom event button and a component that
// throws inside ActivityErrorBoundary. Built by `npm run build:e2e` into e2e-dist/.
import { useEffect, useState, type MouseEvent, type ReactNode } from 'react'
import { createRoot } from 'react-dom/client'
import { ActivityErrorBoundary, createTracker, useActivityTracking } from '../src/index'

// The e2e test signs a user in by setting window.waymarkDemoToken (a JWT) before the page loads.
const tracker = createTracker({
  endpoint: '/api/analytics',
  flushInterval: 1000,
  getToken: () => (window as { waymarkDemoToken?: string }).waymarkDemoToken ?? null,
})

const NAVIGATE = 'demo:navigate'

function usePath(): string {
  const [path, setPath] = useState(location.pathname)
  useEffect(() => {
    const update = () => setPath(location.pathname)
    addEventListener('popstate', update)
    addEventListener(NAVIGATE, update)
    return () => {
      removeEventListener('popstate', update)
      removeEventListener(NAVIGATE, update)
    }
  }, [])
  return path
}

function Link({ to, children }: { to: string; children: ReactNode }) {
  const go = (e: MouseEvent) => {
    e.preventDefault()
    history.pushState(null, '', to)
    dispatchEvent(new Event(NAVIGATE))
  }
  return (
    <a href={to} onClick={go} id={`link-${to.split('/').pop()}`}>
      {children}
    </a>
  )
}

function QuestBoard(): JSX.Element {
  throw new Error('quest board exploded')
}

/** Each page sets its title in an effect, as apps do; the hook records it after the render. */
function useTitle(title: string) {
  useEffect(() => {
    document.title = title
  }, [title])
}

function Home() {
  useTitle('Demo home')
  return (
    <section>
      <h1>Home</h1>
    </section>
  )
}

function Quests() {
  useTitle('Demo quests')
  const [broken, setBroken] = useState(false)
  return (
    <section>
      <h1>Quests</h1>
      <ActivityErrorBoundary tracker={tracker} fallback={<p id="fallback">Something went wrong</p>}>
        {broken ? <QuestBoard /> : <p>Quest board</p>}
      </ActivityErrorBoundary>
      <button id="break" onClick={() => setBroken(true)}>
        Break the quest board
      </button>
    </section>
  )
}

function App() {
  const path = usePath()
  const { trackEvent } = useActivityTracking({ tracker })
  const quests = path.endsWith('/quests')
  return (
    <main>
      <nav>
        <Link to="/demo/home">Home</Link> <Link to="/demo/quests">Quests</Link>
      </nav>
      {quests ? <Quests /> : <Home />}
      <button id="custom" onClick={() => trackEvent('demo_button_clicked', { colour: 'teal', clicks: 1 })}>
        Send a custom event
      </button>
      <p id="path">{path}</p>
    </main>
  )
}

createRoot(document.getElementById('root')!).render(<App />)

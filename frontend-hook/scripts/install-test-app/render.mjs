// Run by scripts/test-install.mjs in a throwaway app that installed @waymark/react-hook.
// Renders a component that calls the hook: with two copies of React this throws
// "Invalid hook call" / "Cannot read properties of null (reading 'useState')".
import { createElement as h } from 'react'
import { renderToString } from 'react-dom/server'
import { ActivityErrorBoundary, createTracker, useActivityTracking } from '@waymark/react-hook'
import { createTracker as createFromSubpath } from '@waymark/react-hook/tracker'

const errors = []
console.error = (...args) => errors.push(args.join(' '))
const tracker = createTracker({ endpoint: '/api/analytics' })
function Page() {
  const { trackEvent } = useActivityTracking({ tracker, location: { pathname: '/quests' } })
  return h('p', null, `trackEvent is a ${typeof trackEvent}`)
}
let html
try {
  html = renderToString(h(ActivityErrorBoundary, { tracker, fallback: 'failed' }, h(Page)))
} catch (e) {
  throw new Error(`render failed: ${e.message}\nReact said:\n${errors.join('\n')}`)
}
if (html !== '<p>trackEvent is a function</p>') throw new Error(`unexpected HTML: ${html}`)
if (errors.length) throw new Error(`React complained:\n${errors.join('\n')}`)
if (typeof createFromSubpath !== 'function') throw new Error('@waymark/react-hook/tracker has no createTracker')
console.log(`import: ${html}`)

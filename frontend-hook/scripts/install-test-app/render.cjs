// The same from CommonJS: require() of the ESM package (Node >= 20.19 / 22.12: require(esm)).
const { createElement: h } = require('react')
const { renderToString } = require('react-dom/server')
const { createTracker, useActivityTracking } = require('@waymark/react-hook')

function Page() {
  const { trackEvent } = useActivityTracking({ tracker: createTracker(), trackPageViews: false })
  return h('p', null, typeof trackEvent)
}
const html = renderToString(h(Page))
if (html !== '<p>function</p>') throw new Error(`unexpected HTML: ${html}`)
console.log(`require: ${html}`)

// Type-checked by scripts/test-install.mjs inside the throwaway app: the package's types resolve
// (and are not `any`) under moduleResolution bundler and nodenext.
import { createElement } from 'react'
import { ActivityErrorBoundary, createTracker, useActivityTracking, type ActivityEvent } from '@waymark/react-hook'
import { createTracker as createFromSubpath } from '@waymark/react-hook/tracker'

const tracker = createTracker({ endpoint: '/api/analytics', beforeSend: (e: ActivityEvent) => e })
createFromSubpath({ maxBatch: 10 })
// @ts-expect-error maxBatch is a number: proves the types are real, not `any`
createTracker({ maxBatch: 'many' })

export function Page() {
  const { trackEvent } = useActivityTracking({ tracker })
  trackEvent('confetti_clicked', { colour: 'gold' })
  return createElement(ActivityErrorBoundary, { tracker, fallback: null }, null)
}

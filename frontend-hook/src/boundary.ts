import { Component, type ErrorInfo as ReactErrorInfo, type ReactNode } from 'react'
import { getTracker } from './tracker.js'
import type { Tracker } from './types.js'

export interface ActivityErrorBoundaryProps {
  children?: ReactNode
  /** Shown instead of the children after an error; a function gets the error and a `reset`. */
  fallback?: ReactNode | ((error: Error, reset: () => void) => ReactNode)
  /** `component_name` of the report; default: the first component in React's component stack. */
  name?: string
  /** Default: the page's shared tracker. */
  tracker?: Tracker
}

/** First component named in a React component stack ("in Foo" or "at Foo"). */
export const firstComponent = (stack?: string | null) => stack?.match(/(?:in|at) ([\w$.]+)/)?.[1]

/** Error boundary that reports what it catches as a `javascript_error` to `{endpoint}/errors`. */
export class ActivityErrorBoundary extends Component<ActivityErrorBoundaryProps, { error: Error | null }> {
  state = { error: null as Error | null }

  static getDerivedStateFromError(error: Error) {
    return { error }
  }

  componentDidCatch(error: Error, info: ReactErrorInfo) {
    const stack = info.componentStack
    ;(this.props.tracker ?? getTracker()).error(error, {
      componentName: (this.props.name ?? firstComponent(stack))?.slice(0, 200),
      componentStack: stack,
    })
  }

  reset = () => this.setState({ error: null })

  render() {
    const { error } = this.state
    const { fallback = null, children } = this.props
    if (!error) return children ?? null
    return typeof fallback == 'function' ? fallback(error, this.reset) : fallback
  }
}

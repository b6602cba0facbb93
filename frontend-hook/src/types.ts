/** Event names of the Waymark taxonomy (backend/taxonomy.py in the Waymark repository), grouped by category. */
export type NavigationEvent = 'page_view' | 'route_change' | 'page_exit'
export type QuestEvent =
  | 'quest_viewed'
  | 'quest_started'
  | 'quest_abandoned'
  | 'quest_completed'
  | 'task_viewed'
  | 'task_completed'
  | 'evidence_uploaded'
export type BadgeEvent = 'badge_viewed' | 'badge_claimed' | 'badge_earned'
export type TutorEvent = 'tutor_opened' | 'tutor_message_sent' | 'tutor_safety_flag'
export type CommunityEvent = 'connection_request_sent' | 'connection_accepted' | 'profile_viewed'
export type AuthEvent = 'login_success' | 'login_failed' | 'logout' | 'session_expired'
export type ParentEvent = 'parent_dashboard_opened' | 'parent_evidence_uploaded'
export type ErrorEvent = 'javascript_error' | 'api_error' | 'network_error'

export type KnownEventType =
  | NavigationEvent
  | QuestEvent
  | BadgeEvent
  | TutorEvent
  | CommunityEvent
  | AuthEvent
  | ParentEvent
  | ErrorEvent

/**
 * Any event name: the known ones autocomplete, and any other string
 * (`[a-z][a-z0-9_]{0,63}`) is accepted too — the backend files it under `custom`.
 */
export type EventType = KnownEventType | (string & {})

export type EventData = Record<string, unknown>

/** Keys the analytics read for some known events (backend/taxonomy.py in the Waymark repository). */
export interface KnownEventData {
  quest_viewed: { quest_id: string; quest_title?: string }
  quest_started: { quest_id: string; quest_title?: string }
  quest_abandoned: { quest_id: string; quest_title?: string }
  quest_completed: { quest_id: string; quest_title?: string; pillar: string; xp: number }
  badge_viewed: { badge_id: string }
  badge_claimed: { badge_id: string }
  badge_earned: { badge_id: string }
}

/** The `event_data` a given event type takes. */
export type DataFor<T extends string> = T extends keyof KnownEventData
  ? KnownEventData[T] & EventData
  : EventData

/** One event as sent to `POST {endpoint}/activity/batch`. */
export interface ActivityEvent {
  event_type: EventType
  /** Client-generated uuid: retries of the same event are deduplicated by the server. */
  event_id: string
  /** ISO 8601 time the event happened in the browser. */
  occurred_at: string
  page_path?: string
  page_title?: string
  referrer?: string
  duration_ms?: number
  load_time_ms?: number
  event_data?: EventData
}

/** Error report as sent to `POST {endpoint}/errors`. */
export interface ErrorReport {
  error_type: 'javascript_error'
  message: string
  stack?: string
  component_name?: string
  page_path?: string
  event_data?: { component_stack?: string }
}

export interface TrackerOptions {
  /** Base URL of the Waymark analytics API. Default `/api/analytics`. */
  endpoint?: string
  /**
   * Returns the signed-in user's access token (or null). Sync or async.
   * With a token, batches go by `fetch` with `Authorization: Bearer …`.
   */
  getToken?: () => string | null | undefined | Promise<string | null | undefined>
  /** Scrub or drop an event before it is queued: return the event (changed or not) or null to drop it. */
  beforeSend?: (event: ActivityEvent) => ActivityEvent | null | undefined | false
  /** Same for error reports. */
  beforeSendError?: (report: ErrorReport) => ErrorReport | null | undefined | false
  /** Milliseconds between the first queued event and the flush. Default 5000. */
  flushInterval?: number
  /** Events per request, and queue length that triggers a flush. Default 20, at most 100. */
  maxBatch?: number
  /** Send nothing when the browser says Do Not Track or Global Privacy Control. Default true. */
  respectDoNotTrack?: boolean
  /** Report uncaught errors and unhandled promise rejections. Default true. */
  captureErrors?: boolean
}

export interface ErrorInfo {
  componentName?: string
  componentStack?: string | null
}

export interface Tracker {
  /** Queue one event. Never throws. */
  track<T extends EventType>(type: T, data?: DataFor<T>, fields?: Partial<ActivityEvent>): void
  /** Record a page view of `path` (default `location.pathname`); closes the previous page with `page_exit`. */
  page(path?: string): void
  /** Report an error to `{endpoint}/errors` (at most once per distinct error). */
  error(error: unknown, info?: ErrorInfo): void
  /** Send what is queued now. `hide` = the page is going away: use `sendBeacon`. */
  flush(hide?: boolean): void
  /** Remove listeners and timers after a final flush. */
  destroy(): void
}

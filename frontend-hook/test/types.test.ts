// Type-level checks (run by `npm run typecheck`, part of `npm run build`) plus the runtime
// behaviour they promise: known event names take their documented event_data.
import { describe, expect, it } from 'vitest'
import type { ActivityEvent, DataFor, EventType, KnownEventType } from '../src/index'
import { network, settle, tracker } from './helpers'

describe('typed event names', () => {
  it('accepts known names with their data, and any other string as a custom event', async () => {
    const net = network()
    const t = tracker()
    t.track('quest_completed', { quest_id: 'q1', pillar: 'art', xp: 10 })
    t.track('badge_earned', { badge_id: 'b1' })
    t.track('my_own_event', { anything: [1, 2] })
    // @ts-expect-error quest_completed needs pillar and xp (DESIGN §8)
    t.track('quest_completed', { quest_id: 'q2' })
    // @ts-expect-error badge events carry badge_id
    t.track('badge_claimed', { quest_id: 'q' })
    t.flush()
    await settle()
    expect(net.fetchedEvents().map((e) => e.event_type)).toEqual([
      'quest_completed',
      'badge_earned',
      'my_own_event',
      'quest_completed', // types are advice: the tracker still sends it
      'badge_claimed',
    ])
    const known: KnownEventType = 'page_view'
    const custom: EventType = 'anything_else'
    const data: DataFor<'quest_viewed'> = { quest_id: 'q' }
    const event: Pick<ActivityEvent, 'event_type'> = { event_type: custom }
    expect([known, event.event_type, data.quest_id]).toEqual(['page_view', 'anything_else', 'q'])
  })
})

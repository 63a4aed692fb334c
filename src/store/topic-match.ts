/**
 * Topic matching for subscriptions, shared by the in-process store (the Redis store's publish
 * script has the same rule in Lua, redis-notification-scripts.ts).
 */
import type { TopicFilter } from './notification-store';

/**
 * Whether a subscription with these filters takes an event on `topic`: no filter takes every
 * topic; a Simple filter (exact false) takes its topic and every child below it (the `/` keeps
 * `TaskStateChangedX` out of `TaskStateChanged`); a Concrete one takes only its own topic.
 */
export function topicMatches(filters: readonly TopicFilter[], topic: string): boolean {
  return (
    filters.length === 0 ||
    filters.some((f) => topic === f.path || (!f.exact && topic.startsWith(`${f.path}/`)))
  );
}

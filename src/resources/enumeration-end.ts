/**
 * EnumerationEnd for contexts that expire with an EndTo (allowed by enumeration.endToHosts): the
 * expiry is in the termination schedule, so exactly one proxy of the farm sends it, once, even if
 * the proxy that started the enumeration is gone. One attempt, bounded in time, no redirects: a
 * consumer that cannot be reached loses a courtesy, never data (unacknowledged outputs go back to
 * the session when their page lease lapses).
 */
import { log } from '../log';
import { CONTENT_TYPE, type EnvelopeWriter } from '../soap/envelope';
import type { StateStore } from '../store/store';
import { enumerationEnd } from './enumeration-codecs';
import { enumerationKey } from './enumeration';

export type EndOutcome = 'notified' | 'unreachable' | 'gone' | 'early';

export function enumerationEnder(
  store: StateStore,
  write: EnvelopeWriter,
  timeoutMs = 5000,
): (id: string) => Promise<EndOutcome> {
  return async (id) => {
    const rec = await store.getEnumeration(id);
    if (!rec) return 'gone';
    // Renewed meanwhile (its new time is scheduled too): not yet.
    if (rec.expiresAt > Date.now()) {
      await store.scheduleTermination(enumerationKey(id), rec.expiresAt);
      return 'early';
    }
    await store.deleteEnumeration(id);
    if (!rec.endTo) return 'gone';
    const version = rec.soapVersion ?? '1.1';
    const m = enumerationEnd(rec.version, `${id}.${rec.seq}.-`, rec.endTo);
    const headers: Record<string, string> =
      version === '1.1'
        ? { 'content-type': CONTENT_TYPE['1.1'], soapaction: `"${m.action}"` }
        : { 'content-type': `${CONTENT_TYPE['1.2']}; action="${m.action}"` };
    try {
      const res = await fetch(rec.endTo.address, {
        method: 'POST',
        headers,
        body: write(version, m.body, m.header),
        redirect: 'error',
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.arrayBuffer();
      return 'notified';
    } catch (e) {
      log.warn('could not send EnumerationEnd to an EndTo; the consumer finds the context expired', {
        host: new URL(rec.endTo.address).host,
        error: e instanceof Error ? e.message : String(e),
      });
      return 'unreachable';
    }
  };
}

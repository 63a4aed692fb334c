/**
 * WS-Enumeration over a session's task outputs (Enumerate at the session's address) and over the
 * consumer's sessions (Enumerate at …/sessions), in the 2004/09 and the 2011 namespaces.
 *
 * Contexts live in the shared store, so any proxy of the farm answers the next Pull. An output
 * page is a lease (the leased fetch of fetchTaskOutput): the next Pull, or Release, acknowledges
 * it, so an output leaves the proxy only once the consumer has asked for more. A Pull whose reply
 * was lost is sent again with the same context and gets the same page (the page's lease is found
 * by its repeat key). The context a consumer holds is `{id}.{page}.{token}`: the random id of the
 * stored context, the number of the page it follows, and that page's lease token (for sessions,
 * the offset in the snapshot).
 */
import { randomBytes } from 'node:crypto';
import { GatewayError, type FaultSubcode } from '../errors/catalogue';
import type { ResolvedCall } from '../pipeline/context';
import type { Handler, TaskOutputItem } from '../pipeline/operation';
import type { OperationDeps } from '../operations/deps';
import { ownedSession } from '../operations/ownership';
import { leasedFetch, render } from '../operations/task-output';
import { WSEN_2004, WSEN_2011, XPATH_10, XPATH_10_WSEN_2011 } from '../soap/ws-namespaces';
import { escapeText } from '../soap/xml';
import type { EnumerationRecord, EnumerationState } from '../store/store';
import { addressedResource, referenceParameter } from './address';
import { addDuration, parseDateTime } from './codecs';
import type { EnumerationVersion, ExpiresAnswer, PageAnswer } from './enumeration-codecs';
import { defaultEngine, sessionDocument } from './handlers';
import { checkExpression, XPathQueryError } from './xpath/xpath-limits';

export interface EnumerationConfig {
  /** Expiry of a context whose Enumerate asks for none. */
  defaultExpiresMs: number;
  /** Longest expiry granted (a longer request gets this, unless it says BestEffort="false"). */
  maxExpiresMs: number;
  /** Most items in one page, whatever MaxElements / MaxItems asks. */
  maxElements: number;
  /** Longest MaxTime honoured: how long a Pull may wait for the first output. */
  maxTimeMs: number;
  /** How long a page's outputs wait for the next Pull (or Release) before going back to the session. */
  pageLeaseMs: number;
  /** Most sessions in one snapshot of the consumer's sessions. */
  maxSessions: number;
  /**
   * Hosts an EndTo may name (EnumerationEnd is sent there when a context expires). Empty: EndTo
   * is not supported, so no consumer can make the proxy call an address of its choosing.
   */
  endToHosts: string[];
}

export const DEFAULT_ENUMERATION: EnumerationConfig = {
  defaultExpiresMs: 600_000,
  maxExpiresMs: 86_400_000,
  maxElements: 1000,
  maxTimeMs: 60_000,
  pageLeaseMs: 120_000,
  maxSessions: 10_000,
  endToHosts: [],
};

interface Filter {
  dialect?: string;
  expression: string;
  elementContent: boolean;
  namespaces: Record<string, string>;
}
interface Start {
  endTo?: { address: string; ns: string; parameters: string };
  expires?: { value: string; bestEffort?: boolean };
  filter?: Filter;
}
export interface EnumerateArgs {
  version: EnumerationVersion;
  start?: Start;
  context?: string;
  optimize: boolean;
  maxTime?: string;
  max?: number;
  maxCharacters?: number;
}
export interface ContextArgs {
  version: EnumerationVersion;
  context: string;
  expires?: { value: string; bestEffort?: boolean };
}

const NS: Record<EnumerationVersion, string> = { '2004': WSEN_2004, '2011': WSEN_2011 };

/** The key of a context's expiry in the termination schedule (see lifetime/reaper.ts). */
export function enumerationKey(id: string): string {
  return `enumeration:${id}`;
}

/** A standard's fault code in the request's own namespace. */
function subcode(version: EnumerationVersion, local: string): FaultSubcode {
  return { ns: NS[version], prefix: 'wsen', local };
}

function contextInvalid(version: EnumerationVersion, why: string): GatewayError {
  return new GatewayError('SSP_ENUMERATION_CONTEXT_INVALID', why, {
    subcode: subcode(version, 'InvalidEnumerationContext'),
  });
}

const CURSOR = /^([A-Za-z0-9_-]{16,64})\.(\d{1,9})\.([A-Za-z0-9_.-]{1,64})$/;

function parseCursor(
  version: EnumerationVersion,
  cursor: string,
): { id: string; page: number; mark: string } {
  const m = CURSOR.exec(cursor);
  if (!m) throw contextInvalid(version, 'the EnumerationContext is not one this proxy handed out');
  return { id: m[1]!, page: Number(m[2]), mark: m[3]! };
}

/** The items of a page must fit MaxCharacters: how many of them do. */
function fitting(sizes: number[], maxCharacters: number | undefined): number {
  if (maxCharacters === undefined) return sizes.length;
  let used = 0;
  let k = 0;
  for (const n of sizes) {
    if (used + n > maxCharacters) break;
    used += n;
    k++;
  }
  return k;
}

/** An xs:duration of whole seconds (rounded up), as granted expiries are written. */
function durationOf(ms: number): string {
  return `PT${Math.max(1, Math.ceil(ms / 1000))}S`;
}

export function enumerationHandlers(
  deps: OperationDeps,
  encodeOutput: (item: TaskOutputItem) => string,
): {
  Enumerate: Handler<EnumerateArgs, PageAnswer>;
  Pull: Handler<EnumerateArgs, PageAnswer>;
  Renew: Handler<ContextArgs, ExpiresAnswer>;
  GetStatus: Handler<ContextArgs, ExpiresAnswer>;
  Release: Handler<ContextArgs, Record<string, never>>;
} {
  const { store } = deps;
  const cfg = deps.enumeration ?? DEFAULT_ENUMERATION;

  /** A context that ended normally: gone, and no EnumerationEnd is due for it. */
  async function ended(id: string, rec: EnumerationRecord): Promise<void> {
    await store.deleteEnumeration(id);
    if (rec.endTo) await store.scheduleTermination(enumerationKey(id), null);
  }

  /** An EndTo is used only at a host the operator allows; otherwise the standard's refusal. */
  function allowedEndTo(
    version: EnumerationVersion,
    endTo: { address: string; ns: string; parameters: string },
  ): { address: string; ns: string; parameters: string } | undefined {
    if (cfg.endToHosts.length === 0) {
      // 2004/09 has no fault for it: the EndTo is ignored, and no EnumerationEnd is sent.
      if (version === '2004') return undefined;
      throw new GatewayError('SSP_ENUMERATION_ENDTO_UNSUPPORTED', 'EndTo is not supported', {
        subcode: subcode(version, 'EndToNotSupported'),
      });
    }
    let url: URL | undefined;
    try {
      url = new URL(endTo.address);
    } catch {
      url = undefined;
    }
    const host = url?.hostname.toLowerCase().replace(/^\[|\]$/g, '');
    if (!url || !/^https?:$/.test(url.protocol) || !cfg.endToHosts.some((h) => h.toLowerCase() === host)) {
      throw new GatewayError(
        'SSP_ENUMERATION_ENDTO_REFUSED',
        `EndTo '${endTo.address.slice(0, 100)}' is not an http(s) address at an allowed host`,
        version === '2011' ? { subcode: subcode(version, 'UnusableEPR') } : {},
      );
    }
    return endTo;
  }

  /** When a requested expiry ends, as the consumer will be told (same type as asked). */
  function grant(
    version: EnumerationVersion,
    asked: { value: string; bestEffort?: boolean } | undefined,
    now: number,
  ): { at: number; text: string } {
    if (!asked) return { at: now + cfg.defaultExpiresMs, text: durationOf(cfg.defaultExpiresMs) };
    const bad = (why: string): GatewayError =>
      new GatewayError('SSP_ENUMERATION_EXPIRES_INVALID', why, {
        subcode: subcode(
          version,
          version === '2004' ? 'InvalidExpirationTime' : 'UnsupportedExpirationValue',
        ),
      });
    const isDuration = /^-?P/.test(asked.value);
    let at: number;
    try {
      at = isDuration ? addDuration(now, asked.value, 'Expires') : parseDateTime(asked.value, 'Expires');
    } catch (e) {
      throw bad(e instanceof Error ? e.message : String(e));
    }
    if (at <= now) throw bad(`the expiry ${asked.value} is not in the future`);
    if (at > now + cfg.maxExpiresMs) {
      if (asked.bestEffort === false) {
        throw bad(
          `the expiry ${asked.value} is beyond the longest this proxy grants (${durationOf(cfg.maxExpiresMs)})`,
        );
      }
      at = now + cfg.maxExpiresMs;
    }
    return { at, text: isDuration ? durationOf(at - now) : new Date(at).toISOString() };
  }

  /** The context named by a cursor, if it is the caller's and alive. */
  async function contextOf(
    ctx: ResolvedCall,
    version: EnumerationVersion,
    cursor: string,
  ): Promise<{ id: string; page: number; mark: string; rec: EnumerationState }> {
    const c = parseCursor(version, cursor);
    const rec = await store.getEnumeration(c.id);
    // Another consumer's context is as unknown as a forged one.
    if (!rec || rec.consumer !== ctx.consumer.id) {
      throw contextInvalid(version, 'the enumeration context is unknown, released or expired');
    }
    if (rec.version !== version) {
      throw contextInvalid(
        version,
        `the enumeration was started in the ${rec.version} namespace; continue it there`,
      );
    }
    if (rec.expiresAt <= Date.now()) throw contextInvalid(version, 'the enumeration context has expired');
    return { ...c, rec };
  }

  /** One page of a session's outputs after page `page`; `mark` is that page's lease token. */
  async function outputPage(
    ctx: ResolvedCall,
    version: EnumerationVersion,
    id: string,
    rec: EnumerationRecord,
    page: number,
    mark: string,
    args: EnumerateArgs,
    viaPull: boolean,
  ): Promise<PageAnswer> {
    const sessionId = rec.sessionId!;
    const session = await ownedSession(deps, ctx, sessionId);
    const step = await store.advanceEnumeration(id, page);
    if (step.step === 'stale') {
      throw contextInvalid(
        version,
        'this EnumerationContext is not the latest; send the one the last reply carried',
      );
    }
    const max = Math.min(args.max ?? 1, cfg.maxElements);
    let waitMs = 0;
    if (args.maxTime !== undefined) {
      const until = addDuration(0, args.maxTime, 'MaxTime');
      if (!(until > 0)) throw new GatewayError('SSP_INVALID_ARGUMENT', 'MaxTime must be a positive duration');
      waitMs = Math.min(until, cfg.maxTimeMs);
    }
    const fetched = await leasedFetch(deps, ctx, {
      sessionId,
      session,
      cluster: session.cluster,
      acknowledge: mark === '-' ? undefined : mark,
      countMax: max,
      waitMs,
      leaseMs: cfg.pageLeaseMs,
      reclaimAll: false,
      repeatKey: `enum:${id}:${page + 1}:${step.attempt}`,
      repeatTtlMs: Math.max(1000, rec.expiresAt - Date.now() + 60_000),
    });
    if (fetched.repeat) ctx.repeated = true;
    const here = `${id}.${page}.${mark}`;
    if (fetched.outputs.length === 0) {
      // Nothing handed out: the same page number is fetched afresh next time.
      await store.rewindEnumeration(id, page + 1);
      const s = await deps.router.call(ctx, session.cluster, 'sessionStatus', { sessionId });
      if (s.pending + s.running + s.outputsReady === 0) {
        // Every task has run and every output was acknowledged by a later Pull: the end.
        await ended(id, rec);
        return { endOfSequence: true, page: true };
      }
      if (viaPull && version === '2004' && waitMs > 0) {
        throw new GatewayError(
          'SSP_ENUMERATION_TIMED_OUT',
          `no output arrived within MaxTime (${args.maxTime})`,
          {
            subcode: subcode('2004', 'TimedOut'),
          },
        );
      }
      return { context: here, page: true };
    }
    const items = fetched.outputs.map(render);
    const k = fitting(
      items.map((o) => encodeOutput(o).length),
      args.maxCharacters,
    );
    if (k < items.length) await store.trimLease(sessionId, fetched.token, k);
    if (k === 0) {
      await store.rewindEnumeration(id, page + 1);
      throw new GatewayError(
        'SSP_ENUMERATION_ITEM_TOO_LARGE',
        `the next output needs ${encodeOutput(items[0]!).length} characters; MaxCharacters is ${args.maxCharacters}`,
      );
    }
    return { context: `${id}.${page + 1}.${fetched.token}`, outputs: items.slice(0, k), page: true };
  }

  /** One page of the consumer's sessions from offset `mark`, filtered, as properties documents. */
  async function sessionPage(
    ctx: ResolvedCall,
    version: EnumerationVersion,
    id: string,
    rec: EnumerationRecord,
    page: number,
    mark: string,
    args: EnumerateArgs,
  ): Promise<PageAnswer> {
    const ids = rec.sessions ?? [];
    let offset = Number(mark === '-' ? 0 : mark);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > ids.length) {
      throw contextInvalid(version, 'the EnumerationContext is not one this proxy handed out');
    }
    const max = Math.min(args.max ?? 1, cfg.maxElements);
    const scanLimit = offset + Math.max(max * 10, 100);
    const items: string[] = [];
    let used = 0;
    const engine = deps.resources?.xpath ?? defaultEngine();
    while (offset < ids.length && items.length < max && offset < scanLimit) {
      const sid = ids[offset]!;
      const s = await store.getSession(sid);
      if (!s || s.owner !== ctx.consumer.id) {
        offset++;
        continue;
      }
      let doc;
      try {
        doc = await sessionDocument(deps, ctx, sid, s);
      } catch (e) {
        // Closed on the grid meanwhile: not part of the enumeration any more.
        if (e instanceof GatewayError && e.code === 'SSP_UNKNOWN_SESSION') {
          offset++;
          continue;
        }
        throw e;
      }
      if (rec.filter && !(await matches(engine, doc.xml, rec.filter, version))) {
        offset++;
        continue;
      }
      if (args.maxCharacters !== undefined && used + doc.xml.length > args.maxCharacters) {
        if (items.length === 0) {
          throw new GatewayError(
            'SSP_ENUMERATION_ITEM_TOO_LARGE',
            `the next session needs ${doc.xml.length} characters; MaxCharacters is ${args.maxCharacters}`,
          );
        }
        break;
      }
      used += doc.xml.length;
      items.push(doc.xml);
      offset++;
    }
    if (offset >= ids.length) {
      await ended(id, rec);
      return { items, endOfSequence: true, page: true };
    }
    return { context: `${id}.${page + 1}.${offset}`, items, page: true };
  }

  async function matches(
    engine: ReturnType<typeof defaultEngine>,
    document: string,
    filter: { expression: string; namespaces: Record<string, string> },
    version: EnumerationVersion,
  ): Promise<boolean> {
    try {
      const r = await engine.evaluate({
        document,
        expression: filter.expression,
        namespaces: filter.namespaces,
      });
      if (r.kind === 'nodes') return r.items.length > 0;
      if (r.kind === 'boolean') return r.value === 'true';
      if (r.kind === 'number') return r.value !== '0' && r.value !== 'NaN';
      return r.value !== '';
    } catch (e) {
      if (!(e instanceof XPathQueryError)) throw e;
      throw new GatewayError('SSP_ENUMERATION_FILTER_INVALID', e.message, {
        subcode: subcode(version, 'CannotProcessFilter'),
      });
    }
  }

  function checkFilter(version: EnumerationVersion, filter: Filter, source: 'outputs' | 'sessions'): void {
    if (source === 'outputs') {
      throw new GatewayError(
        'SSP_ENUMERATION_FILTER_UNSUPPORTED',
        'an enumeration of task outputs takes no filter',
        {
          subcode: subcode(version, 'FilteringNotSupported'),
        },
      );
    }
    const accepted = version === '2004' ? [XPATH_10] : [XPATH_10_WSEN_2011, XPATH_10];
    if (filter.dialect !== undefined && !accepted.includes(filter.dialect)) {
      throw new GatewayError(
        'SSP_ENUMERATION_DIALECT_UNAVAILABLE',
        `the filter dialect '${filter.dialect.slice(0, 100)}' is not supported`,
        {
          subcode: subcode(version, 'FilterDialectRequestedUnavailable'),
          extraDetail: accepted
            .map(
              (d) =>
                `<wsen:SupportedDialect xmlns:wsen="${NS[version]}">${escapeText(d)}</wsen:SupportedDialect>`,
            )
            .join(''),
        },
      );
    }
    const why = filter.elementContent
      ? 'an XPath filter is text, not elements'
      : filter.expression.trim() === ''
        ? 'the filter is empty'
        : undefined;
    try {
      if (why) throw new XPathQueryError('invalid', why);
      checkExpression(filter.expression, filter.namespaces);
    } catch (e) {
      if (!(e instanceof XPathQueryError)) throw e;
      throw new GatewayError('SSP_ENUMERATION_FILTER_INVALID', e.message, {
        subcode: subcode(
          version,
          filter.expression.trim() === '' && version === '2011' ? 'EmptyFilter' : 'CannotProcessFilter',
        ),
      });
    }
  }

  /** Where an Enumerate goes: a session's outputs (its address, or its reference parameter), or the consumer's sessions. */
  function sourceOf(ctx: ResolvedCall): { source: 'outputs'; sessionId: string } | { source: 'sessions' } {
    const r = ctx.resource;
    const keyed = referenceParameter(ctx, 'session') !== undefined;
    if (r?.kind === 'session' && r.id === undefined && !keyed) return { source: 'sessions' };
    // A session's address, or its reference parameter at the service address; a mismatch between
    // the two is addressedResource's fault, not guessed here.
    const target = r?.kind === 'connection' || (!r && !keyed) ? undefined : addressedResource(ctx);
    if (!target || target.kind !== 'session') {
      throw new GatewayError(
        'SSP_INVALID_ARGUMENT',
        'Enumerate at a session’s address (…/sessions/{id}) for its task outputs, or at …/sessions for your sessions',
      );
    }
    return { source: 'outputs', sessionId: target.id };
  }

  async function continueFrom(ctx: ResolvedCall, args: EnumerateArgs, viaPull: boolean): Promise<PageAnswer> {
    const { id, page, mark, rec } = await contextOf(ctx, args.version, args.context!);
    return rec.source === 'outputs'
      ? outputPage(ctx, args.version, id, rec, page, mark, args, viaPull)
      : sessionPage(ctx, args.version, id, rec, page, mark, args);
  }

  return {
    async Enumerate(args, ctx) {
      const version = args.version;
      const start = args.start;
      // 2011: an Enumerate with a context goes on with it (the 2004/09 Pull).
      if (!start) return continueFrom(ctx, args, false);
      const endTo = start.endTo ? allowedEndTo(version, start.endTo) : undefined;
      const src = sourceOf(ctx);
      if (start.filter) checkFilter(version, start.filter, src.source);
      const now = Date.now();
      const granted = grant(version, start.expires, now);
      const id = randomBytes(16).toString('base64url');
      const rec: EnumerationRecord = {
        consumer: ctx.consumer.id,
        version,
        source: src.source,
        expiresAt: granted.at,
        ...(ctx.policy ? { serviceVersion: ctx.policy.version.version.uri } : {}),
        ...(start.filter
          ? { filter: { expression: start.filter.expression, namespaces: start.filter.namespaces } }
          : {}),
        ...(endTo ? { endTo, soapVersion: ctx.soapVersion } : {}),
      };
      if (src.source === 'outputs') {
        await ownedSession(deps, ctx, src.sessionId);
        rec.sessionId = src.sessionId;
      } else {
        rec.sessions = await store.listSessions(ctx.consumer.id, cfg.maxSessions);
      }
      await store.putEnumeration(id, rec);
      // Its expiry is scheduled like a termination, so that one proxy of the farm sends EnumerationEnd.
      if (endTo) await store.scheduleTermination(enumerationKey(id), rec.expiresAt);
      const first = `${id}.0.-`;
      const wantsPage = args.optimize && (args.max ?? (version === '2004' ? 1 : 0)) > 0;
      if (!wantsPage) return { context: first, expires: granted.text, page: false };
      const answer =
        rec.source === 'outputs'
          ? await outputPage(ctx, version, id, rec, 0, '-', args, false)
          : await sessionPage(ctx, version, id, rec, 0, '-', args);
      // The 2004/09 EnumerateResponse must carry a context, even one that has already ended.
      const context = answer.context ?? (version === '2004' ? first : undefined);
      return { ...answer, ...(context !== undefined ? { context } : {}), expires: granted.text };
    },

    async Pull(args, ctx) {
      return continueFrom(ctx, args, true);
    },

    async Renew(args, ctx) {
      const { rec, id } = await contextOf(ctx, args.version, args.context);
      const granted = grant(args.version, args.expires, Date.now());
      if (!(await store.renewEnumeration(id, granted.at))) {
        throw contextInvalid(args.version, 'the enumeration context ended while it was renewed');
      }
      if (rec.endTo) await store.scheduleTermination(enumerationKey(id), granted.at);
      return { expires: granted.text, context: args.context };
    },

    async GetStatus(args, ctx) {
      const { rec } = await contextOf(ctx, args.version, args.context);
      return { expires: durationOf(rec.expiresAt - Date.now()) };
    },

    async Release(args, ctx) {
      const { id, mark, rec } = await contextOf(ctx, args.version, args.context);
      // The page the consumer holds is acknowledged: it asked for no more.
      if (rec.source === 'outputs' && mark !== '-') await store.acknowledge(rec.sessionId!, mark);
      await ended(id, rec);
      return {};
    },
  };
}

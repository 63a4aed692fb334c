/**
 * Sessions and connections as WS-Resources: WS-ResourceProperties 1.2 (get one, several, the
 * whole document, or query it with XPath 1.0) and WS-ResourceLifetime 1.2 (Destroy,
 * SetTerminationTime). The resource comes from the request's address (address.ts); ownership
 * is checked exactly as for the Symphony API operations, and failures are reported with the
 * standards' faults.
 */
import { GatewayError } from '../errors/catalogue';
import type { ResolvedCall } from '../pipeline/context';
import type { Handler } from '../pipeline/operation';
import type { OperationDeps } from '../operations/deps';
import { ownedConnection, ownedSession } from '../operations/ownership';
import { connectionHandlers } from '../operations/connection';
import { sessionHandlers, stateName } from '../operations/session';
import { XPATH_10 } from '../soap/ws-namespaces';
import { addressedResource } from './address';
import { addDuration, parseDateTime, type RequestedTermination } from './codecs';
import { connectionProperties, sessionProperties, type PropertiesDocument } from './properties';
import { XPathEngine, XPathQueryError } from './xpath/xpath-engine';
import type { SessionRecord } from '../store/store';

export interface ItemsAnswer {
  items: string[];
}
export interface QueryAnswer {
  items?: string[];
  text?: string;
}
export interface TerminationAnswer {
  newTerminationTime: string | null;
  currentTime: string;
}

const GRID_DOWN = new Set(['SSP_GRID_UNAVAILABLE', 'SSP_GRID_TIMEOUT', 'SSP_GRID_BUSY']);
const GONE = new Set(['SSP_UNKNOWN_SESSION', 'SSP_UNKNOWN_CONNECTION']);

/** The Symphony API's faults, as the resource port types declare them. */
function asResourceFault(e: unknown, destroying: boolean): unknown {
  if (!(e instanceof GatewayError)) return e;
  if (GONE.has(e.code)) return new GatewayError('SSP_RESOURCE_UNKNOWN', e.message, { cause: e });
  if (GRID_DOWN.has(e.code)) {
    if (destroying) return new GatewayError('SSP_RESOURCE_NOT_DESTROYED', e.message, { cause: e });
    return new GatewayError(e.code, e.message, {
      cause: e,
      detail: 'wsrf-r:ResourceUnavailableFault',
      ...(e.retryAfterSeconds !== undefined ? { retryAfterSeconds: e.retryAfterSeconds } : {}),
    });
  }
  return e;
}

function resourceOp<A, R>(destroying: boolean, run: Handler<A, R>): Handler<A, R> {
  return async (args, ctx) => {
    try {
      return await run(args, ctx);
    } catch (e) {
      throw asResourceFault(e, destroying);
    }
  };
}

/** A session's properties document: one grid status and one read of its termination. */
export async function sessionDocument(
  deps: Pick<OperationDeps, 'router' | 'lifetimes'>,
  ctx: ResolvedCall,
  id: string,
  rec: SessionRecord,
): Promise<PropertiesDocument> {
  const [s, term] = await Promise.all([
    deps.router.call(ctx, rec.cluster, 'sessionStatus', { sessionId: id }),
    deps.lifetimes.termination('session', id),
  ]);
  return sessionProperties({
    sessionId: id,
    state: stateName(s.state),
    name: s.name,
    priority: s.priority,
    application: rec.application,
    cluster: rec.cluster,
    connectionId: rec.connectionId,
    owner: ctx.consumer.subject ?? ctx.consumer.id,
    pending: s.pending,
    running: s.running,
    done: s.done,
    failed: s.failed,
    outputsWaiting: s.outputsReady,
    createdMs: rec.created,
    nowMs: Date.now(),
    terminationMs: term.atMs,
  });
}

let sharedEngine: XPathEngine | undefined;
/** Embedders and tests that give no engine share one, started on first use. */
export function defaultEngine(): XPathEngine {
  return (sharedEngine ??= new XPathEngine());
}

export function resourceHandlers(deps: OperationDeps): {
  GetResourcePropertyDocument: Handler<Record<string, never>, ItemsAnswer>;
  GetResourceProperty: Handler<{ property: string }, ItemsAnswer>;
  GetMultipleResourceProperties: Handler<{ properties: string[] }, ItemsAnswer>;
  QueryResourceProperties: Handler<
    { dialect: string; expression: string; elementContent: boolean; namespaces: Record<string, string> },
    QueryAnswer
  >;
  Destroy: Handler<Record<string, never>, Record<string, never>>;
  SetTerminationTime: Handler<RequestedTermination, TerminationAnswer>;
} {
  const { lifetimes } = deps;
  const sessions = sessionHandlers(deps);
  const connections = connectionHandlers(deps);
  const maxTerminationMs = deps.resources?.maxTerminationMs ?? 0;

  /** One snapshot of the addressed resource's properties. */
  async function snapshot(ctx: ResolvedCall): Promise<PropertiesDocument> {
    const r = addressedResource(ctx);
    if (r.kind === 'session') return sessionDocument(deps, ctx, r.id, await ownedSession(deps, ctx, r.id));
    const rec = await ownedConnection(deps, ctx, r.id);
    const term = await lifetimes.termination('connection', r.id);
    return connectionProperties({
      connectionId: r.id,
      application: rec.application,
      cluster: rec.cluster,
      owner: ctx.consumer.subject ?? ctx.consumer.id,
      createdMs: rec.created,
      nowMs: Date.now(),
      terminationMs: term.atMs,
    });
  }

  function pick(doc: PropertiesDocument, qname: string): string[] {
    if (!doc.declared.has(qname)) {
      throw new GatewayError('SSP_INVALID_PROPERTY_QNAME', `${qname} is not a property of this resource`);
    }
    return doc.properties.filter((p) => p.qname === qname).map((p) => p.xml);
  }

  return {
    GetResourcePropertyDocument: resourceOp(false, async (_args, ctx) => {
      return { items: [(await snapshot(ctx)).xml] };
    }),

    GetResourceProperty: resourceOp(false, async (args, ctx) => {
      // Ownership first (snapshot), so that a foreign resource is never told apart by its names.
      const doc = await snapshot(ctx);
      return { items: pick(doc, args.property) };
    }),

    GetMultipleResourceProperties: resourceOp(false, async (args, ctx) => {
      const doc = await snapshot(ctx);
      return { items: args.properties.flatMap((q) => pick(doc, q)) };
    }),

    QueryResourceProperties: resourceOp(false, async (args, ctx) => {
      if (args.dialect !== XPATH_10) {
        throw new GatewayError(
          'SSP_UNKNOWN_QUERY_DIALECT',
          `the query dialect '${args.dialect.slice(0, 100)}' is not supported`,
        );
      }
      if (args.elementContent) {
        throw new GatewayError('SSP_INVALID_QUERY', 'an XPath 1.0 QueryExpression is text, not elements');
      }
      const doc = await snapshot(ctx);
      const engine = deps.resources?.xpath ?? defaultEngine();
      let r;
      try {
        r = await engine.evaluate({
          document: doc.xml,
          expression: args.expression,
          namespaces: args.namespaces,
        });
      } catch (e) {
        if (!(e instanceof XPathQueryError)) throw e;
        throw new GatewayError(e.kind === 'invalid' ? 'SSP_INVALID_QUERY' : 'SSP_QUERY_FAILED', e.message);
      }
      if (r.kind !== 'nodes') return { text: r.value };
      // Text and attribute nodes answer with their value, elements as themselves (the response is mixed).
      if (r.items.every((i) => i.kind === 'element')) return { items: r.items.map((i) => i.xml) };
      return { text: r.items.map((i) => (i.kind === 'text' ? i.xml : '')).join('') };
    }),

    Destroy: resourceOp(true, async (_args, ctx) => {
      const r = addressedResource(ctx);
      if (r.kind === 'session') {
        await sessions.closeSession({ sessionId: r.id, closeFlags: 'DestroyOnClose' }, ctx);
      } else {
        await connections.closeConnection({ connectionId: r.id }, ctx);
      }
      return {};
    }),

    SetTerminationTime: resourceOp(false, async (args, ctx) => {
      if (deps.resources?.clientTerminationTimes === false) {
        // Still only for the owner: a foreign resource is not told apart by this refusal.
        const r = addressedResource(ctx);
        if (r.kind === 'session') await ownedSession(deps, ctx, r.id);
        else await ownedConnection(deps, ctx, r.id);
        throw new GatewayError(
          'SSP_TERMINATION_TIME_REJECTED',
          'this proxy does not let clients set termination times: the idle lease of the application applies',
        );
      }
      const now = Date.now();
      const at =
        args.kind === 'infinite'
          ? null
          : args.kind === 'time'
            ? parseDateTime(args.text, 'RequestedTerminationTime')
            : addDuration(now, args.text, 'RequestedLifetimeDuration');
      if (at !== null && at <= now) {
        throw new GatewayError(
          'SSP_TERMINATION_TIME_INVALID',
          `the requested termination time ${new Date(at).toISOString()} is not in the future (now ${new Date(now).toISOString()})`,
        );
      }
      if (at !== null && maxTerminationMs > 0 && at > now + maxTerminationMs) {
        throw new GatewayError(
          'SSP_TERMINATION_TIME_INVALID',
          `the requested termination time is more than ${Math.round(maxTerminationMs / 1000)} s ahead; ask for at most ${new Date(now + maxTerminationMs).toISOString()} and extend it later`,
        );
      }
      const r = addressedResource(ctx);
      const rec =
        r.kind === 'session' ? await ownedSession(deps, ctx, r.id) : await ownedConnection(deps, ctx, r.id);
      const effective = await lifetimes.set(r.kind, r.id, at, rec.application);
      return {
        newTerminationTime: effective === null ? null : new Date(effective).toISOString(),
        currentTime: new Date(now).toISOString(),
      };
    }),
  };
}

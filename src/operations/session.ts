/** Session port type: createSession, openSession, closeSession, getSessionStatus. */
import { CloseMode, SessionState } from '../backend/protocol';
import { GatewayError } from '../errors/catalogue';
import type { Handler } from '../pipeline/operation';
import type { OperationDeps } from './deps';
import type { CloseSessionArgs, CreateSessionArgs, OpenSessionArgs, SessionIdArgs } from './messages';
import { checkVersion, ownedConnection, ownedSession } from './ownership';
import { endpointReference, resourceAddress } from '../resources/address';
import type { ResolvedCall } from '../pipeline/context';
import type { ConnectionRecord, SessionRecord } from '../store/store';

const STATE_NAMES: Partial<Record<SessionState, string>> = {
  [SessionState.OPEN]: 'Open',
  [SessionState.DETACHED]: 'Detached',
};

/** The schema's name of a grid session state (sym:SessionState). */
export function stateName(state: SessionState): string {
  return STATE_NAMES[state] ?? 'Open';
}

/** A session belongs to its connection's cluster and service version, and to the caller. */
function sessionOf(conn: ConnectionRecord, ctx: ResolvedCall, connectionId: string): SessionRecord {
  return {
    cluster: conn.cluster,
    owner: ctx.consumer.id,
    connectionId,
    application: conn.application,
    // Usage records name the certificate's subject even where the consumer id is a mapped name.
    ...(ctx.consumer.subject !== undefined ? { subject: ctx.consumer.subject } : {}),
    ...(conn.serviceVersion !== undefined ? { serviceVersion: conn.serviceVersion } : {}),
    created: Date.now(),
  };
}

/** The answer of createSession and openSession: the id and the session's endpoint reference. */
function sessionAnswer(deps: OperationDeps, ctx: ResolvedCall, id: string): SessionAnswer {
  return {
    sessionId: id,
    EndpointReference: endpointReference(
      resourceAddress(ctx, deps.publicAddress, 'session', id),
      'session',
      id,
    ),
  };
}

interface SessionAnswer {
  sessionId: string;
  EndpointReference: string;
}

export function sessionHandlers(deps: OperationDeps): {
  createSession: Handler<CreateSessionArgs, SessionAnswer>;
  openSession: Handler<OpenSessionArgs, SessionAnswer>;
  closeSession: Handler<CloseSessionArgs, Record<string, never>>;
  getSessionStatus: Handler<SessionIdArgs, { sessionStatus: Record<string, unknown> }>;
} {
  const { router, store, lifetimes } = deps;
  return {
    async createSession(args: CreateSessionArgs, ctx) {
      const conn = await ownedConnection(deps, ctx, args.connectionId);
      const key = ctx.clientKey;
      const reply = await router.call(
        ctx,
        conn.cluster,
        'createSession',
        {
          connectionId: args.connectionId,
          attributes: args.sessionCreationAttributes ?? {},
          // A repeat with the key gets the first session from the grid: no orphan session.
          ...(key !== undefined ? { requestKey: key } : {}),
        },
        undefined,
        { retrySafe: key !== undefined && router.client(conn.cluster).supports('request-keys') },
      );
      await store.putSession(reply.sessionId, sessionOf(conn, ctx, args.connectionId));
      await lifetimes.started('session', reply.sessionId, conn.application, true);
      return sessionAnswer(deps, ctx, reply.sessionId);
    },

    async openSession(args: OpenSessionArgs, ctx) {
      const conn = await ownedConnection(deps, ctx, args.connectionId);
      const prev = await store.getSession(args.sessionId);
      if (prev && prev.owner !== ctx.consumer.id) {
        throw new GatewayError('SSP_NOT_OWNER', `session ${args.sessionId} belongs to another consumer`);
      }
      // A session stays at the service version it was created at, whichever connection opens it.
      if (prev) checkVersion(ctx, 'session', args.sessionId, prev.serviceVersion);
      if (prev && prev.cluster !== conn.cluster) {
        throw new GatewayError(
          'SSP_UNKNOWN_SESSION',
          `session ${args.sessionId} is not on this connection's cluster`,
        );
      }
      const reply = await router.call(ctx, conn.cluster, 'openSession', {
        connectionId: args.connectionId,
        sessionId: args.sessionId,
      });
      await store.putSession(reply.sessionId, sessionOf(conn, ctx, args.connectionId));
      await lifetimes.started('session', reply.sessionId, conn.application, prev === undefined);
      await deps.notifier?.sessionState(reply.sessionId, args.connectionId, 'Open');
      return sessionAnswer(deps, ctx, reply.sessionId);
    },

    async closeSession(args: CloseSessionArgs, ctx) {
      const rec = await ownedSession(deps, ctx, args.sessionId);
      const mode = args.closeFlags === 'DetachOnClose' ? CloseMode.DETACH : CloseMode.DESTROY;
      try {
        await router.call(ctx, rec.cluster, 'closeSession', { sessionId: args.sessionId, mode });
      } catch (e) {
        if (e instanceof GatewayError && e.code === 'SSP_UNKNOWN_SESSION') {
          // Gone on the grid (destroyed elsewhere, or expired while detached): so are its leases.
          await store.deleteSession(args.sessionId);
          await store.dropOutputs(args.sessionId);
          await lifetimes.ended('session', args.sessionId, rec.application, 'gone');
          await deps.notifier?.sessionEnded(args.sessionId, rec.connectionId, 'gone');
        }
        throw e;
      }
      // A detached session keeps its record (and leased outputs) so that its owner can
      // openSession it later.
      // Its idle lease keeps running: a detached session nobody opens again is reaped in time.
      if (mode === CloseMode.DESTROY) {
        await store.deleteSession(args.sessionId);
        await store.dropOutputs(args.sessionId);
        await lifetimes.ended('session', args.sessionId, rec.application, 'client');
        await deps.notifier?.sessionEnded(args.sessionId, rec.connectionId, 'client');
      } else await deps.notifier?.sessionState(args.sessionId, rec.connectionId, 'Detached');
      return {};
    },

    async getSessionStatus(args: SessionIdArgs, ctx) {
      const rec = await ownedSession(deps, ctx, args.sessionId);
      const s = await router.call(ctx, rec.cluster, 'sessionStatus', { sessionId: args.sessionId });
      return {
        sessionStatus: {
          sessionId: s.sessionId,
          state: stateName(s.state),
          name: s.name || undefined,
          priority: s.priority || undefined,
          pendingTasks: s.pending,
          runningTasks: s.running,
          doneTasks: s.done,
          failedTasks: s.failed,
          outputsReady: s.outputsReady,
        },
      };
    },
  };
}

/** Looks up a connection or session record and checks that the caller owns it. */
import { GatewayError } from '../errors/catalogue';
import type { ResolvedCall } from '../pipeline/context';
import type { ConnectionRecord, SessionRecord } from '../store/store';
import type { OperationDeps } from './deps';

/** What a lookup needs: the records, and the idle leases that each use pushes forward. */
export type ResourceAccess = Pick<OperationDeps, 'store' | 'lifetimes'>;

/** An id made at one service version is used only there: its SLA and endpoint apply to it. */
export function checkVersion(ctx: ResolvedCall, kind: string, id: string, at: string | undefined): void {
  const here = ctx.policy?.version.version.uri;
  if (here !== undefined && at !== here) {
    throw new GatewayError(
      'SSP_WRONG_SERVICE_VERSION',
      `${kind} ${id} was created at ${at ?? 'a path without a service version'}, not at ${here}`,
    );
  }
}

export async function ownedConnection(
  { store, lifetimes }: ResourceAccess,
  ctx: ResolvedCall,
  id: string,
): Promise<ConnectionRecord> {
  const rec = await store.getConnection(id);
  if (!rec) throw new GatewayError('SSP_UNKNOWN_CONNECTION', `connection ${id} is unknown or closed`);
  if (rec.owner !== ctx.consumer.id) {
    throw new GatewayError('SSP_NOT_OWNER', `connection ${id} belongs to another consumer`);
  }
  checkVersion(ctx, 'connection', id, rec.serviceVersion);
  lifetimes.touch('connection', id, rec.application);
  ctx.application = rec.application;
  return rec;
}

export async function ownedSession(
  { store, lifetimes }: ResourceAccess,
  ctx: ResolvedCall,
  id: string,
): Promise<SessionRecord> {
  const rec = await store.getSession(id);
  if (!rec) throw new GatewayError('SSP_UNKNOWN_SESSION', `session ${id} is unknown or closed`);
  if (rec.owner !== ctx.consumer.id) {
    throw new GatewayError('SSP_NOT_OWNER', `session ${id} belongs to another consumer`);
  }
  checkVersion(ctx, 'session', id, rec.serviceVersion);
  lifetimes.touch('session', id, rec.application);
  if (rec.application !== undefined) ctx.application = rec.application;
  return rec;
}

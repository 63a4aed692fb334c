/**
 * Refuses a SOAP call at a path that serves no service, before its body is read. With an SLA
 * control file each ServiceVersion uri is a path; the snapshot in effect now is pinned for the
 * whole call (a reload swaps it for new calls only) and released when the call completes.
 */
import { GatewayError } from '../errors/catalogue';
import type { AddressedResource, CallContext } from '../pipeline/context';
import type { Hook } from '../pipeline/phases';
import type { PolicyManager } from '../policy/policy-manager';

// An id as the schema's sym:Id allows it; anything else in the path is no resource of ours.
const RESOURCE_SUFFIX =
  /^(.*)\/(sessions|connections|subscriptions|pullpoints)(?:\/([A-Za-z0-9._:-]{1,128}))?$/;
const KIND_OF_SEGMENT: Record<string, AddressedResource['kind']> = {
  sessions: 'session',
  connections: 'connection',
  subscriptions: 'subscription',
  pullpoints: 'pullpoint',
};

/**
 * Splits a resource's address into the service's path and the resource, when the path is not a
 * service itself: `/symphony/sessions/42` is session 42 of the service at `/symphony`.
 */
function splitResource(ctx: CallContext, isService: (path: string) => boolean): void {
  if (isService(ctx.path)) return;
  const m = RESOURCE_SUFFIX.exec(ctx.path);
  if (!m || !isService(m[1]!)) return;
  const resource: AddressedResource = { kind: KIND_OF_SEGMENT[m[2]!]!, id: m[3] };
  ctx.path = m[1]!;
  ctx.resource = resource;
}

export function servicePath(endpointPath: string, policies: PolicyManager | null): Hook<CallContext> {
  if (!policies) {
    return async (ctx) => {
      splitResource(ctx, (p) => p === endpointPath);
      if (ctx.path !== endpointPath) {
        throw new GatewayError(
          'SSP_UNKNOWN_PATH',
          `no service is served at ${ctx.path}; the SOAP endpoint is ${endpointPath}`,
        );
      }
    };
  }
  return async (ctx) => {
    const policy = policies.current;
    policy.acquire();
    ctx.deferred.push(() => policy.release());
    splitResource(ctx, (p) => policy.version(p) !== undefined);
    const version = policy.version(ctx.path);
    if (!version) {
      throw new GatewayError('SSP_UNKNOWN_SERVICE_VERSION', `no service version is served at ${ctx.path}`);
    }
    ctx.service = { policy, version };
  };
}

/**
 * Refuses a SOAP call at a path that serves no service, before its body is read. With an SLA
 * control file each ServiceVersion uri is a path; the snapshot in effect now is pinned for the
 * whole call (a reload swaps it for new calls only) and released when the call completes.
 */
import { GatewayError } from '../errors/catalogue';
import type { CallContext } from '../pipeline/context';
import type { Hook } from '../pipeline/phases';
import type { PolicyManager } from '../policy/policy-manager';

export function servicePath(endpointPath: string, policies: PolicyManager | null): Hook<CallContext> {
  if (!policies) {
    return async (ctx) => {
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
    const version = policy.version(ctx.path);
    if (!version) {
      throw new GatewayError('SSP_UNKNOWN_SERVICE_VERSION', `no service version is served at ${ctx.path}`);
    }
    ctx.service = { policy, version };
  };
}

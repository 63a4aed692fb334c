/** Connection port type: connect, closeConnection (com.platform.symphony.soam.Connection). */
import { GatewayError } from '../errors/catalogue';
import type { GridRouter } from '../backend/grid-router';
import type { ResolvedCall } from '../pipeline/context';
import type { Handler } from '../pipeline/operation';
import type { OperationDeps } from './deps';
import type { ConnectArgs, ConnectionIdArgs } from './messages';
import { ownedConnection } from './ownership';
import { endpointReference, resourceAddress } from '../resources/address';

/**
 * The clusters a connect may go to, in the order to try them. With a control file the service
 * version's EndPoint decides (a clusterURL must be one of its URLs); without one, the
 * clusterURL or the default cluster.
 */
function candidates(router: GridRouter, ctx: ResolvedCall, args: ConnectArgs): string[] {
  const binding = ctx.policy;
  if (!binding) return [router.clusterFor(args.clusterURL)];
  const v = binding.version.version;
  if (args.applicationName !== v.application) {
    throw new GatewayError(
      'SSP_INVALID_ARGUMENT',
      `service version ${v.uri} serves the application '${v.application}', not '${args.applicationName}'`,
    );
  }
  const endpoint = v.sld.endpoint;
  if (args.clusterURL === undefined || args.clusterURL === '') return endpoint.clusters;
  const wanted = router.clusterFor(args.clusterURL);
  if (!endpoint.clusters.includes(wanted)) {
    throw new GatewayError(
      'SSP_UNKNOWN_CLUSTER',
      `clusterURL '${args.clusterURL}' is not an EndPoint of ${v.uri}; use one of ${endpoint.urls.join(', ')} or omit it`,
    );
  }
  return [wanted];
}

export function connectionHandlers(deps: OperationDeps): {
  connect: Handler<ConnectArgs, { connectionId: string; EndpointReference: string }>;
  closeConnection: Handler<ConnectionIdArgs, Record<string, never>>;
} {
  const { router, store, lifetimes } = deps;
  return {
    async connect(args: ConnectArgs, ctx) {
      const clusters = candidates(router, ctx, args);
      // In EndPoint order, but a cluster with no live socket goes last and gets only its
      // connect timeout, so a dead first cluster costs seconds, not a request timeout.
      const live = clusters.filter((c) => router.client(c).connectedCount > 0);
      const order = [...live, ...clusters.filter((c) => !live.includes(c))];
      let lastError: unknown;
      for (const cluster of order) {
        const client = router.client(cluster);
        try {
          const reply = await router.call(
            ctx,
            cluster,
            'connect',
            {
              applicationName: args.applicationName,
              username: args.username,
              password: args.password,
              clusterUrl: args.clusterURL ?? '',
              // The grid returns the first connection for a repeat, so a retry whose first
              // attempt's answer was lost leaves no orphan connection behind.
              ...(ctx.clientKey !== undefined ? { requestKey: ctx.clientKey } : {}),
            },
            order.length > 1 && client.connectedCount === 0 ? client.opts.connectTimeoutMs : undefined,
            { retrySafe: ctx.clientKey !== undefined && client.supports('request-keys') },
          );
          const serviceVersion = ctx.policy?.version.version.uri;
          try {
            await store.putConnection(reply.connectionId, {
              cluster,
              owner: ctx.consumer.id,
              application: args.applicationName,
              ...(serviceVersion !== undefined ? { serviceVersion } : {}),
              created: Date.now(),
            });
          } catch (e) {
            // Unrecorded, the connection could never be used or closed: close it on the grid.
            void router
              .call(ctx, cluster, 'closeConnection', { connectionId: reply.connectionId })
              .catch(() => undefined);
            throw e;
          }
          await lifetimes.started('connection', reply.connectionId, args.applicationName, true);
          ctx.application = args.applicationName;
          const id = reply.connectionId;
          return {
            connectionId: id,
            EndpointReference: endpointReference(
              resourceAddress(ctx, deps.publicAddress, 'connection', id),
              'connection',
              id,
            ),
          };
        } catch (e) {
          // Only a cluster that could not be reached is skipped: a timeout may have connected.
          if (!(e instanceof GatewayError) || e.code !== 'SSP_GRID_UNAVAILABLE') throw e;
          lastError = e;
        }
      }
      throw lastError;
    },

    async closeConnection(args: ConnectionIdArgs, ctx) {
      const rec = await ownedConnection(deps, ctx, args.connectionId);
      try {
        await router.call(ctx, rec.cluster, 'closeConnection', { connectionId: args.connectionId });
      } catch (e) {
        // The grid no longer knows it: forget it too. Any other failure (grid unreachable, timed
        // out) keeps the record, so that the client's retry can still close it.
        if (e instanceof GatewayError && e.code === 'SSP_UNKNOWN_CONNECTION') {
          await store.deleteConnection(args.connectionId);
          await lifetimes.ended('connection', args.connectionId, rec.application, 'gone');
          await deps.notifier?.connectionEnded(args.connectionId, 'gone');
        }
        throw e;
      }
      await store.deleteConnection(args.connectionId);
      await lifetimes.ended('connection', args.connectionId, rec.application, 'client');
      await deps.notifier?.connectionEnded(args.connectionId, 'client');
      return {};
    },
  };
}

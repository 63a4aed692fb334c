/** Connection port type: connect, closeConnection (com.platform.symphony.soam.Connection). */
import type { Handler } from '../stages/dispatch';
import type { ConnectArgs, ConnectionIdArgs } from './messages';
import type { ServiceDeps } from './deps';
import { ownedConnection } from './ownership';

export function connectionService({ router, store }: ServiceDeps): Record<string, Handler> {
  return {
    async connect(args: ConnectArgs, ctx) {
      const cluster = router.clusterFor(args.clusterURL);
      const reply = await router.call(ctx, cluster, 'connect', {
        applicationName: args.applicationName,
        username: args.username,
        password: args.password,
        clusterUrl: args.clusterURL ?? '',
      });
      await store.putConnection(reply.connectionId, {
        cluster,
        owner: ctx.consumer!.id,
        application: args.applicationName,
      });
      return { connectionId: reply.connectionId };
    },

    async closeConnection(args: ConnectionIdArgs, ctx) {
      const rec = await ownedConnection(store, ctx, args.connectionId);
      try {
        await router.call(ctx, rec.cluster, 'closeConnection', { connectionId: args.connectionId });
      } finally {
        await store.deleteConnection(args.connectionId);
      }
      return {};
    },
  };
}

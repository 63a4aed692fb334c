/** The grid side: the embedded reference grid when configured, and a router over every cluster. */
import { randomBytes } from 'node:crypto';
import { GridRouter } from '../backend/grid-router';
import type { ProxyConfig } from '../config';
import { watchFiles } from '../file-watch';
import { log } from '../log';
import { spawnGrid } from '../server/embedded-grid';
import type { Resources } from './resources';

export async function startGridRouter(config: ProxyConfig, res: Resources): Promise<GridRouter> {
  const clusters = [...config.grid.clusters];
  if (config.grid.embedded) {
    const secret = randomBytes(24).toString('hex');
    const grid = await spawnGrid(['--host', '127.0.0.1', '--port', '0'], {
      ...process.env,
      GRID_SHARED_SECRET: secret,
    });
    res.add('embedded grid', grid, (g) => g.stop().then(() => undefined));
    log.info('embedded reference grid started', { address: grid.address, pid: grid.child.pid });
    clusters.unshift({
      name: config.grid.defaultCluster,
      urls: ['embedded'],
      addresses: [grid.address],
      sharedSecret: secret,
      poolSize: 2,
      connectTimeoutMs: 3000,
      requestTimeoutMs: 30000,
      plaintext: false, // loopback: the link never leaves this machine
    });
  }
  const router = res.add('grid router', new GridRouter(clusters, config.grid.defaultCluster), (r) =>
    r.close(),
  );
  for (const link of router.links()) {
    if (link.transport === 'plain-network')
      log.warn('grid link without TLS', { cluster: link.cluster, link: link.describe });
    else log.info('grid link', { cluster: link.cluster, link: link.describe });
  }
  const watched = config.grid.clusters.flatMap((c) =>
    c.tls?.watch ? [c.tls.certFile, c.tls.keyFile, ...c.tls.caFiles] : [],
  );
  if (watched.length > 0) {
    res.add(
      'grid TLS watch',
      watchFiles(watched, 'grid TLS files', () => void router.reloadTls()),
      (w) => w.close(),
    );
  }
  return router;
}

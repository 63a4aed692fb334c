/** Operations endpoints on their own listener, so they never share a port with clients. */
import express from 'express';
import type http from 'node:http';

export interface AdminProbes {
  /** Why the proxy is not ready, or null when it is. */
  notReadyReason(): string | null;
}

export function createAdminApp(probes: AdminProbes): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.get('/livez', (_req, res) => {
    res.type('text/plain').send('ok\n');
  });
  app.get('/readyz', (_req, res) => {
    const why = probes.notReadyReason();
    if (why) res.status(503).type('text/plain').send(`not ready: ${why}\n`);
    else res.type('text/plain').send('ready\n');
  });
  return app;
}

export function listen(
  server: http.Server | import('node:https').Server,
  port: number,
  host: string,
): Promise<{ host: string; port: number }> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const a = server.address();
      if (a && typeof a === 'object') resolve({ host: a.address, port: a.port });
      else reject(new Error('listener has no address'));
    });
  });
}

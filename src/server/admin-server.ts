/** Operations endpoints on their own listener, so they never share a port with clients. */
import { createHash, timingSafeEqual } from 'node:crypto';
import express from 'express';
import type http from 'node:http';
import type { Registry } from 'prom-client';
import type { DeadLetter } from '../store/notification-store';

export interface AdminProbes {
  /** Why the proxy is not ready, or null when it is. */
  notReadyReason(): string | null;
  /** Lines after the verdict that an operator should see, such as how each grid link travels. */
  details?(): string[];
  registry: Registry;
  /** Reloads the SLA control file; absent when none is configured. */
  reloadPolicy?: () => Promise<{ ok: boolean; changed: boolean; error?: string }>;
  /** The newest notification dead letters (what was given up on, never the payloads). */
  deadLetters?: (max: number) => Promise<DeadLetter[]>;
  /** Bearer token for the reload and dead-letter calls; without one they are refused. */
  token?: string;
}

/** Constant-time comparison of the presented bearer token with the configured one. */
function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer (\S+)$/.exec(header ?? '');
  if (!m) return false;
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(m[1]!), digest(token));
}

export function createAdminApp(probes: AdminProbes): express.Express {
  const app = express();
  app.disable('x-powered-by');
  /** Calls that change or reveal more than health need the bearer token (admin.tokenFile). */
  const authorized = (req: express.Request, res: express.Response): boolean => {
    if (!probes.token) {
      res.status(403).type('text/plain').send('this call over HTTP is disabled: set admin.tokenFile\n');
      return false;
    }
    if (!tokenMatches(req.headers.authorization, probes.token)) {
      res
        .status(401)
        .set('www-authenticate', 'Bearer')
        .type('text/plain')
        .send('a valid bearer token is required\n');
      return false;
    }
    return true;
  };
  app.get('/livez', (_req, res) => {
    res.type('text/plain').send('ok\n');
  });
  app.get('/readyz', (_req, res) => {
    const why = probes.notReadyReason();
    const details = (probes.details?.() ?? []).map((line) => `${line}\n`).join('');
    if (why) res.status(503).type('text/plain').send(`not ready: ${why}\n${details}`);
    else res.type('text/plain').send(`ready\n${details}`);
  });
  app.get('/metrics', (_req, res, next) => {
    probes.registry.metrics().then((text) => {
      res.type(probes.registry.contentType).send(text);
    }, next);
  });
  app.get('/notifications/dead-letters', (req, res, next) => {
    if (!probes.deadLetters) {
      res.status(404).type('text/plain').send('notifications are not enabled here\n');
      return;
    }
    if (!authorized(req, res)) return;
    const max = Math.min(Math.max(Number(req.query['max'] ?? 100) || 100, 1), 10_000);
    probes.deadLetters(max).then((list) => {
      res.json({ deadLetters: list });
    }, next);
  });
  app.post('/policy/reload', (req, res, next) => {
    if (!probes.reloadPolicy) {
      res.status(404).type('text/plain').send('no SLA control file is configured (policy.file)\n');
      return;
    }
    if (!authorized(req, res)) return;
    probes.reloadPolicy().then((r) => {
      if (r.ok) res.type('text/plain').send(r.changed ? 'reloaded\n' : 'unchanged\n');
      else
        res
          .status(422)
          .type('text/plain')
          .send(`rejected; the previous policy stays in effect:\n${r.error}\n`);
    }, next);
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

import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { isLoopbackHost } from '../backend/grid-tls';
import { DEFAULT_MAX_FRAME_BYTES } from '../backend/protocol';

/** Built-in services shipped in src/grid/services/. */
export const BUILTIN_SERVICES = ['echo', 'cpu'] as const;

const userSchema = z.strictObject({
  name: z.string().min(1),
  password: z.string(),
});

const applicationSchema = z.strictObject({
  name: z.string().min(1),
  service: z.string().refine((s) => s === 'echo' || s === 'cpu' || isAbsolute(s), {
    message: "must be 'echo', 'cpu' or an absolute path to a JavaScript module",
  }),
  workers: z.number().int().min(1).max(256).default(2),
  users: z.array(userSchema).optional(),
  maxTaskRetries: z.number().int().min(0).max(100).default(1),
});

function defaultApplications(): z.output<typeof applicationSchema>[] {
  return [
    { name: 'echo', service: 'echo', workers: 2, maxTaskRetries: 1 },
    { name: 'cpu', service: 'cpu', workers: 2, maxTaskRetries: 1 },
  ];
}

// setTimeout cannot wait longer than this; larger values would fire at once.
const MAX_TIMER_MS = 2 ** 31 - 1;

const tlsSchema = z.strictObject({
  /** The grid's server certificate and key. */
  certFile: z.string().min(1),
  keyFile: z.string().min(1),
  /** CAs that a proxy's client certificate must chain to. */
  caFiles: z.array(z.string().min(1)).min(1),
  /** Refuse a client without a valid certificate (mutual TLS). */
  requireClientCert: z.boolean().default(true),
  minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.3'),
});

const gridConfigSchema = z
  .strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(0),
    gridName: z.string().min(1).default('reference-grid'),
    /** TaskUsage.machine on every output. Unset: os.hostname() of the host the grid runs on. */
    machine: z.string().min(1).max(255).optional(),
    sharedSecret: z.string().default(''),
    /** TLS on the listener. Required unless `host` is loopback or plaintext is set. */
    tls: tlsSchema.optional(),
    /** Plain TCP on a non-loopback address, stated on purpose. */
    plaintext: z.boolean().default(false),
    heartbeatMs: z.number().int().min(10).max(MAX_TIMER_MS).default(5000),
    maxInFlight: z.number().int().min(1).max(0xffffffff).default(1024),
    maxFrameBytes: z
      .number()
      .int()
      .min(1024)
      .max(1024 * 1024 * 1024)
      .default(DEFAULT_MAX_FRAME_BYTES),
    detachedSessionTtlMs: z.number().int().min(0).max(MAX_TIMER_MS).default(3_600_000),
    /** Submit keys each session remembers for idempotent sendTasks; the oldest is forgotten first. */
    submitKeysPerSession: z.number().int().min(1).max(10_000_000).default(100_000),
    applications: z
      .array(applicationSchema)
      .min(1)
      .default(defaultApplications)
      .superRefine((apps, ctx) => {
        const seen = new Set<string>();
        apps.forEach((app, i) => {
          if (seen.has(app.name)) {
            ctx.addIssue({
              code: 'custom',
              path: [i, 'name'],
              message: `duplicate application name "${app.name}"`,
            });
          }
          seen.add(app.name);
        });
      }),
  })
  .superRefine((c, ctx) => {
    if (c.tls && c.plaintext) {
      ctx.addIssue({
        code: 'custom',
        path: ['plaintext'],
        message: 'is true but tls is configured too: choose one',
      });
    }
    if (!c.tls && !c.plaintext && !isLoopbackHost(c.host)) {
      ctx.addIssue({
        code: 'custom',
        path: ['tls'],
        message: `is required: host ${c.host} is not loopback, and plain TCP would carry task payloads and passwords in clear. Configure tls (certFile, keyFile, caFiles), or set plaintext: true to accept that`,
      });
    }
  });

export type GridConfig = z.output<typeof gridConfigSchema>;
/** What parseGridConfig accepts: every key optional, defaults filled in. */
export type GridConfigInput = z.input<typeof gridConfigSchema>;
export type ApplicationConfig = GridConfig['applications'][number];

/** Validates a grid configuration and fills in defaults; errors name the offending key path. */
export function parseGridConfig(input: unknown): GridConfig {
  const result = gridConfigSchema.safeParse(input ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    return `${path === '' ? '(root)' : path}: ${issue.message}`;
  });
  throw new Error(`invalid grid config: ${problems.join('; ')}`);
}

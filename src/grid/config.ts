import { isAbsolute } from 'node:path';
import { z } from 'zod';
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

const gridConfigSchema = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(0),
  gridName: z.string().min(1).default('reference-grid'),
  sharedSecret: z.string().default(''),
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

/**
 * One typed configuration: defaults ← YAML/JSON file ← SSP_* environment overrides, then
 * validated. Every error names the key, so an operator knows which line to fix.
 *
 * Environment overrides use `__` between path segments: SSP_SERVER__PORT=8081,
 * SSP_GRID__CLUSTERS__0__ADDRESSES='["10.0.0.5:7000"]'. Values are read as JSON when they parse.
 */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';

const address = z.string().regex(/^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/, 'must be host:port');

const cluster = z.object({
  name: z.string().min(1),
  /** clusterURL values a client may pass to connect to reach this cluster. */
  urls: z.array(z.string().min(1)).default([]),
  addresses: z.array(address).min(1),
  sharedSecret: z.string().default(''),
  poolSize: z.number().int().min(1).max(64).default(2),
  connectTimeoutMs: z.number().int().positive().default(3000),
  requestTimeoutMs: z.number().int().positive().default(30000),
});

export const configSchema = z
  .object({
    server: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8080),
        path: z.string().startsWith('/').default('/symphony'),
        /** Address written into the served WSDL; defaults to the request's Host. */
        publicUrl: z.string().url().optional(),
        maxBodyBytes: z
          .number()
          .int()
          .positive()
          .default(16 * 1024 * 1024),
        keepAliveTimeoutMs: z.number().int().positive().default(65000),
        requestTimeoutMs: z.number().int().positive().default(120000),
      })
      .prefault({}),
    admin: z
      .object({
        enabled: z.boolean().default(true),
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(9090),
      })
      .prefault({}),
    security: z.object(
      {
        mode: z.enum(['off']),
      },
      { error: "is required: set security.mode to 'off' to accept unsigned requests (development only)" },
    ),
    grid: z
      .object({
        /** Start the reference grid as a child process and route the default cluster to it. */
        embedded: z.boolean().default(false),
        defaultCluster: z.string().default('default'),
        clusters: z.array(cluster).default([]),
      })
      .prefault({}),
    limits: z
      .object({
        maxDepth: z.number().int().min(4).max(1000).default(64),
        maxAttributes: z.number().int().min(1).max(10000).default(64),
        maxNameLength: z.number().int().min(16).max(10000).default(256),
        maxElements: z.number().int().min(10).default(200000),
        maxTasksPerBatch: z.number().int().min(1).max(10000).default(10000),
      })
      .prefault({}),
    log: z
      .object({
        level: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
      })
      .prefault({}),
  })
  .superRefine((c, ctx) => {
    const names = new Set(c.grid.clusters.map((x) => x.name));
    if (!c.grid.embedded && !names.has(c.grid.defaultCluster)) {
      ctx.addIssue({
        code: 'custom',
        path: ['grid', 'defaultCluster'],
        message: `names no cluster in grid.clusters (known: ${[...names].join(', ') || 'none'}); add one or set grid.embedded: true`,
      });
    }
  });

export type ProxyConfig = z.infer<typeof configSchema>;
export type ClusterConfig = z.infer<typeof cluster>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

type Tree = { [k: string]: unknown };

function setPath(tree: Tree, path: string[], value: unknown): void {
  let node: Tree = tree;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i]!;
    const nextIsIndex = /^\d+$/.test(path[i + 1]!);
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = nextIsIndex ? [] : {};
    node = node[key] as Tree;
  }
  node[path[path.length - 1]!] = value;
}

/** camelCase keys from SNAKE_CASE env segments: MAX_BODY_BYTES → maxBodyBytes. */
function camel(segment: string): string {
  return segment.toLowerCase().replace(/_([a-z0-9])/g, (_, ch: string) => ch.toUpperCase());
}

export function applyEnv(tree: Tree, env: NodeJS.ProcessEnv): Tree {
  for (const [k, raw] of Object.entries(env)) {
    if (!k.startsWith('SSP_') || raw === undefined) continue;
    const path = k.slice(4).split('__').map(camel);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      /* plain string */
    }
    setPath(tree, path, value);
  }
  return tree;
}

export function parseConfig(input: unknown): ProxyConfig {
  const r = configSchema.safeParse(input);
  if (r.success) return r.data;
  throw new ConfigError(r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`));
}

export function loadConfig(
  file: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  base: Tree = {},
): ProxyConfig {
  let tree: Tree = structuredClone(base);
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError([`cannot read config file ${file}: ${(e as Error).message}`]);
    }
    const doc = YAML.parseDocument(text);
    if (doc.errors.length) throw new ConfigError(doc.errors.map((e) => `${file}: ${e.message}`));
    const fromFile = doc.toJS() as unknown;
    if (fromFile && typeof fromFile === 'object') tree = deepMerge(tree, fromFile as Tree);
  }
  return parseConfig(applyEnv(tree, env));
}

function deepMerge(a: Tree, b: Tree): Tree {
  const out: Tree = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const av = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && av && typeof av === 'object' && !Array.isArray(av)
        ? deepMerge(av as Tree, v as Tree)
        : v;
  }
  return out;
}

/**
 * Real peers (python3-zeep, xmlsec1, redis-server, haproxy) are required under CI=true and
 * skipped loudly elsewhere, so a developer without them still gets a useful local run.
 */
import { spawnSync } from 'node:child_process';

export function hasCommand(cmd: string, args: string[] = ['--version']): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 10000 });
  return r.status === 0;
}

export function hasPythonModule(module: string): boolean {
  return hasCommand('/usr/bin/python3', ['-c', `import ${module}`]);
}

/** Call from a before() hook: fails under CI, skips (with a loud warning) elsewhere. */
export function requirePeer(ctx: Mocha.Context, name: string, present: boolean, install: string): void {
  if (present) return;
  const msg = `required test peer '${name}' is missing; install it with: ${install}`;
  if (process.env.CI === 'true') throw new Error(msg);
  console.warn(`\n  !!! SKIPPING: ${msg}\n`);
  ctx.skip();
}

/**
 * Starts the reference grid as a child process (not in-process, so that the proxy's event
 * loop measures only the proxy) and learns its address from the line it prints.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface GridProcess {
  address: string;
  child: ChildProcess;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Signals a child and resolves with its exit code once it is gone (at once if it already is). */
export function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  return new Promise((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done(child.exitCode);
    child.once('exit', (code) => done(code));
    child.kill(signal);
  });
}

export function spawnGrid(
  args: string[] = [],
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 15000,
): Promise<GridProcess> {
  const main = join(__dirname, '..', 'grid', 'main.js');
  const child = spawn(process.execPath, [main, ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`reference grid did not start within ${timeoutMs} ms`));
    }, timeoutMs);
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      const m = /^grid listening on (\S+)$/.exec(line.trim());
      if (!m) return;
      clearTimeout(timer);
      resolve({
        address: m[1]!,
        child,
        stop: (signal) => stopChild(child, signal),
      });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`reference grid exited with code ${code} before listening`));
    });
  });
}

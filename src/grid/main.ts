/**
 * Standalone reference grid:
 *   node dist/src/grid/main.js [--config grid.json] [--host H] [--port P] [--secret S]
 * GRID_SHARED_SECRET sets the secret too (a command-line secret is visible to other users).
 * Prints one line on stdout, "grid listening on HOST:PORT", and then only a "grid stats {json}"
 * line for each SIGUSR2 (stats-probe.ts); logs go to stderr.
 * SIGHUP (and a change to one of the files) reloads the TLS certificate, key and CAs.
 * Runs on import, so that `symphony-soap-proxy grid` can load it.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { watchFiles } from '../file-watch';
import { parseGridConfig } from './config';
import { startGrid } from './server';
import { STATS_SIGNAL, formatStatsLine } from './stats-probe';

const USAGE = 'usage: main.js [--config FILE.json] [--host HOST] [--port PORT] [--secret SECRET]';

function readConfigFile(path: string): Record<string, unknown> {
  const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`${path}: the grid config must be a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      config: { type: 'string', short: 'c' },
      host: { type: 'string' },
      port: { type: 'string', short: 'p' },
      secret: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const raw = values.config ? readConfigFile(values.config) : {};
  const envSecret = process.env.GRID_SHARED_SECRET;
  if (envSecret !== undefined) raw.sharedSecret = envSecret;
  if (values.secret !== undefined) raw.sharedSecret = values.secret;
  if (values.host !== undefined) raw.host = values.host;
  if (values.port !== undefined) raw.port = /^\d+$/.test(values.port) ? Number(values.port) : values.port;
  const config = parseGridConfig(raw);

  const grid = await startGrid(config, { log: (message) => console.error(`[grid] ${message}`) });
  // Installed before the address is printed, so that no one can signal a grid without a handler.
  process.on(STATS_SIGNAL, () => process.stdout.write(formatStatsLine(grid.stats())));
  process.stdout.write(`grid listening on ${grid.address.host}:${grid.address.port}\n`);
  // Loopback plain TCP is the quiet default (the embedded grid); anything else is worth a line.
  if (grid.transport === 'tls')
    console.error(
      config.tls?.requireClientCert === false
        ? '[grid] TLS on; client certificates are optional (requireClientCert: false)'
        : '[grid] TLS on: clients must present a certificate its CAs vouch for',
    );
  else if (config.plaintext)
    console.error('[grid] WARNING: plain TCP on a non-loopback address (plaintext: true)');
  const reloadTls = (): void => {
    const r = grid.reloadTls();
    if (r === null) return;
    console.error(
      r.ok
        ? `[grid] TLS material reloaded (certificate valid until ${r.notAfter}); new connections use it`
        : `[grid] TLS reload failed, the material in effect stays: ${r.error}`,
    );
  };
  process.on('SIGHUP', reloadTls);
  const watch = grid.tlsFiles.length > 0 ? watchFiles(grid.tlsFiles, 'grid TLS files', reloadTls) : null;

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    watch?.close();
    grid.close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(`[grid] error while closing: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  console.error(`[grid] ${err instanceof Error ? err.message : String(err)}`);
  console.error(USAGE);
  process.exit(1);
});

#!/usr/bin/env node
/**
 * symphony-soap-proxy serve [--config FILE] [--dev]
 * symphony-soap-proxy grid  [grid options, see src/grid/main.ts]
 */
import { parseArgs } from 'node:util';
import { startProxy } from './app';
import { ConfigError, loadConfig } from './config';
import { log, setLogLevel } from './log';

async function serve(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string', short: 'c' }, dev: { type: 'boolean', default: false } },
  });
  // --dev: the fresh-clone experience — embedded reference grid on loopback.
  const base = values.dev ? { security: { mode: 'off' }, grid: { embedded: true } } : {};
  const config = loadConfig(values.config, process.env, base);
  setLogLevel(config.log.level);
  const proxy = await startProxy(config);
  const banner = [
    `symphony-soap-proxy listening on ${proxy.url}`,
    `  WSDL:   ${proxy.wsdlUrl}`,
    proxy.adminUrl ? `  admin:  ${proxy.adminUrl}/livez  ${proxy.adminUrl}/readyz` : '',
    config.security.mode === 'off'
      ? '  SECURITY OFF: unsigned, unauthenticated requests are accepted. Development only.'
      : '',
    config.grid.embedded ? '  grid:   embedded reference grid (applications: echo, cpu)' : '',
    `  try:    /usr/bin/python3 -m zeep ${proxy.wsdlUrl}`,
  ]
    .filter(Boolean)
    .join('\n');
  console.log(banner);
  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal: sig });
    proxy.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  switch (cmd) {
    case 'serve':
      return serve(rest);
    case 'grid':
      process.argv = [process.argv[0]!, process.argv[1]!, ...rest];
      await import('./grid/main.js');
      return;
    default:
      console.error(
        'usage: symphony-soap-proxy serve [--config FILE] [--dev] | grid [--port N] [--config FILE]',
      );
      process.exit(2);
  }
}

main().catch((e: unknown) => {
  if (e instanceof ConfigError) console.error(e.message);
  else console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});

/**
 * symphony-soap-proxy certs dev [--out DIR] [--force]
 *
 * Writes the development PKI (see dev-pki.ts). Prints file names and paths only, never key material.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from '../paths';
import { DEV_P12_PASSWORD, DEV_PKI_FILES, generateDevPki } from './dev-pki';

export const CERTS_USAGE = 'usage: symphony-soap-proxy certs dev [--out DIR] [--force]';
export const DEFAULT_DEV_CERTS_DIR = resolve(ROOT, 'certs', 'dev');

export async function certsCommand(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        out: { type: 'string', short: 'o' },
        force: { type: 'boolean', short: 'f', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    // parseArgs throws on unknown options; show the usage rather than a stack trace.
    console.error(`${e instanceof Error ? e.message : String(e)}\n${CERTS_USAGE}`);
    process.exitCode = 2;
    return;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(CERTS_USAGE);
    return;
  }
  if (positionals.length !== 1 || positionals[0] !== 'dev') {
    console.error(CERTS_USAGE);
    process.exitCode = 2;
    return;
  }

  const result = await generateDevPki(values.out ?? DEFAULT_DEV_CERTS_DIR, { force: values.force });
  const f = result.files;
  const lines = result.created
    ? [`Development PKI written to ${result.dir} (development only, never use in production):`]
    : [`Development PKI already present in ${result.dir}, reused (--force regenerates it):`];
  for (const file of Object.values(DEV_PKI_FILES)) lines.push(`  ${file}`);
  lines.push(
    `client.p12 password: ${DEV_P12_PASSWORD}`,
    'Next steps:',
    `  proxy:  set security.trust.caFiles: [${f.ca}] (and security.trust.crlFiles: [${f.crl}])`,
    `  client: sign requests with ${f.client} + ${f.clientKey}, or with ${f.clientP12}`,
  );
  console.log(lines.join('\n'));
}

/**
 * symphony-soap-proxy policy check <file> [--config FILE]
 *
 * Loads an SLA control file the way the proxy would and prints what it defines, so an operator
 * can check a file before pointing policy.file at it. With --config, EndPoint URLs must name
 * clusters of that proxy config.
 */
import { relative } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, type ProxyConfig } from '../config';
import { loadControlFile, type LoadOptions } from '../policy/control-file';
import type { ControlFile, LimitPolicy, PayloadRules } from '../policy/model';
import { PolicyLoadError } from '../policy/model';
import { describePolicy } from '../policy/policy-name';

export const POLICY_USAGE = 'usage: symphony-soap-proxy policy check <control file> [--config FILE]';

/** Where the command writes; the console unless a test captures it. */
export interface CommandIo {
  out(line: string): void;
  err(line: string): void;
}

const consoleIo: CommandIo = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
};

/**
 * URL (or cluster name) → cluster name. Mirrors how app.ts and GridRouter build their table
 * (embedded cluster first, later entries win), so a check agrees with the running proxy.
 */
export function clusterResolver(grid: ProxyConfig['grid']): (url: string) => string | undefined {
  const clusters = [
    ...(grid.embedded ? [{ name: grid.defaultCluster, urls: ['embedded'] }] : []),
    ...grid.clusters,
  ];
  const byUrl = new Map<string, string>();
  for (const c of clusters) {
    byUrl.set(c.name, c.name);
    for (const u of c.urls) byUrl.set(u, c.name);
  }
  return (url) => byUrl.get(url);
}

export async function policyCommand(argv: string[], io: CommandIo = consoleIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    io.err(`${e instanceof Error ? e.message : String(e)}\n${POLICY_USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(POLICY_USAGE);
    return 0;
  }
  if (positionals.length !== 2 || positionals[0] !== 'check') {
    io.err(POLICY_USAGE);
    return 2;
  }

  const opts: LoadOptions = {};
  if (values.config !== undefined) {
    try {
      opts.resolveCluster = clusterResolver(loadConfig(values.config).grid);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      io.err(e.message);
      return 1;
    }
  }
  try {
    const control = await loadControlFile(positionals[1]!, opts);
    io.out(summary(control, values.config !== undefined));
    return 0;
  } catch (e) {
    if (!(e instanceof PolicyLoadError)) throw e;
    io.err(e.message);
    return 1;
  }
}

export function summary(control: ControlFile, clustersChecked: boolean): string {
  const versions = [...control.versions.values()];
  const services = new Set(versions.map((v) => v.service));
  const slaCount = versions.reduce((n, v) => n + v.slas.length, 0);
  const lines = [
    `${control.file}: OK (sha256 ${control.sha256.slice(0, 16)}…)`,
    `  ${count(services.size, 'service')}, ${count(versions.length, 'version')}, ${count(slaCount, 'SLA')}` +
      (control.domain !== undefined ? `; domain ${control.domain}` : '') +
      (control.version !== undefined ? `; version ${control.version}` : ''),
  ];
  for (const v of versions) {
    const ep = v.sld.endpoint;
    const app = v.application === v.service ? '' : `, application ${v.application}`;
    lines.push(`  ${v.uri}  (service ${v.service}${app})`);
    const clusters = ep.clusters.join(' → ');
    lines.push(`    clusters: ${clusters}${clustersChecked ? '' : ' (not checked: no --config)'}`);
    lines.push(`    SLD: ${policyText(v.sld.policy)}`);
    if (v.slas.length === 0) lines.push('    SLAs: none (no consumer may call this version)');
    for (const sla of v.slas) {
      const ctx = sla.contextId !== undefined ? ` [context ${sla.contextId}]` : '';
      lines.push(`    SLA ${sla.consumerId}${ctx}: ${policyText(sla.policy)}`);
    }
    const req = schemas(ep.request);
    const res = schemas(ep.response);
    if (req) lines.push(`    task inputs validated by: ${req}`);
    if (res) lines.push(`    task outputs validated by: ${res}`);
  }
  return lines.join('\n');
}

function policyText(p: LimitPolicy | null): string {
  return p ? `${p.name} = ${describePolicy(p)}` : 'no limit';
}

function schemas(r: PayloadRules): string {
  return [r.inputSchema, r.outputSchema]
    .filter((f): f is string => f !== undefined)
    .map((f) => relative(process.cwd(), f) || f)
    .join(', then ');
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

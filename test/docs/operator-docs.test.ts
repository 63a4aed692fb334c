/** The operator documents state what the code does: statuses, counting rules, environment names. */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/config';
import { CATALOGUE, type ErrorCodeName } from '../../src/errors/catalogue';
import { ROOT } from '../../src/paths';

const read = (...p: string[]): string => readFileSync(join(ROOT, ...p), 'utf8');

describe('docs/policy.md: what a client sees', () => {
  const doc = read('docs', 'policy.md');
  const rows = doc.split('\n').filter((l) => l.startsWith('|') && /`SSP_[A-Z_]+`/.test(l));

  it('gives every fault of the table the HTTP status the catalogue gives it', () => {
    expect(rows.length).to.be.greaterThan(4);
    for (const row of rows) {
      const code = /`(SSP_[A-Z_]+)`/.exec(row)![1] as ErrorCodeName;
      const entry = CATALOGUE[code];
      if (!entry) continue; // SSP_OUTPUT_INVALID is an output's exception text, not a fault
      const status = /\| (\d{3})(?: with SOAP 1\.2)? /.exec(row);
      expect(status, row).to.not.equal(null);
      expect(Number(status![1]), code).to.equal(entry.status);
    }
  });

  it('lists the validation fault with its status', () => {
    expect(
      rows.some(
        (r) => r.includes('`ValidationFault` / `SSP_PAYLOAD_INVALID`') && r.includes('400 with SOAP 1.2'),
      ),
    ).to.equal(true);
  });

  it('says that limits count every SOAP call, a batch as one, and gives the arithmetic', () => {
    expect(doc).to.contain('A limit counts SOAP calls (messages), not tasks');
    expect(doc).to.contain('one message however many tasks it carries');
    expect(doc).to.match(/threshold ≥ \(calls per job\) × \(jobs per interval\)/);
  });
});

describe('docs/haproxy.cfg: its environment variables', () => {
  const cfg = read('docs', 'haproxy.cfg');
  const names = [...new Set([...cfg.matchAll(/\$\{(SSP_[A-Z0-9_]+)/g)].map((m) => m[1]!))];

  it('says they are HAProxy’s and that the proxy ignores them', () => {
    expect(names.length).to.be.greaterThan(4);
    expect(cfg).to.contain("These variables are HAProxy's");
    expect(cfg).to.contain('the proxy ignores them');
  });

  it('are in fact ignored by the proxy’s configuration', () => {
    const base = { SSP_SECURITY__MODE: 'off', SSP_GRID__EMBEDDED: 'true' };
    const env = Object.fromEntries(names.map((n) => [n, n.endsWith('_PORT') ? '9999' : '127.0.0.1:1']));
    expect(loadConfig(undefined, { ...base, ...env })).to.deep.equal(loadConfig(undefined, base));
  });

  it('default the stats socket to a directory that always exists', () => {
    const m = /\$\{SSP_HAPROXY_STATS_SOCKET-([^}]+)\}/.exec(cfg);
    expect(m).to.not.equal(null);
    expect(m![1]).to.match(/^\/run\/[^/]+$/);
  });
});

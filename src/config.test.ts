import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyEnv, ConfigError, loadConfig, parseConfig } from './config';

describe('config: validation and env overrides', () => {
  it('requires WS-Security by default, and says how to give it a trust store', () => {
    expect(() => parseConfig({ grid: { embedded: true } }))
      .to.throw(ConfigError)
      .with.property('message')
      .that.contains('security.trust.caFiles')
      .and.contains('certs dev');
    expect(
      parseConfig({
        grid: { embedded: true },
        security: { trust: { caFiles: ['ca.pem'] }, responseSigning: { enabled: false } },
      }).security.mode,
    ).to.equal('wss');
  });

  it('wants a key and certificate when responses are signed', () => {
    expect(() => parseConfig({ grid: { embedded: true }, security: { trust: { caFiles: ['ca.pem'] } } }))
      .to.throw(ConfigError)
      .with.property('message')
      .that.contains('security.responseSigning');
  });

  it('names the offending key', () => {
    try {
      parseConfig({ security: { mode: 'off' }, grid: { embedded: true }, server: { port: 'eighty' } });
      expect.fail('should not parse');
    } catch (e) {
      expect((e as ConfigError).problems.join()).to.contain('server.port');
    }
  });

  it('requires the default cluster to exist unless the grid is embedded', () => {
    expect(() => parseConfig({ security: { mode: 'off' } }))
      .to.throw(ConfigError)
      .with.property('message')
      .that.contains('grid.defaultCluster');
  });

  it('applies SSP_ environment overrides by path, parsing JSON values', () => {
    const tree = applyEnv(
      { security: { mode: 'off' }, grid: { embedded: true } },
      { SSP_SERVER__PORT: '8181', SSP_LIMITS__MAX_DEPTH: '40', OTHER: 'x' },
    );
    const c = parseConfig(tree);
    expect(c.server.port).to.equal(8181);
    expect(c.limits.maxDepth).to.equal(40);
  });
});

describe('config: a key it does not know stops the start, naming it', () => {
  let dir: string;
  const write = (name: string, text: string): string => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };
  const VALID = 'security:\n  mode: "off"\ngrid:\n  embedded: true\n';

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ssp-config-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a misspelt key in the file, with the key it probably meant', () => {
    const file = write('typo.yaml', `${VALID}sever:\n  port: 8081\n`);
    expect(() => loadConfig(file, {}))
      .to.throw(ConfigError)
      .with.property('message')
      .that.contains('sever: is not a configuration key; did you mean server?');
  });

  it('refuses a misspelt nested key, even inside a list', () => {
    const file = write(
      'nested.yaml',
      'security:\n  mode: "off"\n  responseSigning:\n    enabeld: false\n' +
        'grid:\n  clusters:\n    - name: default\n      addresses: ["127.0.0.1:7000"]\n      poolsize: 4\n',
    );
    expect(() => loadConfig(file, {}))
      .to.throw(ConfigError)
      .with.property('message')
      .that.contains(
        'security.responseSigning.enabeld: is not a configuration key; did you mean security.responseSigning.enabled?',
      )
      .and.contains(
        'grid.clusters.0.poolsize: is not a configuration key; did you mean grid.clusters.0.poolSize?',
      );
  });

  it('refuses a misspelt SSP_ variable with a path, and leaves one-segment ones (HAProxy’s) alone', () => {
    const file = write('valid.yaml', VALID);
    expect(() => loadConfig(file, { SSP_SERVER__PROT: '8081' }))
      .to.throw(ConfigError)
      .with.property('message')
      .that.contains(
        'server.prot (from SSP_SERVER__PROT): is not a configuration key; did you mean server.port?',
      );
    const c = loadConfig(file, {
      SSP_SERVER__PORT: '8081',
      SSP_PROXY1_PORT: '9001',
      SSP_PROXY1_ADMIN_PORT: '9101',
    });
    expect(c.server.port).to.equal(8081);
  });

  it('accepts every key the --dev base and a full file use', () => {
    const file = write(
      'full.yaml',
      'server:\n  port: 0\n  tls:\n    certFile: a.pem\n    keyFile: a.key\nsecurity:\n  mode: "off"\n' +
        'grid:\n  embedded: true\nlifetime:\n  sessionIdleMs: 1000\n  applications:\n    - name: echo\n      sessionIdleMs: 5\n',
    );
    expect(loadConfig(file, {}, { audit: { enabled: false } }).lifetime.applications[0]).to.deep.equal({
      name: 'echo',
      sessionIdleMs: 5,
    });
  });
});

import { expect } from 'chai';
import { applyEnv, ConfigError, parseConfig } from './config';

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

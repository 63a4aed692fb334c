import { expect } from 'chai';
import { parseGridConfig } from '../../src/grid/config';

describe('grid config', () => {
  it('fills in every default', () => {
    const config = parseGridConfig({});
    expect(config).to.deep.equal({
      host: '127.0.0.1',
      port: 0,
      gridName: 'reference-grid',
      sharedSecret: '',
      plaintext: false,
      heartbeatMs: 5000,
      maxInFlight: 1024,
      maxFrameBytes: 64 * 1024 * 1024,
      detachedSessionTtlMs: 3_600_000,
      submitKeysPerSession: 100_000,
      applications: [
        { name: 'echo', service: 'echo', workers: 2, maxTaskRetries: 1 },
        { name: 'cpu', service: 'cpu', workers: 2, maxTaskRetries: 1 },
      ],
    });
  });

  it('accepts undefined as an empty config', () => {
    expect(parseGridConfig(undefined).gridName).to.equal('reference-grid');
  });

  it('fills application defaults and keeps users', () => {
    const config = parseGridConfig({
      applications: [{ name: 'a', service: '/opt/svc.js', users: [{ name: 'u', password: 'p' }] }],
    });
    expect(config.applications).to.deep.equal([
      {
        name: 'a',
        service: '/opt/svc.js',
        workers: 2,
        maxTaskRetries: 1,
        users: [{ name: 'u', password: 'p' }],
      },
    ]);
  });

  it('names the offending key path', () => {
    expect(() => parseGridConfig({ applications: [{ name: 'a', service: 'echo', workers: 0 }] })).to.throw(
      /applications\.0\.workers/,
    );
    expect(() => parseGridConfig({ port: 70000 })).to.throw(/port/);
    expect(() => parseGridConfig({ heartbeatMs: 'fast' })).to.throw(/heartbeatMs/);
  });

  it('rejects a relative service path', () => {
    expect(() => parseGridConfig({ applications: [{ name: 'a', service: 'svc.js' }] })).to.throw(
      /applications\.0\.service: must be 'echo', 'cpu' or an absolute path/,
    );
  });

  it('rejects duplicate application names', () => {
    expect(() =>
      parseGridConfig({
        applications: [
          { name: 'a', service: 'echo' },
          { name: 'a', service: 'cpu' },
        ],
      }),
    ).to.throw(/applications\.1\.name: duplicate application name "a"/);
  });

  it('rejects unknown keys so that typos do not pass silently', () => {
    expect(() => parseGridConfig({ maxInflight: 5 })).to.throw(/maxInflight/);
  });
});

import { expect } from 'chai';
import { GatewayError } from '../errors/catalogue';
import { Destinations, isSpecial } from './destinations';

function refusal(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof GatewayError) return `${e.code}: ${e.message}`;
    throw e;
  }
  return 'allowed';
}

function lookup(d: Destinations, consumer: string, host: string): Promise<string> {
  return new Promise((resolve) => {
    d.lookupFor(consumer)(host, {}, (err, address) =>
      resolve(err ? `refused: ${err.message}` : String(address)),
    );
  });
}

describe('notifications: allowed destinations (SSRF guard)', () => {
  const d = new Destinations([
    {
      consumer: 'client-a',
      hosts: ['consumer.bank.example', '*.grid.example', '10.1.0.0/16'],
      allowHttp: false,
    },
    { consumer: 'client-b', hosts: ['localhost', '127.0.0.1'], allowHttp: true },
  ]);

  it('allows named hosts, suffixes and listed networks over https', () => {
    expect(d.check('client-a', 'https://consumer.bank.example/notify').host).to.equal(
      'consumer.bank.example',
    );
    expect(d.check('client-a', 'https://a.b.grid.example:8443/x').hostname).to.equal('a.b.grid.example');
    expect(d.check('client-a', 'https://10.1.2.3/x').hostname).to.equal('10.1.2.3');
  });

  it('refuses other hosts, other consumers, plain http unless allowed, other schemes and credentials', () => {
    expect(refusal(() => d.check('client-a', 'https://evil.example/'))).to.match(/^SSP_CONSUMER_REFUSED/);
    expect(refusal(() => d.check('client-a', 'https://grid.example/'))).to.match(/^SSP_CONSUMER_REFUSED/);
    expect(refusal(() => d.check('client-a', 'https://10.2.0.1/'))).to.match(/^SSP_CONSUMER_REFUSED/);
    expect(refusal(() => d.check('client-c', 'https://consumer.bank.example/'))).to.match(/pull point/);
    expect(refusal(() => d.check('client-a', 'http://consumer.bank.example/'))).to.match(/must use https/);
    expect(refusal(() => d.check('client-a', 'ftp://consumer.bank.example/'))).to.match(/http or https/);
    expect(refusal(() => d.check('client-a', 'https://u:p@consumer.bank.example/'))).to.match(/credentials/);
    expect(refusal(() => d.check('client-a', 'not a url'))).to.match(/not a URL/);
    expect(refusal(() => d.check('client-a', 'https://169.254.169.254/latest/meta-data'))).to.match(
      /^SSP_CONSUMER_REFUSED/,
    );
  });

  it('knows loopback, link-local, unspecified and multicast addresses, IPv4-mapped forms included', () => {
    for (const a of [
      '127.0.0.1',
      '169.254.169.254',
      '0.0.0.0',
      '224.0.0.1',
      '::1',
      'fe80::1',
      '::ffff:127.0.0.1',
    ])
      expect(isSpecial(a), a).to.equal(true);
    for (const a of ['10.1.2.3', '8.8.8.8', '2001:db8::1']) expect(isSpecial(a), a).to.equal(false);
  });

  it('refuses, when connecting, a name that resolves to loopback unless an address rule lists it', async () => {
    const open = new Destinations([{ consumer: '*', hosts: ['localhost'], allowHttp: true }]);
    expect(open.check('anyone', 'http://localhost:9/x').hostname).to.equal('localhost');
    expect(await lookup(open, 'anyone', 'localhost')).to.match(/^refused: .*may not reach/);
    expect(await lookup(d, 'client-b', 'localhost')).to.match(/^(127\.0\.0\.1|refused: .*::1)/);
  });
});

/** A Python zeep client (Debian python3-zeep) loads our WSDL and runs the flow unsigned. */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { hasPythonModule, requirePeer } from '../helpers/peers';
import { withRelay, type ProxyProcess } from '../helpers/processes';

const SCRIPT = join(__dirname, '..', '..', '..', 'test', 'zeep', 'flow.py');

describe('relay: zeep client generated from the WSDL', function () {
  this.timeout(120000);
  const relay = withRelay();
  let proxy: ProxyProcess;

  before(async function () {
    requirePeer(this, 'python3-zeep', hasPythonModule('zeep'), 'apt-get install python3-zeep');
    proxy = relay().proxy;
  });

  it('connects, submits single and batched tasks, fetches every output and sees typed faults', () => {
    const r = spawnSync('/usr/bin/python3', [SCRIPT, proxy.wsdlUrl], { encoding: 'utf8', timeout: 90000 });
    expect(r.status, r.stderr).to.equal(0);
    const result = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    expect(result.submitted).to.equal(31);
    expect(result.received).to.equal(31);
    expect(result.mismatches).to.deep.equal([]);
    expect(result.state).to.equal('Open');
    expect(result.fault).to.equal('UnknownSessionFault');
  });
});

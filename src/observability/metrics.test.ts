import { expect } from 'chai';
import { ProxyMetrics } from './metrics';

describe('observability/metrics: names dashboards and alerts expect', () => {
  it('exposes the default process and Node.js metrics under their standard names', async () => {
    const text = await new ProxyMetrics(() => []).registry.metrics();
    for (const name of [
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'process_start_time_seconds',
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
    ]) {
      expect(text, name).to.match(new RegExp(`^${name}(\\{| )`, 'm'));
    }
    expect(text).not.to.contain('ssp_process_');
  });

  it('keeps the proxy’s own metrics under the ssp_ prefix, with bounded labels', async () => {
    const m = new ProxyMetrics(() => [{ cluster: 'default', connected: 2 }]);
    m.requests.inc({ operation: 'connect', outcome: 'ok' });
    const text = await m.registry.metrics();
    expect(text).to.contain('ssp_requests_total{operation="connect",outcome="ok"} 1');
    expect(text).to.contain('ssp_grid_connections{cluster="default"} 2');
  });
});
